import {
  asPercent,
  DEFAULT_GROUP,
  DEFAULT_MAX_SURGE,
  DEFAULT_MAX_UNAVAILABLE,
  groupNameProblem,
  type IdReference,
  isWholeId,
  readIdReference,
  referenceText,
  specProblems,
} from "@drover/shared";
import type { NodeTemplate as ApiTemplate, NodeLogsRequest, SetSpecRequest } from "@drover/shared";
import type { NodeTemplate, Spec } from "../domain.js";
import { templateProblems, withDefaults } from "../templates.js";
import { fromApiFailurePolicy, fromApiTemplate } from "./convert.js";
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from "../errors.js";
import type { Driver } from "../drivers/Driver.js";
import type { LogStart } from "./readLog.js";
import type { Store } from "../store/Store.js";

/** The group a request names, or the default group; refuses a malformed name. */
export function requireGroup(group: string): string {
  const name = group === "" ? DEFAULT_GROUP : group;
  const problem = groupNameProblem(name);
  if (problem) throw new InvalidArgumentError(problem);
  return name;
}

/** A reference to a graph or a node as a request gives it (see readIdReference); refuses a malformed one. */
export function requireIdReference(kind: "graph" | "node", text: string): IdReference {
  const reference = readIdReference(kind, text);
  if ("problem" in reference) throw new InvalidArgumentError(reference.problem);
  return reference;
}

/** How many of the ids a reference matches an ambiguity names. */
const AMBIGUOUS_SHOWN = 5;

/**
 * The id of the one graph or node (of any group) a reference names: a whole id as it is (the
 * operation says if it does not exist); a prefix or short form looked up, refused NOT_FOUND
 * naming it when it matches none, and INVALID_ARGUMENT listing the first matches when it
 * matches several: the argument, not the server's state, is what the caller must change.
 */
export async function resolveId(kind: "graph" | "node", text: string, store: Pick<Store, "idsMatching">): Promise<string> {
  const reference = requireIdReference(kind, text);
  if (isWholeId(reference)) return reference.id;
  const written = referenceText(reference);
  const matches = await store.idsMatching(kind, reference.prefix, reference.suffix, AMBIGUOUS_SHOWN + 1);
  const list = kind === "graph" ? "'client graphs ls'" : "'client nodes ls --all'";
  if (matches.length === 0) {
    const how = reference.suffix === "" ? "begins with" : "matches";
    throw new NotFoundError(`no ${kind} id ${how} ${written}: list ${kind}s with ${list}`);
  }
  if (matches.length === 1) return matches[0]!.id;
  const shown = matches.slice(0, AMBIGUOUS_SHOWN).map((match) => `${match.id} (group ${match.group})`);
  const more = matches.length > AMBIGUOUS_SHOWN ? ` and more` : "";
  throw new InvalidArgumentError(`${kind} id ${written} is ambiguous: it matches ${shown.join(", ")}${more}; give more of its characters`);
}

/** How much of a log a request asks for, by the server's clock `now`; none of it: the last 64 KiB. */
export function requireLogStart(request: Pick<NodeLogsRequest, "tailLines" | "tailBytes" | "sinceMs">, now: number): LogStart {
  const { tailLines, tailBytes, sinceMs } = request;
  if (tailLines !== undefined && (!Number.isSafeInteger(tailLines) || tailLines < -1)) {
    throw new InvalidArgumentError(`tail lines ${tailLines} is invalid: it must be a number of lines from 0, or -1 for the whole log`);
  }
  if (tailLines === undefined && tailBytes === 0 && sinceMs === 0) return { bytes: DEFAULT_LOG_TAIL_BYTES };
  return {
    lines: tailLines === undefined || tailLines === -1 ? undefined : tailLines,
    bytes: tailBytes > 0 ? tailBytes : undefined,
    since: sinceMs > 0 ? now - sinceMs : undefined,
  };
}

/** What a read of a node's log that asks for no particular part of it gets: its last 64 KiB, in whole lines. */
export const DEFAULT_LOG_TAIL_BYTES = 65_536;

const MAX_CPU_MILLIS = 1_024_000;
const MAX_MEMORY_MB = 1_048_576;

/** The most a task timeout or progress deadline may be: a day. */
export const MAX_DEADLINE_MS = 86_400_000;

export function requireSpec(input: SetSpecRequest): Spec {
  const spec = {
    count: input.count,
    version: input.version,
    // A percent, when given, is the bound (and the number beside it is ignored: a spec read back carries both).
    maxSurge: input.maxSurgePercent !== undefined ? asPercent(input.maxSurgePercent) : (input.maxSurge ?? DEFAULT_MAX_SURGE),
    maxUnavailable:
      input.maxUnavailablePercent !== undefined ? asPercent(input.maxUnavailablePercent) : (input.maxUnavailable ?? DEFAULT_MAX_UNAVAILABLE),
  };
  const problems = specProblems(spec);
  const onFailure = fromApiFailurePolicy(input.onFailure);
  if (onFailure === undefined) problems.push(`on_failure ${input.onFailure} is invalid: use stop or rollback`);
  for (const [name, value] of [["task timeout", input.taskTimeoutMs], ["progress deadline", input.progressDeadlineMs]] as const) {
    if (value > MAX_DEADLINE_MS) problems.push(`${name} ${value}ms is invalid: it must be at most ${MAX_DEADLINE_MS}ms (a day), or 0 for the server's default`);
  }
  if (input.cpuMillis > MAX_CPU_MILLIS) problems.push(`cpu ${input.cpuMillis}m is invalid: at most ${MAX_CPU_MILLIS}m (1024 cores) a node`);
  if (input.memoryMb > MAX_MEMORY_MB) problems.push(`memory ${input.memoryMb}MiB is invalid: at most ${MAX_MEMORY_MB}MiB (1 TiB) a node`);
  for (const [name, value] of [["min ready", input.minReadyMs], ["auto promote after", input.autoPromoteAfterMs]] as const) {
    if (value !== undefined && value > MAX_DEADLINE_MS) problems.push(`${name} ${value}ms is invalid: it must be at most ${MAX_DEADLINE_MS}ms (a day)`);
  }
  if (input.canary > spec.count) problems.push(`canary ${input.canary} is invalid: it must be at most the count, ${spec.count}`);
  if (input.autoPromoteAfterMs > 0 && input.canary === 0) {
    problems.push(`auto promote after ${input.autoPromoteAfterMs}ms is invalid without a canary: give --canary N too`);
  }
  let template: NodeTemplate | undefined;
  if (input.template) {
    const checked = templateOrProblems(input.template);
    if (Array.isArray(checked)) problems.push(...checked);
    else template = checked;
  }
  if (problems.length > 0) throw new InvalidArgumentError(problems.join("; "));
  const out: Spec = {
    ...spec,
    onFailure,
    taskTimeoutMs: input.taskTimeoutMs,
    progressDeadlineMs: input.progressDeadlineMs,
    cpuMillis: input.cpuMillis,
    memoryMb: input.memoryMb,
    canary: input.canary,
    autoPromoteAfterMs: input.autoPromoteAfterMs,
  };
  // Absent: the server's default min-ready, and the group's current template.
  if (input.minReadyMs !== undefined) out.minReadyMs = input.minReadyMs;
  if (template) out.template = template;
  return out;
}

/** A template from the API with its defaults filled in, or every rule it breaks. */
function templateOrProblems(input: ApiTemplate): NodeTemplate | string[] {
  const template = fromApiTemplate(input);
  if (!template) return [`health check type ${input.healthCheck?.type} is invalid: use http, tcp or none`];
  const complete = withDefaults(template);
  const problems = templateProblems(complete);
  return problems.length > 0 ? problems : complete;
}

/** A template from the API with its defaults filled in; refuses one that breaks a rule, naming each. */
export function requireTemplate(input: ApiTemplate | undefined): NodeTemplate {
  if (!input) throw new InvalidArgumentError("template is missing: give at least a command");
  const checked = templateOrProblems(input);
  if (Array.isArray(checked)) throw new InvalidArgumentError(checked.join("; "));
  return checked;
}

/**
 * Refuses a template whose command the driver will not run (the server's `--allow-commands`),
 * or whose env would make an allowed command load other code, with FAILED_PRECONDITION naming
 * the command or the variables, and the flag: the request is well formed, but this server is
 * configured not to run it.
 */
export async function requireAllowedCommand(
  driver: Driver,
  group: string,
  template: NodeTemplate | (() => Promise<NodeTemplate>),
  version?: number,
): Promise<void> {
  if (!driver.commandProblem) return;
  const checked = typeof template === "function" ? await template() : template;
  const problem = driver.commandProblem(group, checked, version);
  if (problem) throw new FailedPreconditionError(`group ${group}: ${problem}`);
}

/** An optional revision number: absent, or a non-negative integer. */
export function optionalRevision(name: string, value: number | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!Number.isSafeInteger(value) || value < 0) throw new InvalidArgumentError(`${name} ${value} is invalid: it must be a revision number`);
  return value;
}

export const DEFAULT_GRAPH_LIST_LIMIT = 20;
export const MAX_GRAPH_LIST_LIMIT = 1000;

export function requireListLimit(limit: number): number {
  if (limit === 0) return DEFAULT_GRAPH_LIST_LIMIT;
  if (limit > MAX_GRAPH_LIST_LIMIT) {
    throw new InvalidArgumentError(`limit ${limit} is invalid: it must be from 1 to ${MAX_GRAPH_LIST_LIMIT}`);
  }
  return limit;
}
