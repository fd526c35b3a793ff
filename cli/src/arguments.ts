/**
 * Reading command-line values: each reader checks one value and, when it breaks a rule,
 * adds a problem naming the value and the rule, so that a command can name every bad
 * value at once.
 */
import { FailurePolicy, readDuration, readIdReference, referenceText } from "@drover/shared";
import { UsageError } from "./errors.js";

/** The largest revision number the client sends: revisions are uint64, but JSON numbers are exact only this far. */
export const MAX_REVISION = Number.MAX_SAFE_INTEGER;
/** The longest task timeout or progress deadline a spec may ask for: a day, the server's limit. */
export const MAX_DEADLINE_MS = 86_400_000;

/**
 * Reads a whole number written in decimal digits: "3" and "007" pass; "abc", "-1", "1.5",
 * "1e3" and " 3" do not. Returns the number, or NaN with the rule broken in `problems`.
 */
export function integerArgument(name: string, text: string, min: number, max: number, problems: string[]): number {
  const value = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!(value >= min && value <= max)) {
    problems.push(`${name} ${JSON.stringify(text)} is invalid: it must be an integer from ${min} to ${max}`);
  }
  return value;
}

/** Reads an optional revision number from `min` (0 stands for "no revision yet" where that makes sense). */
export function revisionArgument(name: string, text: string | undefined, min: 0 | 1, problems: string[]): number | undefined {
  return text === undefined ? undefined : integerArgument(name, text, min, MAX_REVISION, problems);
}

/**
 * Reads a duration in the grammar the server's flags share (see @drover/shared's duration.ts:
 * 500ms, 90s, 1h30m, 7d) into milliseconds, at most a day; "0" and an absent value give 0,
 * which `zero` names for the messages: the server's default for most fields, none at all for
 * some (`--min-ready 0`).
 */
export function durationArgument(name: string, text: string | undefined, problems: string[], zero = "the server's default"): number {
  if (text === undefined) return 0;
  const reading = readDuration(text);
  if (reading.problem !== undefined) {
    problems.push(`${name} ${JSON.stringify(text)} is invalid: ${reading.problem} (0 for ${zero})`);
    return Number.NaN;
  }
  if (reading.milliseconds > MAX_DEADLINE_MS) {
    problems.push(`${name} ${JSON.stringify(text)} is invalid: it must be at most a day (24h), or 0 for ${zero}`);
    return Number.NaN;
  }
  return reading.milliseconds;
}

/** The failure policies by the word the command line uses for them. */
const FAILURE_POLICIES: Record<string, FailurePolicy> = {
  stop: FailurePolicy.FAILURE_POLICY_STOP,
  rollback: FailurePolicy.FAILURE_POLICY_ROLLBACK,
};

/** Reads `--on-failure stop|rollback`; absent leaves it to the server (which stops). */
export function failurePolicyArgument(text: string | undefined, problems: string[]): FailurePolicy {
  if (text === undefined) return FailurePolicy.FAILURE_POLICY_UNSPECIFIED;
  const policy = Object.hasOwn(FAILURE_POLICIES, text) ? FAILURE_POLICIES[text] : undefined;
  if (policy === undefined) {
    problems.push(`on failure ${JSON.stringify(text)} is invalid: use stop or rollback`);
    return FailurePolicy.FAILURE_POLICY_UNSPECIFIED;
  }
  return policy;
}

/** Reads a list's `--limit`: absent is 0, the server's default. Throws nothing; see `problems`. */
export function limitArgument(text: string | undefined, max: number, problems: string[]): number {
  return text === undefined ? 0 : integerArgument("limit", text, 1, max, problems);
}

/**
 * A graph or node id argument: the whole id, a prefix of at least 4 characters, or the short
 * form tables print (`01JDX3…8JNE`, also with three dots), upper-cased (ULIDs are
 * case-insensitive) for the server, which looks a partial one up; throws a UsageError.
 */
export function idArgument(kind: "graph" | "node", text: string): string {
  const reference = readIdReference(kind, text);
  if ("problem" in reference) throw new UsageError(reference.problem);
  return referenceText(reference);
}

/** A node id argument (see idArgument). */
export const nodeIdArgument = (text: string): string => idArgument("node", text);

/** The most cpu one node may reserve, the server's limit: 1024 cores. */
export const MAX_CPU_MILLIS = 1_024_000;
/** The most memory one node may reserve, the server's limit: 1 TiB. */
export const MAX_MEMORY_MIB = 1_048_576;

/**
 * Reads `--cpu` into thousandths of a core, the way Kubernetes writes cpu: `500m` is
 * millicores, a bare number (`0.5`, `2`) is cores. Absent and 0 reserve nothing. Anything
 * finer than a millicore is refused rather than rounded.
 */
export function cpuArgument(text: string | undefined, problems: string[]): number {
  if (text === undefined) return 0;
  const match = /^(?:(\d+)m|(\d+(?:\.\d+)?))$/.exec(text);
  const exact = match ? (match[1] !== undefined ? Number(match[1]) : Number(match[2]) * 1000) : Number.NaN;
  const millis = Math.round(exact);
  if (!match || Math.abs(exact - millis) > 1e-6 || millis > MAX_CPU_MILLIS) {
    problems.push(
      `cpu ${JSON.stringify(text)} is invalid: write millicores like 500m, or cores like 0.5 or 2, at most ${MAX_CPU_MILLIS / 1000} cores (0: reserve none)`,
    );
    return Number.NaN;
  }
  return millis;
}

const MEMORY_UNIT_MIB: Record<string, number> = { "": 1, Mi: 1, Gi: 1024, Ti: 1_048_576 };

/**
 * Reads `--memory` into mebibytes: `256Mi`, `1.5Gi`, `1Ti`, or a bare number of MiB. Absent
 * and 0 reserve nothing. Decimal units (`256M`, `1G`) are refused: they differ from the
 * binary ones by enough to matter, so the client does not guess.
 */
export function memoryArgument(text: string | undefined, problems: string[]): number {
  if (text === undefined) return 0;
  const match = /^(\d+(?:\.\d+)?)(Mi|Gi|Ti)?$/.exec(text);
  const exact = match ? Number(match[1]) * MEMORY_UNIT_MIB[match[2] ?? ""]! : Number.NaN;
  const mebibytes = Math.round(exact);
  if (!match || Math.abs(exact - mebibytes) > 1e-6 || mebibytes > MAX_MEMORY_MIB) {
    problems.push(
      `memory ${JSON.stringify(text)} is invalid: write a whole number of MiB like 256Mi, 1.5Gi or 512 (MiB), at most 1Ti (0: reserve none)`,
    );
    return Number.NaN;
  }
  return mebibytes;
}
