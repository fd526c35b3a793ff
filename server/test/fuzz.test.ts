/**
 * Fuzzing the gRPC API of a real server (issue 5): thousands of random and malformed
 * requests to every RPC, typed (through the generated client) and raw (bytes straight onto
 * the wire with grpc-js). The server must never crash, never answer UNKNOWN or INTERNAL to
 * a client's mistake, refuse every malformed request with INVALID_ARGUMENT before it reaches
 * the store, and afterwards hold exactly what the accepted requests made.
 *
 * Every request is decoded here with the same generated decoder the server uses, and an
 * oracle written from the rules (proto comments, limits, template rules) says whether it is
 * valid and which answers it may get. What an answer may say that depends on the group's history
 * (the template a spec keeps, a rollback's target and count, the spec SetTemplate stores) is
 * judged once the fuzz is over, against the revision its request found current in the stored
 * history. Seed: FUZZ_SEED; runs: FUZZ_RUNS (typed), FUZZ_RAW_RUNS.
 */
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { isAbortError } from "abort-controller-x";
import fc from "fast-check";
import { pino } from "pino";
import {
  DroverServiceDefinition,
  type DroverServiceClient,
  FailurePolicy,
  GraphReason,
  GraphState,
  NodeState,
  RevisionReason,
  TaskAction,
  TaskState,
  EventType,
  type Graph as ApiGraph,
  type NodeTemplate as ApiTemplate,
  type Spec as ApiSpec,
} from "@drover/shared";
import { ClientError, createChannel, createClient, Status } from "nice-grpc";
import { drain, eventually, startTestServer, type TestServer, unlessNotFound } from "./support.js";

// ---------------------------------------------------------------------------------------
// The service, as the fuzzer sees it

const RPCS = [
  "setSpec",
  "listNodes",
  "watchNodes",
  "listGraphs",
  "getGraph",
  "watchGraph",
  "cancelGraph",
  "pauseGraph",
  "resumeGraph",
  "listRevisions",
  "rollback",
  "setTemplate",
  "getTemplate",
  "restartNode",
  "stopNode",
  "cloneNode",
  "killNode",
  "getNodeStats",
  "nodeLogs",
  "promoteGraph",
  "describeNode",
  "listGroups",
  "getGroup",
  "deleteGroup",
] as const;
type Rpc = (typeof RPCS)[number];
const STREAMING = new Set<Rpc>(["watchNodes", "watchGraph", "nodeLogs"]);

/** The generated encoder and decoder of one request type. */
interface MessageType {
  encode(message: unknown): { finish(): Uint8Array };
  decode(bytes: Uint8Array): Record<string, unknown>;
  fromPartial(object: unknown): unknown;
}

const METHODS = Object.entries(DroverServiceDefinition.methods).map(([rpc, method]) => ({
  rpc: rpc as Rpc,
  path: `/${DroverServiceDefinition.fullName}/${method.name}`,
  type: method.requestType as unknown as MessageType,
  streaming: method.responseStream,
}));
const METHOD = new Map(METHODS.map((method) => [method.rpc, method]));

/** What the server decodes from the request the typed client sends (strings as UTF-8 makes them). */
function asSeen(rpc: Rpc, request: Record<string, unknown>): Record<string, any> {
  const type = METHOD.get(rpc)!.type;
  return type.decode(type.encode(type.fromPartial(request)).finish());
}

// ---------------------------------------------------------------------------------------
// The rules, written again from the documentation: the oracle

const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const MAX_COUNT = 100_000;
const MAX_VERSION = 2_147_483_647;
const MAX_DEADLINE_MS = 86_400_000;
const MAX_CPU_MILLIS = 1_024_000;
const MAX_MEMORY_MB = 1_048_576;
const MAX_LIST_LIMIT = 1000;

function isGroupName(name: string): boolean {
  if (name.length < 1 || name.length > 63) return false;
  for (const char of name) if (!/[a-z0-9-]/.test(char) || char.length !== 1) return false;
  return name[0] !== "-" && name.at(-1) !== "-";
}
const groupOf = (group: string) => (group === "" ? "default" : group);
const isUlid = (id: string) => id.length === 26 && [...id].every((char) => CROCKFORD.includes(char));

/**
 * How a request names a graph or a node: its whole id (either case), at least its first 4
 * characters, or those and its last ones around an ellipsis (`…` or `...`), 25 at most.
 */
function idReference(text: string): { kind: "whole"; id: string } | { kind: "partial"; prefix: string; suffix: string } | { kind: "invalid" } {
  const upper = text.toUpperCase();
  if (isUlid(upper)) return { kind: "whole", id: upper };
  const match = /^([0-9A-Z]+)(?:(?:…|\.\.\.)([0-9A-Z]*))?$/.exec(upper);
  if (!match) return { kind: "invalid" };
  const [prefix, suffix = ""] = [match[1]!, match[2]];
  const crockford = [...prefix, ...suffix].every((char) => CROCKFORD.includes(char));
  return crockford && prefix.length >= 4 && prefix.length + suffix.length <= 25 ? { kind: "partial", prefix, suffix } : { kind: "invalid" };
}
/** Whether the id is one the reference names. */
function names(reference: string, id: string | undefined): boolean {
  const read = idReference(reference);
  if (id === undefined || read.kind === "invalid") return false;
  return read.kind === "whole" ? read.id === id : id.startsWith(read.prefix) && id.endsWith(read.suffix);
}

interface SetSpecSeen {
  group: string;
  count: number;
  version: number;
  maxSurge?: number;
  maxUnavailable?: number;
  maxSurgePercent?: number;
  maxUnavailablePercent?: number;
  dryRun: boolean;
  expectRevision?: number;
  onFailure: number;
  taskTimeoutMs: number;
  progressDeadlineMs: number;
  cpuMillis: number;
  memoryMb: number;
  template?: ApiTemplate;
  minReadyMs?: number;
  canary: number;
  autoPromoteAfterMs: number;
}

function specProblems(r: SetSpecSeen): string[] {
  const problems: string[] = [];
  if (!isGroupName(groupOf(r.group))) problems.push("group");
  if (r.count > MAX_COUNT) problems.push("count");
  if (r.version < 1 || r.version > MAX_VERSION) problems.push("version");
  // A percent, when given, is the bound; the number beside it is ignored.
  const surge = r.maxSurgePercent === undefined ? (r.maxSurge ?? 0) : undefined;
  const unavailable = r.maxUnavailablePercent === undefined ? (r.maxUnavailable ?? 1) : undefined;
  if ((surge ?? 0) > MAX_COUNT || (unavailable ?? 0) > MAX_COUNT) problems.push("surge/unavailable");
  if ((r.maxSurgePercent ?? 0) > 100 || (r.maxUnavailablePercent ?? 0) > 100) problems.push("percent above 100");
  if ((surge ?? r.maxSurgePercent) === 0 && (unavailable ?? r.maxUnavailablePercent) === 0) problems.push("both 0");
  if (![0, 1, 2].includes(r.onFailure)) problems.push("on_failure");
  if (r.taskTimeoutMs > MAX_DEADLINE_MS || r.progressDeadlineMs > MAX_DEADLINE_MS) problems.push("deadline");
  if (r.cpuMillis > MAX_CPU_MILLIS || r.memoryMb > MAX_MEMORY_MB) problems.push("reservation");
  if ((r.minReadyMs ?? 0) > MAX_DEADLINE_MS) problems.push("min ready");
  if (r.autoPromoteAfterMs > MAX_DEADLINE_MS) problems.push("auto promote after");
  if (r.canary > r.count) problems.push("canary above the count");
  if (r.autoPromoteAfterMs > 0 && r.canary === 0) problems.push("auto promote without a canary");
  // Absent, the group keeps its template; present, it is checked as SetTemplate checks one.
  if (r.template) problems.push(...templateOracle(r.template).problems);
  return problems;
}

/**
 * The spec the server stores for a valid SetSpec request, but for what comes from the group:
 * without a template in the request, the template (and its hash) are the group's current ones;
 * the hash of a template sent is the server's to compute (see `TemplateHashes`).
 */
function expectedSpec(r: SetSpecSeen): ApiSpec {
  return {
    count: r.count,
    version: r.version,
    ...boundsAt(r.count, { maxSurge: r.maxSurge ?? 0, maxUnavailable: r.maxUnavailable ?? 1, maxSurgePercent: r.maxSurgePercent, maxUnavailablePercent: r.maxUnavailablePercent }),
    onFailure: r.onFailure === FailurePolicy.FAILURE_POLICY_ROLLBACK ? FailurePolicy.FAILURE_POLICY_ROLLBACK : FailurePolicy.FAILURE_POLICY_STOP,
    taskTimeoutMs: r.taskTimeoutMs,
    progressDeadlineMs: r.progressDeadlineMs,
    cpuMillis: r.cpuMillis,
    memoryMb: r.memoryMb,
    template: r.template ? templateOracle(r.template).stored : undefined,
    // Absent: the server's default, 0 on the simulated driver.
    minReadyMs: r.minReadyMs ?? 0,
    canary: r.canary,
    autoPromoteAfterMs: r.autoPromoteAfterMs,
    templateHash: "",
  };
}

/**
 * A spec's bounds at `count`: a percent resolved by Kubernetes' rounding (surge up,
 * unavailability down, never both 0), a number of nodes as it is.
 */
function boundsAt(count: number, bounds: Pick<ApiSpec, "maxSurge" | "maxUnavailable" | "maxSurgePercent" | "maxUnavailablePercent">) {
  const { maxSurgePercent, maxUnavailablePercent } = bounds;
  const maxSurge = maxSurgePercent === undefined ? bounds.maxSurge : Math.ceil((count * maxSurgePercent) / 100);
  const maxUnavailable = maxUnavailablePercent === undefined ? bounds.maxUnavailable : Math.floor((count * maxUnavailablePercent) / 100);
  return { maxSurge, maxUnavailable: maxSurge === 0 && maxUnavailable === 0 ? 1 : maxUnavailable, maxSurgePercent, maxUnavailablePercent };
}

/** A spec at another count: its percents resolved again against it. */
const atCount = (spec: ApiSpec, count: number): ApiSpec => ({ ...spec, count, ...boundsAt(count, spec) });

/** The spec's fields that are the request's own (not the template nor its hash). */
function ownFields(spec: ApiSpec | undefined): Omit<ApiSpec, "template" | "templateHash"> | undefined {
  if (!spec) return undefined;
  const { template: _template, templateHash: _hash, ...own } = spec;
  return own;
}

/** What a template runs, as one string: equal for templates the server must treat as the same. */
function canonicalTemplate(template: ApiTemplate): string {
  const check = template.healthCheck;
  const env = Object.entries(template.env).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return JSON.stringify([
    template.command,
    template.args,
    env,
    check && [check.type, check.path, check.intervalMs, check.timeoutMs, check.failureThreshold, check.startTimeoutMs],
    template.stopGraceMs,
  ]);
}

/**
 * The template hash, as far as the rules say: "" exactly when there is no template, else 16 hex
 * digits, the same for templates that run the same thing and different for ones that do not.
 * Every spec the server answers or stores is checked against every other.
 */
class TemplateHashes {
  private readonly hashOf = new Map<string, string>();
  private readonly templateOf = new Map<string, string>();

  /** The rule the spec breaks, if any. */
  problem(spec: ApiSpec | undefined): string | undefined {
    if (!spec) return undefined;
    if (!spec.template) return spec.templateHash === "" ? undefined : `no template, yet the hash ${spec.templateHash}`;
    if (!/^[0-9a-f]{16}$/.test(spec.templateHash)) return `template hash ${JSON.stringify(spec.templateHash)} is not 16 hex digits`;
    const canonical = canonicalTemplate(spec.template);
    const known = this.hashOf.get(canonical);
    if (known !== undefined && known !== spec.templateHash) return `the same template has the hashes ${known} and ${spec.templateHash}`;
    const other = this.templateOf.get(spec.templateHash);
    if (other !== undefined && other !== canonical) return `hash ${spec.templateHash} is of two templates: ${show(other, 300)} and ${show(canonical, 300)}`;
    this.hashOf.set(canonical, spec.templateHash);
    this.templateOf.set(spec.templateHash, canonical);
    return undefined;
  }
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const RESERVED_ENV = new Set(["PORT", "DROVER_NODE_ID", "DROVER_VERSION", "DROVER_GROUP", "DROVER_PEERS_FILE"]);
const MAX_TEXT = 4096;

/** Whether a template is valid, and the template the server stores for it (defaults filled in). */
function templateOracle(template: ApiTemplate | undefined): { problems: string[]; stored?: ApiTemplate } {
  if (!template) return { problems: ["template missing"] };
  const check = template.healthCheck;
  const type = !check || check.type === 0 ? 1 : check.type;
  if (![1, 2, 3].includes(type)) return { problems: [`health check type ${type}`] };
  const stored: ApiTemplate = {
    command: template.command,
    args: template.args,
    env: template.env,
    healthCheck: {
      type,
      path: type === 1 ? check?.path || "/healthz" : "",
      intervalMs: check?.intervalMs || 1000,
      timeoutMs: check?.timeoutMs || 1000,
      failureThreshold: check?.failureThreshold || 3,
      startTimeoutMs: check?.startTimeoutMs || 10_000,
    },
    stopGraceMs: template.stopGraceMs || 5000,
  };
  const problems: string[] = [];
  if (stored.command.trim() === "" || stored.command.length > MAX_TEXT) problems.push("command");
  if (stored.args.length > 256 || stored.args.some((arg) => arg.length > MAX_TEXT)) problems.push("args");
  const names = Object.keys(stored.env);
  if (names.length > 128) problems.push("env count");
  for (const name of names) {
    if (name.length > 128 || !ENV_NAME.test(name) || RESERVED_ENV.has(name) || stored.env[name]!.length > MAX_TEXT) problems.push(`env ${JSON.stringify(name)}`);
  }
  const health = stored.healthCheck!;
  // No process can be started with a NUL in its command line, environment or probe path.
  if ([stored.command, ...stored.args, ...Object.values(stored.env), health.path].some((text) => text.includes("\0"))) problems.push("NUL");
  if (type === 1 && (!health.path.startsWith("/") || health.path.length > 1024 || /\s/.test(health.path))) problems.push("path");
  const within = (value: number, min: number, max: number) => value >= min && value <= max;
  if (!within(health.intervalMs, 100, 3_600_000)) problems.push("interval");
  if (!within(health.timeoutMs, 10, 60_000)) problems.push("timeout");
  if (!within(health.failureThreshold, 1, 100)) problems.push("threshold");
  if (!within(health.startTimeoutMs, 100, 3_600_000)) problems.push("start timeout");
  if (!within(stored.stopGraceMs, 1, 600_000)) problems.push("stop grace");
  return { problems, stored };
}

/** An answer: OK, a status name, or INTERNAL_DESERIALIZE for grpc-js's own "Error deserializing request". */
type Code = string;
const REFUSALS_OF_A_VALID_REQUEST = ["OK", "NOT_FOUND", "FAILED_PRECONDITION", "RESOURCE_EXHAUSTED"];

interface Knowledge {
  node(id: string): boolean;
  graph(id: string): boolean;
  /** Whether a known graph may wait at a promote gate: only an update planned with a canary has one. */
  gate(id: string): boolean;
  /** Whether some spec of the group may reserve cpu or memory (a request asked for it). */
  reserving(group: string): boolean;
}

/** Whether the server must refuse the request as invalid, and the answers it may give. */
function oracle(rpc: Rpc, r: Record<string, any>, known: Knowledge | undefined): { invalid: boolean; allowed: Code[] } {
  const problems: string[] = [];
  const groupOk = () => isGroupName(groupOf(r.group));
  const limitOk = () => r.limit <= MAX_LIST_LIMIT;
  switch (rpc) {
    case "setSpec":
      problems.push(...specProblems(r as SetSpecSeen));
      break;
    case "listGraphs":
    case "listRevisions":
      if (!groupOk() || !limitOk()) problems.push("group or limit");
      break;
    case "listNodes":
    case "watchNodes":
    case "rollback":
    case "getTemplate":
    case "getGroup":
    case "deleteGroup":
      if (!groupOk()) problems.push("group");
      break;
    case "listGroups":
      break;
    case "watchGraph":
      if (!groupOk() || (r.graphId !== "" && idReference(r.graphId).kind === "invalid")) problems.push("group or graph id");
      break;
    case "getGraph":
      if (idReference(r.graphId).kind === "invalid") problems.push("graph id");
      break;
    case "cancelGraph":
    case "pauseGraph":
    case "resumeGraph":
    case "promoteGraph":
      // No graph id: the group's graph in progress.
      if (r.graphId === "" ? !groupOk() : idReference(r.graphId).kind === "invalid") problems.push("group or graph id");
      break;
    case "setTemplate":
      if (!groupOk()) problems.push("group");
      if (r.templatePatch !== undefined) {
        // A merge patch (PATCH's): with a whole template too it is refused; alone, whether it is
        // valid depends on the template it patches, which a raw request does not know.
        if (r.template !== undefined) problems.push("template and template patch");
        else if (problems.length === 0) return { invalid: false, allowed: ["OK", "INVALID_ARGUMENT", "RESOURCE_EXHAUSTED"] };
      } else {
        problems.push(...templateOracle(r.template).problems);
      }
      break;
    default:
      if (idReference(r.nodeId).kind === "invalid") problems.push("node id");
  }
  if (problems.length > 0) return { invalid: true, allowed: ["INVALID_ARGUMENT"] };
  // Raw requests name nothing the fuzzer knows: any answer but a refusal as invalid will do.
  if (!known) return { invalid: false, allowed: REFUSALS_OF_A_VALID_REQUEST };
  // A prefix or short form may name one known id, none (NOT_FOUND) or several (INVALID_ARGUMENT).
  const byId = (kind: "graph" | "node", text: string, ifKnown: Code[]): Code[] => {
    const read = idReference(text);
    if (read.kind === "partial") return [...ifKnown, "NOT_FOUND", "INVALID_ARGUMENT"];
    return read.kind === "whole" && known[kind](read.id) ? ifKnown : ["NOT_FOUND"];
  };
  const byGraph = (ifKnown: Code[]) => (r.graphId === "" ? ["OK", "NOT_FOUND", "FAILED_PRECONDITION"] : byId("graph", r.graphId, ifKnown));
  const byNode = (ifKnown: Code[]) => byId("node", r.nodeId, ifKnown);
  switch (rpc) {
    case "setSpec":
      return {
        invalid: false,
        allowed: [
          "OK",
          ...(r.expectRevision !== undefined ? ["FAILED_PRECONDITION"] : []),
          ...(r.cpuMillis > 0 || r.memoryMb > 0 ? ["RESOURCE_EXHAUSTED"] : []),
        ],
      };
    case "rollback":
      // No revisions, or no such revision: NOT_FOUND; no earlier revision that succeeded, or another current one: FAILED_PRECONDITION.
      return { invalid: false, allowed: ["OK", "NOT_FOUND", "FAILED_PRECONDITION", ...(known.reserving(groupOf(r.group)) ? ["RESOURCE_EXHAUSTED"] : [])] };
    case "setTemplate":
      // On a group with a spec it is an update of that spec, which must still fit on the host.
      return { invalid: false, allowed: ["OK", ...(known.reserving(groupOf(r.group)) ? ["RESOURCE_EXHAUSTED"] : [])] };
    case "watchGraph":
      return { invalid: false, allowed: r.graphId === "" ? ["OK", "NOT_FOUND"] : byGraph(["OK"]) };
    // A group that does not exist (never updated, a refused first update) is not found.
    case "listNodes":
    case "listGraphs":
    case "listRevisions":
    case "getGroup":
      return { invalid: false, allowed: ["OK", "NOT_FOUND"] };
    case "deleteGroup":
      // Only ever asked of ghost groups, which never have a spec: deleting a modelled group would end its history.
      return { invalid: false, allowed: ["NOT_FOUND"] };
    case "getGraph":
      return { invalid: false, allowed: byGraph(["OK"]) };
    case "cancelGraph":
    case "pauseGraph":
    case "resumeGraph":
      return { invalid: false, allowed: byGraph(["OK", "FAILED_PRECONDITION"]) };
    case "getNodeStats":
    case "describeNode":
      return { invalid: false, allowed: byNode(["OK"]) };
    case "promoteGraph":
      // A settled graph, one not (or no longer) at its gate, and one without a gate: FAILED_PRECONDITION.
      return { invalid: false, allowed: byGraph(idReference(r.graphId).kind !== "whole" || known.gate(r.graphId.toUpperCase()) ? ["OK", "FAILED_PRECONDITION"] : ["FAILED_PRECONDITION"]) };
    case "nodeLogs":
      // The simulated driver keeps no log.
      return { invalid: false, allowed: byNode(["FAILED_PRECONDITION"]) };
    case "restartNode":
    case "killNode":
      return { invalid: false, allowed: byNode(["OK", "FAILED_PRECONDITION"]) };
    case "stopNode":
    case "cloneNode":
      return { invalid: false, allowed: byNode(["OK", "FAILED_PRECONDITION", "RESOURCE_EXHAUSTED"]) };
    default:
      return { invalid: false, allowed: ["OK"] };
  }
}

// ---------------------------------------------------------------------------------------
// Arbitraries: requests for every RPC, valid and malformed

const LONGEST_GROUP = `g${"-".repeat(61)}z`;
/** Groups whose data the model follows. */
const MODEL_GROUPS = ["default", "web", "a", "a-9", LONGEST_GROUP];
/** Valid names that only ever get requests that must be refused (or reads). */
const GHOST_GROUPS = ["ghost", "ghost-2"];
/** The host the server offers reservations from. */
const CAPACITY = { cpuMillis: 8000, memoryMb: 16_384 };

/** A number anywhere in uint32. */
const u32 = fc.oneof(
  fc.constantFrom(0, 1, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1),
  fc.tuple(fc.nat(), fc.boolean()).map(([half, odd]) => half * 2 + (odd ? 1 : 0)),
);
const huge = fc
  .tuple(fc.constantFrom("a", "é", "\u0000", "😀", " ", "Z9"), fc.integer({ min: MAX_TEXT + 1000, max: 100_000 }))
  .map(([unit, length]) => unit.repeat(Math.ceil(length / unit.length)));
const shortOddString = fc.oneof(
  { weight: 3, arbitrary: fc.string({ unit: "binary", maxLength: 40 }) },
  { weight: 2, arbitrary: fc.string({ unit: "grapheme", maxLength: 20 }) },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      "",
      " ",
      "\u0000",
      "a\u0000b",
      "\n",
      "\t",
      "\ud800",
      "\udfff",
      "😀",
      "\u202e",
      "\ufeff",
      "null",
      "../../etc/passwd",
      "%s%n",
      "'; DROP TABLE spec_revisions; --",
      "{group}",
    ),
  },
);
const oddString = fc.oneof({ weight: 8, arbitrary: shortOddString }, { weight: 1, arbitrary: huge });

const modelGroup = fc.constantFrom("", ...MODEL_GROUPS);
const ghostGroup = fc.constantFrom(...GHOST_GROUPS);
const badGroup = fc.oneof(
  fc.constantFrom(
    "Web",
    "-web",
    "web-",
    "we_b",
    "a".repeat(64),
    `${LONGEST_GROUP}x`,
    "web ",
    " web",
    "wéb",
    "web\u0000",
    "web\n",
    "a.b",
    "😀",
    "default\u0000",
    "DEFAULT",
    "-",
    "--",
  ),
  oddString.filter((name) => name !== "" && !isGroupName(name)),
);
const anyGroup = fc.oneof(
  { weight: 6, arbitrary: modelGroup },
  { weight: 3, arbitrary: badGroup },
  { weight: 1, arbitrary: ghostGroup },
);

/** A known id (its first `cut` characters, or its short form `01JDX4…K2M7`), or a text as it is. */
type IdRef = string | { known: "node" | "graph"; index: number; cut?: number; short?: boolean };
const ulid = fc.string({ unit: fc.constantFrom(...CROCKFORD), minLength: 26, maxLength: 26 });
const badId = fc.oneof(
  fc.constant(""),
  ulid.map((id) => id.toLowerCase()).filter((id) => !isUlid(id)),
  ulid.map((id) => id.slice(1)),
  ulid.map((id) => `${id}0`),
  fc
    .tuple(ulid, fc.integer({ min: 0, max: 25 }), fc.constantFrom("I", "L", "O", "U", "i", "-", " ", "\u0000", "é", "😀"))
    .map(([id, at, char]) => id.slice(0, at) + char + id.slice(at + 1)),
  oddString.filter((id) => !isUlid(id)),
);
const idRef = (kind: "node" | "graph"): fc.Arbitrary<IdRef> =>
  fc.oneof(
    { weight: 5, arbitrary: fc.nat({ max: 10_000 }).map((index) => ({ known: kind, index })) },
    { weight: 1, arbitrary: fc.tuple(fc.nat({ max: 10_000 }), fc.integer({ min: 4, max: 25 })).map(([index, cut]) => ({ known: kind, index, cut })) },
    { weight: 1, arbitrary: fc.nat({ max: 10_000 }).map((index) => ({ known: kind, index, short: true })) },
    { weight: 2, arbitrary: ulid },
    { weight: 3, arbitrary: badId },
  );

/** An optional revision number; "current" is the group's latest revision as far as the fuzzer knows. */
type RevRef = number | "current" | undefined;
const revRef: fc.Arbitrary<RevRef> = fc.oneof(
  { weight: 6, arbitrary: fc.constant(undefined) },
  { weight: 3, arbitrary: fc.constant("current" as const) },
  { weight: 2, arbitrary: fc.nat({ max: 6 }) },
  { weight: 1, arbitrary: fc.constantFrom(2 ** 32, Number.MAX_SAFE_INTEGER) },
);
const sequence = fc.option(fc.oneof(fc.nat({ max: 50 }), fc.constantFrom(2 ** 32, Number.MAX_SAFE_INTEGER)), { nil: undefined });
const limit = fc.oneof(fc.constantFrom(0, 1, 20, 999, 1000, 1001, 2 ** 32 - 1), u32);

const surge = fc.oneof({ weight: 10, arbitrary: fc.integer({ min: 0, max: 3 }) }, { weight: 1, arbitrary: fc.constantFrom(100_000, 100_001, 2 ** 32 - 1) });
const deadline = fc.oneof(
  { weight: 12, arbitrary: fc.constant(0) },
  // Graphs that fail, so that failure policies (automatic rollbacks) and healing run.
  { weight: 2, arbitrary: fc.integer({ min: 1, max: 3 }) },
  { weight: 1, arbitrary: fc.integer({ min: 4, max: 50 }) },
  { weight: 3, arbitrary: fc.integer({ min: 1000, max: MAX_DEADLINE_MS }) },
  { weight: 1, arbitrary: fc.constantFrom(MAX_DEADLINE_MS, MAX_DEADLINE_MS + 1, 2 ** 32 - 1) },
);
const reservation = (max: number) =>
  fc.oneof(
    { weight: 10, arbitrary: fc.constant(0) },
    { weight: 2, arbitrary: fc.integer({ min: 1, max: 4000 }) },
    { weight: 1, arbitrary: fc.constantFrom(max, max + 1, 2 ** 32 - 1) },
  );
/** Ways to make a spec invalid, for the groups that must never get one. */
const specCorruptions: ((body: Record<string, unknown>) => Record<string, unknown>)[] = [
  (body) => ({ ...body, count: MAX_COUNT + 1 }),
  (body) => ({ ...body, count: 2 ** 32 - 1 }),
  (body) => ({ ...body, version: 0 }),
  (body) => ({ ...body, version: 2 ** 31 }),
  (body) => ({ ...body, maxSurge: 0, maxUnavailable: 0, maxSurgePercent: undefined, maxUnavailablePercent: undefined }),
  (body) => ({ ...body, maxSurgePercent: 0, maxUnavailablePercent: 0 }),
  (body) => ({ ...body, maxUnavailablePercent: 101 }),
  (body) => ({ ...body, maxSurge: MAX_COUNT + 1, maxSurgePercent: undefined }),
  (body) => ({ ...body, onFailure: 7 }),
  (body) => ({ ...body, onFailure: -1 }),
  (body) => ({ ...body, taskTimeoutMs: MAX_DEADLINE_MS + 1 }),
  (body) => ({ ...body, progressDeadlineMs: 2 ** 32 - 1 }),
  (body) => ({ ...body, cpuMillis: MAX_CPU_MILLIS + 1 }),
  (body) => ({ ...body, memoryMb: MAX_MEMORY_MB + 1 }),
  (body) => ({ ...body, minReadyMs: MAX_DEADLINE_MS + 1 }),
  (body) => ({ ...body, count: 3, canary: 4 }),
  (body) => ({ ...body, canary: 0, autoPromoteAfterMs: 1 }),
  (body) => ({ ...body, autoPromoteAfterMs: MAX_DEADLINE_MS + 1 }),
  (body) => ({ ...body, template: { command: "" } }),
  (body) => ({ ...body, template: { command: "/bin/true", env: { DROVER_VERSION: "2" } } }),
  (body) => ({ ...body, template: { command: "/bin/true", healthCheck: { type: 9, path: "", intervalMs: 0, timeoutMs: 0, failureThreshold: 0, startTimeoutMs: 0 } } }),
  (body) => ({ ...body, template: { command: "/bin/true", healthCheck: { type: 1, path: "/", intervalMs: 99, timeoutMs: 0, failureThreshold: 0, startTimeoutMs: 0 } } }),
];

const text = fc.oneof({ weight: 4, arbitrary: fc.string({ maxLength: 12 }) }, { weight: 2, arbitrary: oddString }, { weight: 1, arbitrary: fc.constantFrom("x".repeat(MAX_TEXT), "x".repeat(MAX_TEXT + 1), "😀".repeat(MAX_TEXT / 2)) });
const envName = fc.oneof(
  { weight: 5, arbitrary: fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,8}$/) },
  {
    weight: 2,
    arbitrary: fc.constantFrom("1A", "A-B", "", "A B", "é", "A\u0000", "PORT", "DROVER_NODE_ID", "DROVER_VERSION", "DROVER_GROUP", "DROVER_PEERS_FILE", "port", "constructor", "toString", "valueOf"),
  },
  // Not huge: an env name's length is not checked (see the todo test below).
  { weight: 1, arbitrary: shortOddString },
);
const env = fc.oneof(
  { weight: 8, arbitrary: fc.array(fc.tuple(envName, text), { maxLength: 5 }).map((entries) => Object.fromEntries(entries) as Record<string, string>) },
  { weight: 1, arbitrary: fc.constantFrom(128, 129).map((n) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`V${i}`, "x"]))) },
);
const args = fc.oneof(
  { weight: 8, arbitrary: fc.array(text, { maxLength: 5 }) },
  { weight: 1, arbitrary: fc.constantFrom(256, 257).map((n) => Array.from({ length: n }, (_, i) => `a${i}`)) },
);
const healthCheck = fc.option(
  fc.record({
    type: fc.oneof({ weight: 5, arbitrary: fc.constantFrom(0, 1, 2, 3) }, { weight: 1, arbitrary: fc.constantFrom(4, 42, -1, 2 ** 31 - 1) }),
    path: fc.oneof(
      { weight: 3, arbitrary: fc.constantFrom("/ok", "", "/", "no-slash", "/with space", "/\u0000", `/${"p".repeat(1023)}`, `/${"p".repeat(1024)}`, "/tab\t", "/\u00a0") },
      { weight: 1, arbitrary: oddString },
    ),
    intervalMs: fc.oneof(fc.constantFrom(0, 99, 100, 1000, 3_600_000, 3_600_001), u32),
    timeoutMs: fc.oneof(fc.constantFrom(0, 9, 10, 60_000, 60_001), u32),
    failureThreshold: fc.oneof(fc.constantFrom(0, 1, 100, 101), u32),
    startTimeoutMs: fc.oneof(fc.constantFrom(0, 99, 100, 3_600_000, 3_600_001), u32),
  }),
  { nil: undefined },
);
const template = fc.record({
  command: fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom("/bin/true", "node", "prögram", "a\u0000b", "", "   ", "\t\n", "\u00a0", "x".repeat(MAX_TEXT), "x".repeat(MAX_TEXT + 1)) },
    { weight: 1, arbitrary: oddString },
  ),
  args,
  env,
  healthCheck,
  stopGraceMs: fc.oneof(fc.constantFrom(0, 1, 600_000, 600_001), u32),
});
/** A template with its health check zeroed: valid unless the command, args or env are not. */
const plainTemplate = template.map((t) => ({ ...t, healthCheck: undefined, stopGraceMs: 0 }));
/**
 * Valid templates, often the same one again (or one equal to it once its defaults are filled in and
 * its env sorted): such a template keeps the group's hash, and moves no node.
 */
const goodTemplate = fc.oneof(
  {
    weight: 2,
    arbitrary: fc.constantFrom<ApiTemplate>(
      { command: "node", args: [], env: {}, healthCheck: undefined, stopGraceMs: 0 },
      {
        command: "node",
        args: [],
        env: {},
        healthCheck: { type: 1, path: "/healthz", intervalMs: 1000, timeoutMs: 1000, failureThreshold: 3, startTimeoutMs: 10_000 },
        stopGraceMs: 5000,
      },
      { command: "/bin/true", args: ["a"], env: { A: "1", B: "2" }, healthCheck: { type: 3, path: "", intervalMs: 0, timeoutMs: 0, failureThreshold: 0, startTimeoutMs: 0 }, stopGraceMs: 0 },
      { command: "/bin/true", args: ["a"], env: { B: "2", A: "1" }, healthCheck: { type: 3, path: "/ignored", intervalMs: 0, timeoutMs: 0, failureThreshold: 0, startTimeoutMs: 0 }, stopGraceMs: 0 },
    ),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      command: fc.constantFrom("/bin/true", "node", "prögram", "/usr/bin/env"),
      args: fc.array(fc.constantFrom("a", "--flag", "x y", "😀", ""), { maxLength: 3 }),
      env: fc
        .array(fc.tuple(fc.constantFrom("A", "B", "_X", "toString", "constructor"), fc.constantFrom("1", "", "é")), { maxLength: 3 })
        .map((entries) => Object.fromEntries(entries) as Record<string, string>),
      healthCheck: fc.option(
        fc.record({
          type: fc.constantFrom(0, 1, 2, 3),
          path: fc.constantFrom("", "/ok"),
          intervalMs: fc.constantFrom(0, 100, 2000),
          timeoutMs: fc.constantFrom(0, 10, 1000),
          failureThreshold: fc.constantFrom(0, 1, 5),
          startTimeoutMs: fc.constantFrom(0, 100, 20_000),
        }),
        { nil: undefined },
      ),
      stopGraceMs: fc.constantFrom(0, 1, 5000, 600_000),
    }),
  },
);
const templateCorruptions: ((t: Record<string, unknown>) => Record<string, unknown>)[] = [
  (t) => ({ ...t, command: "" }),
  (t) => ({ ...t, command: "x".repeat(MAX_TEXT + 1) }),
  (t) => ({ ...t, env: { "1BAD": "x" } }),
  (t) => ({ ...t, env: { PORT: "1" } }),
  (t) => ({ ...t, args: Array.from({ length: 257 }, () => "a") }),
  (t) => ({ ...t, healthCheck: { type: 42, path: "", intervalMs: 0, timeoutMs: 0, failureThreshold: 0, startTimeoutMs: 0 } }),
  (t) => ({ ...t, healthCheck: { type: 1, path: "no-slash", intervalMs: 0, timeoutMs: 0, failureThreshold: 0, startTimeoutMs: 0 } }),
  (t) => ({ ...t, stopGraceMs: 600_001 }),
  () => ({}),
];

/** Min-ready: mostly absent (the server's default); a long one is only planned (see the taming below). */
const minReady = fc.oneof(
  { weight: 8, arbitrary: fc.constant(undefined) },
  { weight: 2, arbitrary: fc.constant(0) },
  { weight: 2, arbitrary: fc.integer({ min: 1, max: 20 }) },
  { weight: 1, arbitrary: fc.constantFrom(1000, MAX_DEADLINE_MS, MAX_DEADLINE_MS + 1, 2 ** 32 - 1) },
);
/** A canary with its auto-promotion, mostly none; a long auto-promotion leaves the graph at its gate until promoted. */
const canaryFields = fc.oneof(
  { weight: 10, arbitrary: fc.constant({ canary: 0, autoPromoteAfterMs: 0 }) },
  {
    weight: 4,
    arbitrary: fc.record({
      canary: fc.integer({ min: 1, max: 3 }),
      autoPromoteAfterMs: fc.oneof(
        { weight: 2, arbitrary: fc.constant(0) },
        { weight: 3, arbitrary: fc.integer({ min: 1, max: 30 }) },
        { weight: 1, arbitrary: fc.constantFrom(60_000, MAX_DEADLINE_MS) },
      ),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ canary: fc.constantFrom(0, 7, MAX_COUNT + 1, 2 ** 32 - 1), autoPromoteAfterMs: fc.constantFrom(0, 1, MAX_DEADLINE_MS + 1, 2 ** 32 - 1) }),
  },
);
/** Mostly absent; else a percent, 0% and 100% included, or one above 100%. */
const percent = fc.oneof(
  { weight: 12, arbitrary: fc.constant(undefined) },
  { weight: 4, arbitrary: fc.integer({ min: 0, max: 100 }) },
  { weight: 1, arbitrary: fc.constantFrom(0, 100, 101, 2 ** 32 - 1) },
);
const setSpecBody = fc
  .record({
    count: fc.oneof(
      { weight: 200, arbitrary: fc.integer({ min: 0, max: 6 }) },
      { weight: 20, arbitrary: fc.constantFrom(7, 8, 100, 1000, MAX_COUNT + 1, 1_000_000, 2 ** 31, 2 ** 32 - 1) },
      { weight: 1, arbitrary: fc.constant(MAX_COUNT) },
    ),
    version: fc.oneof({ weight: 20, arbitrary: fc.integer({ min: 1, max: 4 }) }, { weight: 3, arbitrary: fc.constantFrom(0, MAX_VERSION, 2 ** 31, 2 ** 32 - 1) }),
    maxSurge: fc.option(surge, { nil: undefined }),
    maxUnavailable: fc.option(surge, { nil: undefined }),
    maxSurgePercent: percent,
    maxUnavailablePercent: percent,
    dryRun: fc.oneof({ weight: 4, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
    expectRevision: revRef,
    onFailure: fc.oneof({ weight: 10, arbitrary: fc.constantFrom(0, 1, 2) }, { weight: 2, arbitrary: fc.constantFrom(3, 42, 99, -1, 2 ** 31 - 1, -(2 ** 31)) }),
    taskTimeoutMs: deadline,
    progressDeadlineMs: deadline,
    cpuMillis: reservation(MAX_CPU_MILLIS),
    memoryMb: reservation(MAX_MEMORY_MB),
    // Absent mostly: the group keeps its template.
    template: fc.oneof({ weight: 6, arbitrary: fc.constant(undefined) }, { weight: 3, arbitrary: goodTemplate }, { weight: 1, arbitrary: template }),
    minReadyMs: minReady,
    canaryFields,
  })
  .map(({ canaryFields: fields, ...body }) => ({ ...body, ...fields }))
  // A valid spec of many nodes, or whose starts must hold long, is only planned: the fuzzer starts no
  // thousands of nodes and waits for none.
  .map((body) => ((body.count > 8 && body.count <= MAX_COUNT) || (body.minReadyMs ?? 0) > 50 ? { ...body, dryRun: true } : body));

interface Op {
  rpc: Rpc;
  request: Record<string, unknown>;
  /** Requests on the graph the request makes, sent at once when it makes one: they find it running. */
  then?: Rpc[];
}
const op = <R extends Record<string, unknown>>(rpc: Rpc, request: fc.Arbitrary<R>): fc.Arbitrary<Op> => request.map((r) => ({ rpc, request: r }));

const setSpecOp = fc.oneof(
  {
    weight: 8,
    arbitrary: fc
      .tuple(
        op("setSpec", fc.tuple(fc.oneof({ weight: 4, arbitrary: modelGroup }, { weight: 1, arbitrary: badGroup }), setSpecBody).map(([group, body]) => ({ group, ...body }))),
        fc.oneof(
          { weight: 3, arbitrary: fc.constant<Rpc[]>([]) },
          { weight: 1, arbitrary: fc.array(fc.constantFrom<Rpc>("pauseGraph", "resumeGraph", "cancelGraph", "getGraph", "watchGraph", "promoteGraph"), { minLength: 1, maxLength: 3 }) },
        ),
      )
      .map(([setSpec, then]) => ({ ...setSpec, then })),
  },
  {
    weight: 2,
    arbitrary: op(
      "setSpec",
      fc.tuple(ghostGroup, setSpecBody, fc.constantFrom(...specCorruptions)).map(([group, body, corrupt]) => corrupt({ group, ...body })),
    ),
  },
  {
    // A canary rollout, promoted once it waits at its gate (or superseded before).
    weight: 2,
    arbitrary: fc
      .tuple(modelGroup, setSpecBody, fc.integer({ min: 1, max: 2 }), fc.constantFrom<Rpc[]>(["promoteGraph"], ["promoteGraph", "promoteGraph"], ["promoteGraph", "getGraph"]))
      .map(([group, body, canary, then]) => ({
        rpc: "setSpec" as Rpc,
        request: { group, ...body, count: Math.max(canary, Math.min(body.count, 6)), canary, autoPromoteAfterMs: 0 },
        then,
      })),
  },
);
const setTemplateOp = fc.oneof(
  {
    weight: 6,
    arbitrary: op(
      "setTemplate",
      fc.record({
        group: fc.oneof({ weight: 4, arbitrary: modelGroup }, { weight: 1, arbitrary: badGroup }),
        template: fc.option(fc.oneof({ weight: 2, arbitrary: goodTemplate }, { weight: 2, arbitrary: template }, { weight: 1, arbitrary: plainTemplate }), { nil: undefined, freq: 12 }),
      }),
    ),
  },
  {
    weight: 2,
    arbitrary: op(
      "setTemplate",
      fc.tuple(ghostGroup, plainTemplate, fc.constantFrom(...templateCorruptions)).map(([group, t, corrupt]) => ({ group, template: corrupt(t) })),
    ),
  },
);
const typedOp: fc.Arbitrary<Op> = fc.oneof(
  { weight: 8, arbitrary: setSpecOp },
  { weight: 4, arbitrary: setTemplateOp },
  { weight: 1, arbitrary: op("listNodes", fc.record({ group: anyGroup, all: fc.boolean(), wide: fc.boolean() })) },
  { weight: 1, arbitrary: op("watchNodes", fc.record({ group: anyGroup, afterSequence: sequence })) },
  { weight: 1, arbitrary: op("listGraphs", fc.record({ group: anyGroup, limit })) },
  { weight: 1, arbitrary: op("getGraph", fc.record({ graphId: idRef("graph") })) },
  {
    weight: 1,
    arbitrary: op("watchGraph", fc.record({ graphId: fc.oneof(idRef("graph"), fc.constant("")), group: anyGroup, afterSequence: sequence })),
  },
  { weight: 1, arbitrary: op("cancelGraph", fc.record({ graphId: idRef("graph") })) },
  { weight: 1, arbitrary: op("pauseGraph", fc.record({ graphId: idRef("graph") })) },
  { weight: 1, arbitrary: op("resumeGraph", fc.record({ graphId: idRef("graph") })) },
  { weight: 1, arbitrary: op("listRevisions", fc.record({ group: anyGroup, limit })) },
  {
    weight: 2,
    arbitrary: op(
      "rollback",
      fc.record({
        group: anyGroup,
        // 0: the newest earlier revision whose rollout succeeded.
        revision: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 8, arbitrary: fc.nat({ max: 8 }) }, { weight: 1, arbitrary: fc.constantFrom(2 ** 32, Number.MAX_SAFE_INTEGER) }),
        expectRevision: revRef,
        dryRun: fc.boolean(),
        withCount: fc.boolean(),
      }),
    ),
  },
  { weight: 1, arbitrary: op("getTemplate", fc.record({ group: anyGroup })) },
  { weight: 1, arbitrary: op("restartNode", fc.record({ nodeId: idRef("node") })) },
  { weight: 1, arbitrary: op("stopNode", fc.record({ nodeId: idRef("node") })) },
  { weight: 1, arbitrary: op("cloneNode", fc.record({ nodeId: idRef("node") })) },
  { weight: 1, arbitrary: op("killNode", fc.record({ nodeId: idRef("node") })) },
  { weight: 1, arbitrary: op("getNodeStats", fc.record({ nodeId: idRef("node") })) },
  { weight: 1, arbitrary: op("nodeLogs", fc.record({ nodeId: idRef("node"), follow: fc.boolean(), tailBytes: u32 })) },
  { weight: 1, arbitrary: op("promoteGraph", fc.record({ graphId: idRef("graph") })) },
  { weight: 1, arbitrary: op("describeNode", fc.record({ nodeId: idRef("node") })) },
  { weight: 1, arbitrary: op("listGroups", fc.constant({})) },
  { weight: 1, arbitrary: op("getGroup", fc.record({ group: anyGroup })) },
  { weight: 1, arbitrary: op("deleteGroup", fc.record({ group: fc.oneof(ghostGroup, badGroup) })) },
);

// ---------------------------------------------------------------------------------------
// Calling, recording and reporting

interface Outcome {
  code: Code;
  details?: string;
  response?: any;
}

function codeOf(error: unknown): Outcome {
  if (isAbortError(error)) return { code: "NO_ANSWER", details: "no answer before the wait ended" };
  if (error instanceof ClientError) {
    const code = Status[error.code]!;
    if (code === "INTERNAL" && error.details.startsWith("Error deserializing request")) return { code: "INTERNAL_DESERIALIZE", details: error.details };
    return { code, details: error.details };
  }
  return { code: "CLIENT_SIDE_ERROR", details: String(error) };
}

/**
 * How long to wait for an answer. A valid watch may rightly send nothing for a while: after
 * `quietMs` it is cancelled and counts as answered. Anything else must answer within `answerMs`.
 */
interface Wait {
  answerMs: number;
  quietMs?: number;
}

async function unary(call: (signal: AbortSignal) => Promise<unknown>, wait: Wait): Promise<Outcome> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), wait.answerMs);
  try {
    return { code: "OK", response: await call(abort.signal) };
  } catch (error) {
    return codeOf(error);
  } finally {
    clearTimeout(timer);
  }
}

/** Reads a stream's first message, then cancels it. */
async function firstMessage(open: (signal: AbortSignal) => AsyncIterable<unknown>, wait: Wait): Promise<Outcome> {
  const abort = new AbortController();
  let quiet = false;
  const timer = setTimeout(() => {
    quiet = wait.quietMs !== undefined;
    abort.abort();
  }, wait.quietMs ?? wait.answerMs);
  const iterator = open(abort.signal)[Symbol.asyncIterator]();
  try {
    const first = await iterator.next();
    return { code: "OK", response: first.done ? undefined : first.value };
  } catch (error) {
    if (quiet && isAbortError(error)) return { code: "OK", details: "no message yet" };
    return codeOf(error);
  } finally {
    clearTimeout(timer);
    abort.abort();
    await iterator.return?.(undefined).catch(() => undefined);
  }
}

function callTyped(client: DroverServiceClient, rpc: Rpc, request: Record<string, any>, wait: Wait): Promise<Outcome> {
  switch (rpc) {
    case "watchNodes":
      return firstMessage((signal) => client.watchNodes(request, { signal }), wait);
    case "watchGraph":
      return firstMessage((signal) => client.watchGraph(request, { signal }), wait);
    case "nodeLogs":
      return firstMessage((signal) => client.nodeLogs(request, { signal }), wait);
    default:
      return unary((signal) => (client[rpc] as unknown as (request: unknown, options: unknown) => Promise<unknown>).call(client, request, { signal }), wait);
  }
}

/** Every string in a request, however deep. */
function stringsOf(value: unknown, into: string[] = []): string[] {
  if (typeof value === "string") into.push(value);
  else if (value && typeof value === "object" && !(value instanceof Uint8Array)) {
    for (const [key, inner] of Object.entries(value)) {
      into.push(key);
      stringsOf(inner, into);
    }
  }
  return into;
}

/** Whether a request has a string longer than any field may be (such a request is invalid unless the field is ignored). */
const hasOversizedString = (request: unknown) => stringsOf(request).some((text) => text.length > MAX_TEXT);

/**
 * About how long the grpc-message trailer of an error quoting the request's long strings would be.
 * An error over ~70 KB never reaches the client: its trailers are never delivered, the call hangs,
 * and so does every other call on the same HTTP/2 connection until it is cancelled (see the todo
 * test below). Such lost answers are counted apart, as that known defect; requests with oversized
 * strings go each on a connection of its own so that they hold up nothing else.
 */
function quotedSize(request: unknown): number {
  return stringsOf(request)
    .filter((text) => text.length > 100)
    .reduce((sum, text) => sum + encodeURI(JSON.stringify(text)).length, 0);
}
const LOST_ANSWER_QUOTE = 40_000;

/** A client on an HTTP/2 connection of its own (grpc-js otherwise shares one per address). */
function isolatedClient(port: number) {
  const channel = createChannel(`127.0.0.1:${port}`, undefined, { "grpc.use_local_subchannel_pool": 1 });
  return { client: createClient(DroverServiceDefinition, channel), close: () => channel.close() };
}

/** A request, printable: long strings cut, the whole cut too. */
function show(value: unknown, max = 1500): string {
  const text = JSON.stringify(value, (_key, v) => {
    if (typeof v === "string" && v.length > 120) return `${v.slice(0, 60)}…(${v.length} chars)`;
    if (Array.isArray(v) && v.length > 12) return [...v.slice(0, 6), `…(${v.length} items)`];
    return v;
  });
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

/** Bytes, printable: their length and the first of them in hex. */
const hex = (bytes: Uint8Array, max = 96) => `${bytes.length} bytes ${Buffer.from(bytes).subarray(0, max).toString("hex")}${bytes.length > max ? "…" : ""}`;

class Tally {
  readonly counts = new Map<string, Map<Code, number>>();
  add(kind: string, code: Code) {
    const row = this.counts.get(kind) ?? new Map<Code, number>();
    row.set(code, (row.get(code) ?? 0) + 1);
    this.counts.set(kind, row);
  }
  total(): number {
    let sum = 0;
    for (const row of this.counts.values()) for (const n of row.values()) sum += n;
    return sum;
  }
  report(): string[] {
    return [...this.counts.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([kind, row]) => `  ${kind}: ${[...row.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([code, n]) => `${code} ${n}`).join(", ")}`);
  }
}

/** A pino logger that keeps what the server logs at error level: an unexpected error anywhere. */
function errorRecordingLogger() {
  const errors: string[] = [];
  const logger = pino(
    { level: "error" },
    new Writable({
      write(chunk, _encoding, done) {
        errors.push(String(chunk));
        done();
      },
    }),
  );
  return { logger, errors };
}

/** The seed of a property: FUZZ_SEED to replay a run, else a new one (printed). */
function newSeed(): number {
  return process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : Math.floor(Math.random() * 2 ** 31);
}

// ---------------------------------------------------------------------------------------
// The model of what the accepted requests made

type GraphKind = "update" | "operation";

/** When a request went: its batch (the requests of one go at once), and when it was sent and answered. */
interface Timing {
  batch: number;
  sentAt: number;
  answeredAt: number;
}

/**
 * An accepted answer that names a revision and its spec, kept to be judged once the fuzz is over:
 * what it may rightly say depends on the revision its request found current, which only the
 * stored history tells.
 */
interface Report extends Timing {
  rpc: "setSpec" | "setTemplate" | "rollback" | "stopNode" | "cloneNode";
  group: string;
  /** The request as the server decoded it. */
  seen: Record<string, any>;
  /** The revision stored, or (a dry run, or nothing to do) the current one. */
  revision: number;
  spec: ApiSpec;
  dryRun: boolean;
  nothingToDo: boolean;
  /** A rollback's target. */
  restores?: number;
  /** SetTemplate's template, as stored. */
  template?: ApiTemplate;
  where: string;
}

/** Whether a graph may wait at a promote gate: it has one, it has none, or its tasks are not known. */
type Gate = "gate" | "none" | "maybe";

function gateOf(graph: ApiGraph): Gate {
  // Only a graph listed without its tasks has none (a stored graph has at least one task).
  if (graph.tasks.length > 0) return graph.tasks.some((task) => task.action === TaskAction.TASK_ACTION_AWAIT_PROMOTION) ? "gate" : "none";
  return graph.reason === GraphReason.GRAPH_REASON_UPDATE && (graph.spec?.canary ?? 0) > 0 ? "maybe" : "none";
}

class Model {
  /** Per group, the spec each revision number was reported with by an accepted request. */
  readonly revisions = new Map<string, Map<number, ApiSpec>>();
  /** Per group, the graphs accepted requests reported making. */
  readonly graphs = new Map<string, Map<string, GraphKind>>();
  /** Groups some accepted request changed. */
  readonly mutated = new Set<string>();
  /** Per group, the templates SetTemplate kept for its first update, by batch (several when sent at once). */
  readonly pendingTemplates = new Map<string, { batch: number; templates: ApiTemplate[] }[]>();
  readonly reports: Report[] = [];
  /** Groups a valid request asked to reserve cpu or memory for. */
  readonly reservingGroups = new Set<string>();
  readonly hashes = new TemplateHashes();
  /** The batch being sent. */
  batch = 0;
  readonly nodeIds: string[] = [];
  readonly graphIds: string[] = [];
  private readonly nodeSet = new Set<string>();
  private readonly graphSet = new Set<string>();
  private readonly gates = new Map<string, Gate>();
  readonly violations: string[] = [];

  violation(message: string) {
    this.violations.push(message);
  }

  learnNode(id: string | undefined) {
    if (id && isUlid(id) && !this.nodeSet.has(id)) {
      this.nodeSet.add(id);
      this.nodeIds.push(id);
    }
  }

  learnGraph(id: string | undefined, graph?: ApiGraph) {
    if (!id || !isUlid(id)) return;
    if (!this.graphSet.has(id)) {
      this.graphSet.add(id);
      this.graphIds.push(id);
    }
    // What the tasks say is final; a listing without them only says what may be.
    const gate = graph ? gateOf(graph) : "maybe";
    if (this.gates.get(id) === undefined || (this.gates.get(id) === "maybe" && gate !== "maybe")) this.gates.set(id, gate);
  }

  readonly knowledge: Knowledge = {
    node: (id) => this.nodeSet.has(id),
    graph: (id) => this.graphSet.has(id),
    gate: (id) => this.gates.get(id) !== "none",
    reserving: (group) => this.reservingGroups.has(group),
  };

  latestRevision(group: string): number {
    return Math.max(0, ...(this.revisions.get(group)?.keys() ?? []));
  }

  revision(group: string, revision: number, spec: ApiSpec | undefined, what: string) {
    if (!(revision >= 1)) return this.violation(`${what}: an accepted update reported revision ${revision}`);
    const specs = this.revisions.get(group) ?? new Map<number, ApiSpec>();
    this.revisions.set(group, specs);
    const before = specs.get(revision);
    if (before && !same(before, spec)) {
      this.violation(`${what}: revision ${revision} of ${group} reported with two specs: ${show(before)} and ${show(spec)}`);
    }
    specs.set(revision, spec!);
    this.mutated.add(group);
  }

  graph(group: string, graph: ApiGraph | undefined, kind: GraphKind) {
    if (!graph?.id) return;
    const graphs = this.graphs.get(group) ?? new Map<string, GraphKind>();
    graphs.set(graph.id, kind);
    this.graphs.set(group, graphs);
    this.learnGraph(graph.id, graph);
    this.mutated.add(group);
  }

  /** SetTemplate kept a template for the group's first update. */
  keepPending(group: string, batch: number, template: ApiTemplate) {
    const entries = this.pendingTemplates.get(group) ?? [];
    this.pendingTemplates.set(group, entries);
    if (entries.at(-1)?.batch !== batch) entries.push({ batch, templates: [] });
    entries.at(-1)!.templates.push(template);
  }

  /**
   * The templates a request of the batch may have found kept for the group's first update: the
   * last batch's before it (one of them was the last to arrive), or none, and any of its own batch's.
   */
  pendingAt(group: string, batch: number): (ApiTemplate | undefined)[] {
    const entries = this.pendingTemplates.get(group) ?? [];
    const before = entries.filter((entry) => entry.batch < batch).at(-1);
    const during = entries.filter((entry) => entry.batch === batch).flatMap((entry) => entry.templates);
    return [...(before ? before.templates : [undefined]), ...during];
  }

  /** Replaces a placeholder (a known node or graph, the current revision) with a value. */
  resolve(request: Record<string, unknown>): Record<string, unknown> {
    const resolved: Record<string, unknown> = { ...request };
    for (const [key, value] of Object.entries(request)) {
      if (value && typeof value === "object" && "known" in value) {
        const { known, index, cut, short } = value as { known: "node" | "graph"; index: number; cut?: number; short?: boolean };
        const ids = known === "node" ? this.nodeIds : this.graphIds;
        // Recent ids first: they are the ones still live or running.
        const id = ids.length === 0 ? "01ARZ3NDEKTSV4RRFFQ69G5FAV" : ids[ids.length - 1 - (index % Math.min(ids.length, 40))]!;
        resolved[key] = short ? `${id.slice(0, 6)}…${id.slice(-4)}` : id.slice(0, cut);
      } else if (value === "current" && key === "expectRevision") {
        resolved[key] = this.latestRevision(groupOf(String(request.group ?? "")));
      }
    }
    return resolved;
  }
}

function same(a: unknown, b: unknown): boolean {
  try {
    assert.deepEqual(a, b);
    return true;
  } catch {
    return false;
  }
}

/** Checks an accepted answer against the request and feeds the model. */
function absorb(model: Model, rpc: Rpc, seen: Record<string, any>, response: any, timing: Timing) {
  const where = `${rpc} ${show(seen, 600)}`;
  const check = (ok: boolean, message: string) => {
    if (!ok) model.violation(`${where}: ${message}; answer ${show(response, 600)}`);
  };
  const group = typeof seen.group === "string" ? groupOf(seen.group) : undefined;
  const hashOk = (spec: ApiSpec | undefined) => {
    const problem = model.hashes.problem(spec);
    check(problem === undefined, `the spec answered breaks the template hash rules: ${problem}`);
  };
  const update = (result: any, kind: string) => {
    if (!result) return check(false, "no update in the answer");
    model.revision(result.group, result.revision, result.spec, where);
    model.graph(result.group, result.graph, "update");
    check(result.nothingToDo === (result.graph === undefined), `${kind}: nothing_to_do disagrees with the graph`);
    if (result.graph) check(result.graph.revision === result.revision && result.graph.group === result.group, `${kind}: the graph is not the revision's`);
  };
  const report = (reported: Report["rpc"], result: any, extra: Partial<Report> = {}) => {
    if (!result?.spec) return;
    hashOk(result.spec);
    model.reports.push({
      rpc: reported,
      group: result.group,
      seen,
      revision: result.revision,
      spec: result.spec,
      dryRun: !!seen.dryRun,
      nothingToDo: result.nothingToDo,
      where,
      ...timing,
      ...extra,
    });
  };
  switch (rpc) {
    case "setSpec": {
      check(response.group === group, "the answer names another group");
      const expected = expectedSpec(seen as SetSpecSeen);
      check(same(ownFields(response.spec), ownFields(expected)), `the spec answered is not the one asked for (${show(ownFields(expected))})`);
      if (seen.template) check(same(response.spec?.template, expected.template), `the template answered is not the one sent, with defaults (${show(expected.template, 400)})`);
      if (seen.expectRevision !== undefined) {
        // An update stores the next revision; a dry run, or one with nothing to do, answers the current one.
        const ok = response.revision === seen.expectRevision || (!seen.dryRun && response.revision === seen.expectRevision + 1);
        check(ok, `accepted with expect_revision ${seen.expectRevision} but answered revision ${response.revision}`);
      }
      if (seen.dryRun) {
        check(!response.graph || response.graph.id === "", "a dry run answered a stored graph");
      } else {
        update(response, "set spec");
      }
      report("setSpec", response);
      break;
    }
    case "rollback": {
      if (seen.revision !== 0) check(response.restores === seen.revision, `restored revision ${response.restores}`);
      check(response.update?.group === group, "the answer names another group");
      if (!seen.dryRun) update(response.update, "rollback");
      report("rollback", response.update, { restores: response.restores });
      break;
    }
    case "stopNode":
    case "cloneNode":
      update(response.update, rpc);
      report(rpc, response.update);
      break;
    case "restartNode":
      check(!!response.graph?.id, "no graph");
      if (response.graph) model.graph(response.graph.group, response.graph, "operation");
      break;
    case "killNode":
      if (response.node) model.mutated.add(response.node.group);
      break;
    case "setTemplate": {
      const expected = templateOracle(seen.template).stored;
      check(same(response.template, expected), `the template stored is not the one sent, with defaults (${show(expected, 400)})`);
      model.mutated.add(group!);
      if (response.update) {
        // The group has a spec: the template is a new revision of it, rolled out like any update.
        check(response.update.group === group, "the update names another group");
        check(same(response.update.spec?.template, expected), "the update's spec does not hold the template");
        update(response.update, "set template");
        report("setTemplate", response.update, { template: expected });
      } else {
        model.keepPending(group!, timing.batch, response.template);
      }
      break;
    }
    case "listNodes":
      for (const node of response.nodes) model.learnNode(node.id);
      check(response.nodes.every((node: any) => node.group === group), "a node of another group");
      if (!seen.all) check(response.nodes.every((node: any) => node.state !== NodeState.NODE_STATE_STOPPED), "a stopped node without all");
      break;
    case "watchNodes":
      for (const node of response?.snapshot ?? []) model.learnNode(node.id);
      check((response?.snapshot ?? []).every((node: any) => node.group === group), "a node of another group");
      break;
    case "listGroups": {
      const names: string[] = response.groups.map((status: any) => status.group);
      check(names.every((name, i) => i === 0 || names[i - 1]! < name), "groups not by name");
      check(names.every((name) => !GHOST_GROUPS.includes(name)), "a ghost group is listed");
      for (const status of response.groups) if (status.graph) model.learnGraph(status.graph.id, status.graph);
      break;
    }
    case "getGroup":
      check(response.group?.group === group, "another group");
      if (response.group?.graph) model.learnGraph(response.group.graph.id, response.group.graph);
      check(response.waiting.every((task: any) => task.state === TaskState.TASK_STATE_PENDING && task.waiting !== ""), "a task that does not wait");
      break;
    case "listGraphs":
      for (const graph of response.graphs) model.learnGraph(graph.id, graph);
      check(response.graphs.length <= (seen.limit || 20), "more graphs than the limit");
      check(response.graphs.every((graph: any) => graph.group === group), "a graph of another group");
      break;
    case "listRevisions": {
      const numbers = response.revisions.map((revision: any) => revision.revision);
      check(numbers.length <= (seen.limit || 20), "more revisions than the limit");
      check(numbers.every((n: number, i: number) => i === 0 || numbers[i - 1] === n + 1), "revisions not newest first without gaps");
      break;
    }
    case "getGraph":
      check(names(seen.graphId, response.graph?.id), "another graph");
      if (response.graph) model.learnGraph(response.graph.id, response.graph);
      for (const task of response.graph?.tasks ?? []) model.learnNode(task.nodeId);
      break;
    case "watchGraph":
      if (response?.snapshot) {
        model.learnGraph(response.snapshot.id, response.snapshot);
        if (seen.graphId) check(names(seen.graphId, response.snapshot.id), "another graph's snapshot");
      }
      break;
    case "promoteGraph":
      if (seen.graphId) check(names(seen.graphId, response.graph?.id), "another graph");
      break;
    case "getNodeStats":
      check(names(seen.nodeId, response.node?.id), "another node");
      break;
    case "describeNode": {
      check(names(seen.nodeId, response.node?.id), "another node");
      const events: any[] = response.events;
      check(events.length <= 1000, "more than the last 1000 events");
      check(
        events.every((event) => event.type === EventType.EVENT_TYPE_NODE && event.nodeId === response.node?.id && event.group === response.node?.group),
        "an event that is not one of the node's",
      );
      check(events.every((event, i) => i === 0 || events[i - 1].sequence < event.sequence), "events not oldest first");
      break;
    }
    default:
      break;
  }
}

// ---------------------------------------------------------------------------------------
// The history, judged once the fuzz is over

type StoredRevision = { revision: number; spec?: ApiSpec; graphId: string; createdAt?: Date };

/**
 * The revisions a request may have found current when the server read the group: the one a
 * dry run (or a request with expect_revision) names, the one before the revision an update
 * stored, or either for an update with nothing to do (it stores no revision when the spec is
 * the current one).
 */
function basesOf(report: Report): number[] {
  if (report.seen.expectRevision !== undefined) return [report.seen.expectRevision];
  if (report.dryRun) return [report.revision];
  if (report.nothingToDo) return [report.revision - 1, report.revision];
  return [report.revision - 1];
}

/**
 * The specs a report may rightly answer when its request found `base` current (0: none).
 * Where the template comes from the request (or one kept for the first update), its hash is the
 * server's to compute: it is judged by `TemplateHashes`, so the answered one is expected.
 */
function specsFor(model: Model, report: Report, base: number, byNumber: Map<number, StoredRevision>): ApiSpec[] | string {
  const current = base === 0 ? undefined : byNumber.get(base)?.spec;
  if (base !== 0 && !current) return `revision ${base} is not stored`;
  const computedHash = (template: ApiTemplate | undefined) => (template ? report.spec.templateHash : "");
  switch (report.rpc) {
    case "setSpec": {
      const own = expectedSpec(report.seen as SetSpecSeen);
      if (own.template) return [{ ...own, templateHash: computedHash(own.template) }];
      // No template sent: the current revision's, with its hash; or the one kept for the first update.
      if (current) return [{ ...own, template: current.template, templateHash: current.templateHash }];
      return model.pendingAt(report.group, report.batch).map((template) => ({ ...own, template, templateHash: computedHash(template) }));
    }
    case "setTemplate":
      if (!current) return "SetTemplate answered an update of a group that had no spec";
      return [{ ...current, template: report.template, templateHash: computedHash(report.template) }];
    case "rollback": {
      const target = byNumber.get(report.restores ?? 0)?.spec;
      if (!target || !current) return `no revision ${report.restores} or ${base} to roll back from and to`;
      // The target's spec exactly, template and hash included; its count only when asked for.
      return [atCount(target, report.seen.withCount ? target.count : current.count)];
    }
    case "stopNode":
      if (!current) return "StopNode answered an update of a group that had no spec";
      return [atCount(current, Math.max(0, current.count - 1))];
    case "cloneNode":
      if (!current) return "CloneNode answered an update of a group that had no spec";
      return [atCount(current, current.count + 1)];
  }
}

/**
 * The revisions "the newest earlier revision whose rollout succeeded (or that needed no graph)"
 * may be for a read of the group made between `readAfter` and `readBefore` when `base` was current,
 * newest first; empty: there was none. A rollout that finished within the window may or may not
 * have been seen.
 */
function lastSucceededCandidates(base: number, byNumber: Map<number, StoredRevision>, graphById: Map<string, ApiGraph>, readAfter: number, readBefore: number): number[] {
  const candidates: number[] = [];
  for (let revision = base - 1; revision >= 1; revision--) {
    const stored = byNumber.get(revision);
    if (!stored) continue;
    let reached: "yes" | "no" | "maybe" = "yes";
    if (stored.graphId !== "") {
      const graph = graphById.get(stored.graphId);
      const finished = graph?.finishedAt?.getTime();
      if (graph?.state !== GraphState.GRAPH_STATE_SUCCEEDED || finished === undefined) reached = "no";
      else reached = finished < readAfter ? "yes" : finished > readBefore ? "no" : "maybe";
    }
    if (reached === "no") continue;
    candidates.push(revision);
    if (reached === "yes") break;
  }
  return candidates;
}

/** Judges every report of the group against its stored history; returns what is wrong. */
function judgeReports(model: Model, group: string, byNumber: Map<number, StoredRevision>, graphById: Map<string, ApiGraph>): string[] {
  const problems: string[] = [];
  for (const report of model.reports) {
    if (report.group !== group) continue;
    const tried: string[] = [];
    let ok = false;
    for (const base of basesOf(report)) {
      const specs = specsFor(model, report, base, byNumber);
      if (typeof specs === "string") {
        tried.push(`from revision ${base}: ${specs}`);
        continue;
      }
      let restoresOk = true;
      if (report.rpc === "rollback" && report.seen.revision === 0) {
        const candidates = lastSucceededCandidates(base, byNumber, graphById, report.sentAt, report.answeredAt);
        restoresOk = candidates.includes(report.restores!);
        if (!restoresOk) tried.push(`from revision ${base}: the last revision whose rollout succeeded is ${candidates.join(" or ") || "none"}, not ${report.restores}`);
      }
      const match = specs.some((spec) => same(spec, report.spec));
      if (!match) tried.push(`from revision ${base}: expected ${specs.map((spec) => show(spec, 700)).join(" or ")}`);
      if (match && restoresOk) {
        ok = true;
        break;
      }
    }
    if (!ok) problems.push(`${group}: ${report.where} answered revision ${report.revision} with ${show(report.spec, 700)}: ${tried.join("; ")}`);
  }
  return problems;
}

// ---------------------------------------------------------------------------------------
// Raw requests: bytes onto the wire

/** A protobuf varint of any size (including ones too long for any field). */
function varint(value: bigint): number[] {
  const bytes: number[] = [];
  do {
    let byte = Number(value & 0x7fn);
    value >>= 7n;
    if (value > 0n) byte |= 0x80;
    bytes.push(byte);
  } while (value > 0n);
  return bytes;
}

interface WireField {
  field: number;
  wire: number;
  value: bigint | Uint8Array;
}

function encodeWire(fields: readonly WireField[]): Buffer {
  const out: number[] = [];
  for (const { field, wire, value } of fields) {
    out.push(...varint((BigInt(field) << 3n) | BigInt(wire)));
    if (wire === 0) out.push(...varint(typeof value === "bigint" ? value : BigInt(value.length)));
    else if (wire === 1 || wire === 5) {
      const width = wire === 1 ? 8 : 4;
      let v = typeof value === "bigint" ? value : 0n;
      for (let i = 0; i < width; i++, v >>= 8n) out.push(Number(v & 0xffn));
    } else if (wire === 2) {
      const bytes = value instanceof Uint8Array ? value : new Uint8Array();
      out.push(...varint(BigInt(bytes.length)), ...bytes);
    }
    // Wire types 3 and 4 (groups) and 6 and 7 (no such type) carry nothing.
  }
  return Buffer.from(out);
}

const varintValue = fc.oneof(
  fc.bigInt({ min: 0n, max: 10n }),
  fc.constantFrom(2n ** 31n - 1n, 2n ** 31n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 63n, 2n ** 64n - 1n, 2n ** 70n),
  fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
);
const payload: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.uint8Array({ maxLength: 30 }),
  fc.constantFrom("web", "a", "default", "ghost", "x", "/bin/true", "PORT", "__proto__", LONGEST_GROUP).map((s) => new Uint8Array(Buffer.from(s))),
  fc.constantFrom([0xff], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0x61, 0x00, 0x62], [0xe2, 0x82]).map((bytes) => new Uint8Array(bytes)),
  ulid.map((id) => new Uint8Array(Buffer.from(id))),
);
const wireField: fc.Arbitrary<WireField> = fc.oneof(
  fc.record({ field: fc.integer({ min: 1, max: 16 }), wire: fc.constant(0), value: varintValue }),
  fc.record({ field: fc.integer({ min: 1, max: 16 }), wire: fc.constant(2), value: payload }),
  fc.record({
    field: fc.oneof(fc.integer({ min: 0, max: 20 }), fc.constantFrom(2 ** 29 - 1, 19_000)),
    wire: fc.integer({ min: 0, max: 7 }),
    value: fc.oneof(varintValue, payload),
  }),
);
/** A message field (a template, a health check) whose content is itself wire fields. */
const nestedField = fc.record({
  field: fc.integer({ min: 1, max: 4 }),
  fields: fc.array(fc.oneof(wireField, fc.record({ field: fc.constant(3), wire: fc.constant(2), value: fc.array(wireField, { maxLength: 3 }).map((inner) => new Uint8Array(encodeWire(inner))) })), { maxLength: 6 }),
}).map(({ field, fields }) => ({ field, wire: 2, value: new Uint8Array(encodeWire(fields)) }) as WireField);

interface Mutation {
  kind: "truncate" | "flip" | "insert" | "append" | "repeat" | "lie";
  at: number;
  byte: number;
  extra: Uint8Array;
}
function mutate(bytes: Buffer, m: Mutation): Buffer {
  const at = bytes.length === 0 ? 0 : m.at % (bytes.length + 1);
  switch (m.kind) {
    case "truncate":
      return bytes.subarray(0, at);
    case "flip": {
      const copy = Buffer.from(bytes);
      if (copy.length > 0) copy[at % copy.length] ^= m.byte || 1;
      return copy;
    }
    case "insert":
      return Buffer.concat([bytes.subarray(0, at), Buffer.from([m.byte]), bytes.subarray(at)]);
    case "append":
      return Buffer.concat([bytes, Buffer.from(m.extra)]);
    case "repeat":
      return Buffer.concat([bytes, bytes]);
    case "lie":
      // A length-delimited field claiming more bytes than follow.
      return Buffer.concat([bytes, Buffer.from([0x0a, 0x7f, m.byte])]);
  }
}
const mutation: fc.Arbitrary<Mutation> = fc.record({
  kind: fc.constantFrom("truncate", "flip", "insert", "append", "repeat", "lie"),
  at: fc.nat(),
  byte: fc.integer({ min: 0, max: 255 }),
  extra: fc.uint8Array({ maxLength: 12 }),
});

/** An op with its placeholders filled in with strangers, for a server that knows nothing. */
function withoutPlaceholders(request: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(request)) {
    if (value && typeof value === "object" && "known" in value) out[key] = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
    else if (value === "current") out[key] = 1;
    else out[key] = value;
  }
  return out;
}

type RawOp = { method: number; bytes: Buffer; how: string } | { unknownPath: string; bytes: Buffer; how: string };
const methodIndex = fc.integer({ min: 0, max: METHODS.length - 1 });
const rawOp: fc.Arbitrary<RawOp> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ method: methodIndex, bytes: fc.uint8Array({ maxLength: 48 }).map((b) => Buffer.from(b)), how: fc.constant("random bytes") }) },
  {
    weight: 1,
    arbitrary: fc.record({ method: methodIndex, bytes: fc.uint8Array({ minLength: 1000, maxLength: 40_000 }).map((b) => Buffer.from(b)), how: fc.constant("many random bytes") }),
  },
  {
    weight: 4,
    arbitrary: fc.tuple(typedOp, mutation).map(([{ rpc, request }, m]) => {
      const method = METHOD.get(rpc)!;
      const bytes = Buffer.from(method.type.encode(method.type.fromPartial(withoutPlaceholders(request))).finish());
      return { method: METHODS.indexOf(method), bytes: mutate(bytes, m), how: `${m.kind} of an encoded request` };
    }),
  },
  {
    weight: 5,
    arbitrary: fc
      .record({ method: methodIndex, fields: fc.array(fc.oneof({ weight: 4, arbitrary: wireField }, { weight: 1, arbitrary: nestedField }), { maxLength: 8 }) })
      .map(({ method, fields }) => ({ method, bytes: encodeWire(fields), how: "wire fields" })),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      unknownPath: fc.constantFrom("/drover.v1.DroverService/Nope", "/drover.v1.DroverService/", "/x/y", "/drover.v1.DroverService/setSpec", "/grpc.health.v1.Health/Nope"),
      bytes: fc.uint8Array({ maxLength: 16 }).map((b) => Buffer.from(b)),
      how: fc.constant("unknown method"),
    }),
  },
);

function rawCall(client: grpc.Client, path: string, streaming: boolean, bytes: Buffer, wait: Wait): Promise<Outcome> {
  const serialize = (value: Buffer) => value;
  const deserialize = (value: Buffer) => value;
  const outcomeOf = (error: grpc.ServiceError): Outcome => {
    const code = Status[error.code]!;
    if (code === "DEADLINE_EXCEEDED") return { code: "NO_ANSWER", details: "no answer before the wait ended" };
    if (code === "INTERNAL" && error.details.startsWith("Error deserializing request")) return { code: "INTERNAL_DESERIALIZE", details: error.details };
    return { code, details: error.details };
  };
  if (!streaming) {
    return new Promise((resolve) => {
      client.makeUnaryRequest(path, serialize, deserialize, bytes, new grpc.Metadata(), { deadline: Date.now() + wait.answerMs }, (error, value) =>
        resolve(error ? outcomeOf(error) : { code: "OK", response: value }),
      );
    });
  }
  return new Promise((resolve) => {
    const call = client.makeServerStreamRequest(path, serialize, deserialize, bytes, new grpc.Metadata(), { deadline: Date.now() + wait.answerMs });
    let settled = false;
    const settle = (outcome: Outcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(outcome);
      call.cancel();
    };
    const timer = setTimeout(() => settle({ code: "OK", details: "no message yet" }), wait.quietMs ?? 2 ** 30);
    call.on("data", (value: Buffer) => settle({ code: "OK", response: value }));
    call.on("error", (error: grpc.ServiceError) => settle(outcomeOf(error)));
    call.on("end", () => settle({ code: "OK" }));
  });
}

/** A SetSpec request the server would accept for many nodes, or long-held starts, is turned into a dry run (the last dry_run wins). */
function tame(method: (typeof METHODS)[number], bytes: Buffer): Buffer {
  if (method.rpc !== "setSpec") return bytes;
  try {
    const decoded = method.type.decode(bytes) as unknown as SetSpecSeen;
    if ((decoded.count > 8 || (decoded.minReadyMs ?? 0) > 50) && !decoded.dryRun) return Buffer.concat([bytes, Buffer.from([0x30, 0x01])]);
  } catch {
    // Undecodable: nothing to tame.
  }
  return bytes;
}

// ---------------------------------------------------------------------------------------

const TYPED_RUNS = Number(process.env.FUZZ_RUNS ?? 700);
const RAW_RUNS = Number(process.env.FUZZ_RAW_RUNS ?? 400);
const NEVER = ["UNKNOWN", "INTERNAL", "CLIENT_SIDE_ERROR", "NO_ANSWER"];

async function startFuzzServer() {
  const { logger, errors } = errorRecordingLogger();
  const server = await startTestServer({
    driver: { latency: { min: 0, max: 2 } },
    server: {
      logger,
      parallelism: 16,
      capacity: CAPACITY,
      retryBaseDelayMs: 1,
      retryMaxDelayMs: 5,
      watcherCapacity: 100_000,
      // Killed nodes are replaced without the crash-loop's backoff of seconds: the end of the fuzz
      // checks that a group whose rollout reached its spec holds it again.
      crashLoop: { initialMs: 1, maxMs: 20, resetAfterMs: 1000 },
    },
  });
  return { ...server, errors };
}

/** The server still does its job: a new group reaches its spec. */
async function stillServes(s: TestServer, group: string) {
  const response = await s.client.setSpec({ group, count: 2, version: 1 });
  await drain(s.client.watchGraph({ graphId: response.graph!.id }));
  assert.equal((await s.client.getGraph({ graphId: response.graph!.id })).graph!.state, GraphState.GRAPH_STATE_SUCCEEDED);
  const nodes = (await s.client.listNodes({ group })).nodes;
  assert.deepEqual(nodes.map((node) => node.state), [NodeState.NODE_STATE_RUNNING, NodeState.NODE_STATE_RUNNING]);
}

describe("fuzzing the gRPC API of a real server", () => {
  it("covers every RPC of the service", () => {
    assert.deepEqual([...RPCS].sort(), Object.keys(DroverServiceDefinition.methods).sort());
  });

  it("answers thousands of random and malformed typed requests as the rules say, and stores exactly what the accepted ones made", async (t) => {
    const s = await startFuzzServer();
    t.after(() => s.stop());
    const model = new Model();
    const tally = new Tally();
    let harnessCalls = 0;
    const seed = newSeed();
    t.diagnostic(`seed ${seed} (FUZZ_SEED), ${TYPED_RUNS} runs (FUZZ_RUNS)`);
    const started = Date.now();

    /** Learns the live and stopped nodes and the graphs of the model's groups, for requests that name them. */
    const refresh = async () => {
      for (const group of MODEL_GROUPS) {
        harnessCalls += 2;
        for (const node of (await unlessNotFound(s.client.listNodes({ group, all: true })))?.nodes ?? []) model.learnNode(node.id);
        for (const graph of (await unlessNotFound(s.client.listGraphs({ group, limit: 10 })))?.graphs ?? []) model.learnGraph(graph.id);
      }
    };

    const inFlight = new Set<string>();
    const lostAnswers: string[] = [];
    /** Invalid requests with oversized strings, answered (or lost) apart, so that a lost answer holds up no batch. */
    const apart: Promise<void>[] = [];
    if (process.env.FUZZ_TRACE) {
      const tracer = setInterval(() => console.error(`${new Date().toISOString()} in flight: ${[...inFlight].join("\n")}`), 1000);
      t.after(() => clearInterval(tracer));
    }
    const runOne = async (generated: Op, batch: number, shared?: DroverServiceClient): Promise<void> => {
      const request = model.resolve(generated.request);
      const seen = asSeen(generated.rpc, request);
      const { invalid, allowed: allowedBefore } = oracle(generated.rpc, seen, model.knowledge);
      // Before anything is sent: a request of the same batch may find the spec this one stores.
      if (generated.rpc === "setSpec" && !invalid && (seen.cpuMillis > 0 || seen.memoryMb > 0)) model.reservingGroups.add(groupOf(seen.group));
      if (!shared && invalid && hasOversizedString(seen)) {
        // Its answer may be lost, with every other on its connection: it goes apart, on a connection of its own.
        const isolated = isolatedClient(s.server.port);
        apart.push(runOne(generated, batch, isolated.client).finally(isolated.close));
        return;
      }
      const client = shared ?? s.client;
      // An invalid request must be answered at once; a valid watch may wait for events.
      const label = `${generated.rpc} ${show(request, 300)}`;
      inFlight.add(label);
      const wait = invalid ? { answerMs: 5_000 } : allowedBefore.includes("OK") && STREAMING.has(generated.rpc) ? { answerMs: 20_000, quietMs: 40 } : { answerMs: 20_000 };
      const sentAt = Date.now();
      const outcome = await callTyped(client, generated.rpc, request, wait);
      inFlight.delete(label);
      // Judged with what the model knows once the answer is in: all the batch's requests have been sent.
      const { allowed } = oracle(generated.rpc, seen, model.knowledge);
      const where = () => `${generated.rpc} ${show(request)} → ${outcome.code} ${outcome.details?.slice(0, 300) ?? ""}`;
      if (outcome.code === "NO_ANSWER" && invalid && quotedSize(seen) >= LOST_ANSWER_QUOTE) {
        tally.add(`${generated.rpc} (invalid, quoting ${LOST_ANSWER_QUOTE / 1000}+ KB)`, "NO_ANSWER (known defect)");
        lostAnswers.push(where());
        return;
      }
      tally.add(`${generated.rpc}${invalid ? " (invalid)" : ""}`, outcome.code);
      if (NEVER.includes(outcome.code) || outcome.code === "INTERNAL_DESERIALIZE") model.violation(`never ${outcome.code}: ${where()}`);
      else if (!allowed.includes(outcome.code)) {
        model.violation(`${invalid ? "invalid" : "valid"} request, expected ${allowed.join(" or ")}: ${where()}`);
      }
      if (generated.rpc === "setSpec" || generated.rpc === "setTemplate") {
        const group = groupOf(String(seen.group));
        if (GHOST_GROUPS.includes(group) && outcome.code === "OK" && !(generated.rpc === "setSpec" && seen.dryRun)) {
          model.violation(`accepted a request made invalid on purpose: ${where()}`);
        }
      }
      if (outcome.code === "OK" && outcome.response !== undefined) absorb(model, generated.rpc, seen, outcome.response, { batch, sentAt, answeredAt: Date.now() });
      const graphId: string | undefined = outcome.response?.graph?.id;
      if (graphId && !seen.dryRun) {
        for (const rpc of generated.then ?? []) {
          if (rpc === "promoteGraph") await untilAtItsGate(client, graphId);
          await runOne({ rpc, request: { graphId } }, batch, client);
        }
      }
    };

    /** Waits (a little) until a graph with a canary waits at its promote gate, so that promoting it can go through. */
    const untilAtItsGate = async (client: DroverServiceClient, graphId: string) => {
      for (const deadline = Date.now() + 500; Date.now() < deadline; ) {
        harnessCalls++;
        const { graph } = await client.getGraph({ graphId });
        const gate = graph?.tasks.find((task) => task.action === TaskAction.TASK_ACTION_AWAIT_PROMOTION);
        const unsettled = graph?.state === GraphState.GRAPH_STATE_PENDING || graph?.state === GraphState.GRAPH_STATE_RUNNING;
        if (!unsettled || !gate || gate.state !== TaskState.TASK_STATE_PENDING || gate.waiting !== "") return;
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    };

    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(typedOp, { minLength: 1, maxLength: 6 }), async (ops) => {
        if (run++ % 8 === 0) await refresh();
        const batch = ++model.batch;
        // A batch goes at once: requests race each other as clients' would.
        await Promise.all(ops.map((generated) => runOne(generated, batch)));
      }),
      { numRuns: TYPED_RUNS, seed, endOnFailure: true },
    );
    await Promise.all(apart);
    const fuzzMs = Date.now() - started;

    // Every graph settles (or stays paused, as asked); a graph waiting at its canary's promote gate is promoted.
    await eventually(async () => {
      let unsettled = false;
      for (const group of MODEL_GROUPS) {
        harnessCalls++;
        const graphs = (await unlessNotFound(s.client.listGraphs({ group, limit: 1000 })))?.graphs ?? [];
        for (const graph of graphs) {
          if (graph.state !== GraphState.GRAPH_STATE_PENDING && graph.state !== GraphState.GRAPH_STATE_RUNNING) continue;
          unsettled = true;
          harnessCalls++;
          await s.client.promoteGraph({ graphId: graph.id }).catch(() => undefined);
        }
      }
      if (unsettled) await new Promise((resolve) => setTimeout(resolve, 20));
      return unsettled ? undefined : true;
    }, "every graph of the fuzzed groups has settled", 30_000);

    const violations = model.violations;
    const check = (ok: boolean, message: string) => {
      if (!ok) violations.push(message);
    };
    const defaultTemplate = (await s.client.getTemplate({ group: "never-touched-by-anyone" })).template;
    const stored = new Tally();
    for (const group of [...MODEL_GROUPS, ...GHOST_GROUPS]) {
      harnessCalls += 4;
      // A group with no revision does not exist: its reads are NOT_FOUND, and it has nothing.
      const listed = await unlessNotFound(s.client.listNodes({ group, all: true }));
      const revisions = (await unlessNotFound(s.client.listRevisions({ group, limit: 1000 })))?.revisions ?? [];
      const graphs = (await unlessNotFound(s.client.listGraphs({ group, limit: 1000 })))?.graphs ?? [];
      const nodes = listed ?? { nodes: [], revision: 0, spec: undefined };
      check((listed === undefined) === (revisions.length === 0), `${group}: it has ${revisions.length} revisions, yet its nodes are ${listed ? "listed" : "not found"}`);
      const template = await s.client.getTemplate({ group });
      const latest = revisions[0]?.revision ?? 0;
      // The group's template: its current revision's (none: the server's default), or else the last one kept for its first update.
      const pending = model.pendingTemplates.get(group)?.at(-1)?.templates;
      const current = latest > 0 ? revisions[0]!.spec?.template : undefined;
      if (latest > 0 ? current : pending) {
        const candidates = latest > 0 ? [current] : pending!;
        check(!template.isDefault && candidates.some((candidate) => same(candidate, template.template)), `${group}: the template is not ${latest > 0 ? `revision ${latest}'s` : "the last one kept"} (${show(candidates, 600)}): ${show(template)}`);
      } else {
        check(template.isDefault && same(template.template, defaultTemplate), `${group}: no template was accepted, yet it has ${show(template)}`);
      }
      if (!model.mutated.has(group)) {
        // Only refused requests (and reads) named this group: nothing of it may be stored.
        check(revisions.length === 0, `${group}: only refused requests named it, yet it has revisions ${show(revisions)}`);
        check(graphs.length === 0, `${group}: only refused requests named it, yet it has graphs ${show(graphs)}`);
        check(nodes.nodes.length === 0 && nodes.revision === 0, `${group}: only refused requests named it, yet it has nodes ${show(nodes)}`);
        continue;
      }
      const reported = model.revisions.get(group) ?? new Map<number, ApiSpec>();
      const byNumber = new Map(revisions.map((revision) => [revision.revision, revision]));
      const graphById = new Map(graphs.map((graph) => [graph.id, graph]));
      check(revisions.length < 1000 && graphs.length < 1000, `${group}: too many revisions or graphs for this check`);
      check(
        revisions.every((revision, i) => revision.revision === latest - i) && (latest === 0 || revisions.at(-1)!.revision === 1),
        `${group}: revisions are not 1..${latest} without gaps: ${revisions.map((r) => r.revision).join(",")}`,
      );
      for (const [number, spec] of reported) {
        const stored = byNumber.get(number);
        check(!!stored && same(stored.spec, spec), `${group}: revision ${number} was answered as ${show(spec)} but is stored as ${show(stored)}`);
      }
      // Each answer was right for the revision its request found current.
      violations.push(...judgeReports(model, group, byNumber, graphById));
      // SetTemplate keeps a template for the first update only while the group has no revision.
      const groupReports = model.reports.filter((report) => report.group === group && report.revision >= 1);
      const firstRevisionBatch = Math.min(...groupReports.map((report) => report.batch));
      for (const entry of model.pendingTemplates.get(group) ?? []) {
        check(entry.batch <= firstRevisionBatch, `${group}: SetTemplate answered no update in batch ${entry.batch}, yet the group had a revision in batch ${firstRevisionBatch}`);
      }
      for (const revision of revisions) stored.add("revisions", RevisionReason[revision.reason]!.replace("REVISION_REASON_", ""));
      for (const graph of graphs) stored.add("graphs", `${GraphReason[graph.reason]!.replace("GRAPH_REASON_", "")} ${GraphState[graph.state]!.replace("GRAPH_STATE_", "")}`);
      // Why each revision was made is what made it: the request that reported it, when it stored a graph.
      const reasonsByRpc: Record<Report["rpc"], RevisionReason[]> = {
        setSpec: [RevisionReason.REVISION_REASON_UPDATE, RevisionReason.REVISION_REASON_SCALE],
        setTemplate: [RevisionReason.REVISION_REASON_UPDATE],
        rollback: [RevisionReason.REVISION_REASON_ROLLBACK],
        stopNode: [RevisionReason.REVISION_REASON_STOP],
        cloneNode: [RevisionReason.REVISION_REASON_CLONE],
      };
      for (const report of model.reports) {
        if (report.group !== group || report.dryRun || report.nothingToDo) continue;
        const revision = revisions.find((each) => each.revision === report.revision);
        if (revision) check(reasonsByRpc[report.rpc].includes(revision.reason), `${group}: revision ${revision.revision}, made by ${report.rpc}, has reason ${RevisionReason[revision.reason]}`);
      }
      for (const revision of revisions) {
        const name = RevisionReason[revision.reason];
        const problem = model.hashes.problem(revision.spec);
        check(problem === undefined, `${group}: revision ${revision.revision} breaks the template hash rules: ${problem}`);
        if (!reported.has(revision.revision)) {
          // The only revisions no answer reported: the failure policy's own rollbacks.
          check(revision.reason === RevisionReason.REVISION_REASON_AUTO_ROLLBACK, `${group}: revision ${revision.revision} (${name}) was made by no accepted request: ${show(revision)}`);
        }
        const previous = byNumber.get(revision.revision - 1);
        const restored = byNumber.get(revision.restores);
        if (revision.reason === RevisionReason.REVISION_REASON_ROLLBACK) {
          // The target's spec, keeping the count the group had unless asked to restore it.
          const counts = [restored?.spec?.count, previous?.spec?.count];
          check(
            revision.restores >= 1 && revision.restores < revision.revision && counts.some((count) => restored?.spec !== undefined && count !== undefined && same(atCount(restored.spec, count), revision.spec)),
            `${group}: rollback revision ${revision.revision} does not restore revision ${revision.restores}'s spec`,
          );
        }
        if (revision.reason === RevisionReason.REVISION_REASON_AUTO_ROLLBACK) {
          check(previous?.spec?.onFailure === FailurePolicy.FAILURE_POLICY_ROLLBACK, `${group}: automatic rollback ${revision.revision} after a revision whose policy is not rollback: ${show(previous)}`);
          check(previous?.reason !== RevisionReason.REVISION_REASON_AUTO_ROLLBACK, `${group}: automatic rollback ${revision.revision} after an automatic rollback`);
          check(previous?.graphState === GraphState.GRAPH_STATE_FAILED, `${group}: automatic rollback ${revision.revision} after revision ${previous?.revision}, whose rollout is ${previous && GraphState[previous.graphState]}`);
          // The last revision the group reached before the one that failed, with the failed one's count.
          const created = revision.createdAt!.getTime();
          const candidates = lastSucceededCandidates(revision.revision - 1, byNumber, graphById, created, created);
          check(
            candidates.includes(revision.restores) &&
              restored?.spec !== undefined &&
              previous?.spec !== undefined &&
              same(atCount(restored.spec, previous.spec.count), revision.spec),
            `${group}: automatic rollback ${revision.revision} restores revision ${revision.restores} as ${show(revision.spec)}; expected revision ${candidates.join(" or ") || "none"}'s spec with revision ${previous?.revision}'s count`,
          );
        }
      }
      check(nodes.revision === latest && same(nodes.spec, byNumber.get(latest)?.spec), `${group}: the current spec is not the latest revision's: ${show({ revision: nodes.revision, spec: nodes.spec })}`);
      const madeGraphs = model.graphs.get(group) ?? new Map<string, GraphKind>();
      for (const [id, kind] of madeGraphs) {
        const graph = graphById.get(id);
        const reason = kind === "update" ? GraphReason.GRAPH_REASON_UPDATE : GraphReason.GRAPH_REASON_OPERATION;
        check(graph?.reason === reason, `${group}: graph ${id} (${kind}) is missing or has reason ${graph && GraphReason[graph.reason]}`);
      }
      for (const graph of graphs) {
        const revision = byNumber.get(graph.revision);
        check(!!revision && same(graph.spec, revision.spec), `${group}: graph ${graph.id} is of revision ${graph.revision}, which is not stored with its spec`);
        if (!madeGraphs.has(graph.id)) {
          const automatic =
            graph.reason === GraphReason.GRAPH_REASON_REPAIR ||
            graph.reason === GraphReason.GRAPH_REASON_HEAL ||
            (graph.reason === GraphReason.GRAPH_REASON_UPDATE && revision?.reason === RevisionReason.REVISION_REASON_AUTO_ROLLBACK);
          check(automatic, `${group}: graph ${graph.id} (${GraphReason[graph.reason]}, revision ${graph.revision}) was made by no accepted request`);
        }
      }
      // A group whose latest graph succeeded, and whose rollout reached its spec (or needed no graph),
      // holds its spec's nodes, from its template (repairs after kills included). A failed or cancelled
      // rollout stays where it is: its group is only healed.
      const spec = byNumber.get(latest)?.spec;
      const rollout = graphs.find((graph) => graph.reason === GraphReason.GRAPH_REASON_UPDATE || graph.reason === GraphReason.GRAPH_REASON_REPAIR);
      const reached = !rollout || rollout.revision < latest || rollout.state === GraphState.GRAPH_STATE_SUCCEEDED;
      if (graphs[0]?.state === GraphState.GRAPH_STATE_SUCCEEDED && reached && spec) {
        let holds = false;
        let last = "";
        for (const deadline = Date.now() + 10_000; !holds && Date.now() < deadline; ) {
          harnessCalls += 2;
          const [{ graphs: [newest] }, { nodes: live }] = await Promise.all([s.client.listGraphs({ group, limit: 1 }), s.client.listNodes({ group })]);
          // A repair after a kill makes a newer graph: the group holds its spec once that one has succeeded.
          const running = live.filter((node) => node.state === NodeState.NODE_STATE_RUNNING && node.version === spec.version && node.templateHash === spec.templateHash);
          holds = newest?.state === GraphState.GRAPH_STATE_SUCCEEDED && running.length === spec.count && live.length === spec.count;
          last = `latest graph ${newest && GraphState[newest.state]}, nodes ${show(live.map((node) => [NodeState[node.state], node.version, node.templateHash]))}`;
          if (!holds) await new Promise((resolve) => setTimeout(resolve, 50));
        }
        check(holds, `${group}: its latest graph succeeded, yet it does not hold ${spec.count} × v${spec.version} (template ${spec.templateHash || "none"}): ${last}`);
      }
    }

    await stillServes(s, "after-the-fuzz");
    check(s.errors.length === 0, `the server logged errors: ${s.errors.slice(0, 5).join("\n")}`);

    t.diagnostic(`${tally.total()} fuzzed requests (+${harnessCalls} to steer and check) in ${fuzzMs}ms:`);
    for (const line of tally.report()) t.diagnostic(line);
    if (lostAnswers.length > 0) t.diagnostic(`${lostAnswers.length} invalid requests quoting long strings got no answer (known defect), such as ${lostAnswers[0]!.slice(0, 300)}`);
    t.diagnostic("stored afterwards:");
    for (const line of stored.report()) t.diagnostic(line);
    const judged = new Tally();
    for (const report of model.reports) {
      const how = report.dryRun ? "dry run" : report.nothingToDo ? "nothing to do" : "stored";
      judged.add(`${report.rpc}${report.rpc === "rollback" && report.seen.revision === 0 ? " to the last that succeeded" : ""}`, how);
    }
    t.diagnostic("answers judged against the stored history:");
    for (const line of judged.report()) t.diagnostic(line);
    t.diagnostic(
      `model: ${[...model.revisions.entries()].map(([group, revisions]) => `${group} ${revisions.size} revisions`).join(", ")}; mutated ${[...model.mutated].join(", ")}; ${model.nodeIds.length} nodes and ${model.graphIds.length} graphs known`,
    );
    assert.deepEqual(violations.slice(0, 25), [], `${violations.length} violations`);
  });

  it("answers random, mutated and malformed protobuf bytes on every method without UNKNOWN or a handler's INTERNAL, and refuses oversized messages", async (t) => {
    const s = await startFuzzServer();
    t.after(() => s.stop());
    const shared = new grpc.Client(`127.0.0.1:${s.server.port}`, grpc.credentials.createInsecure());
    t.after(() => shared.close());
    const tally = new Tally();
    const violations: string[] = [];
    const lostAnswers: string[] = [];
    /** Long messages, answered (or lost) apart, so that a lost answer holds up no batch. */
    const apart: Promise<void>[] = [];
    const seed = newSeed();
    t.diagnostic(`seed ${seed} (FUZZ_SEED), ${RAW_RUNS} runs (FUZZ_RAW_RUNS)`);
    const started = Date.now();

    const runOne = async (raw: RawOp, client = shared) => {
      if ("unknownPath" in raw) {
        const outcome = await rawCall(client, raw.unknownPath, false, raw.bytes, { answerMs: 5_000 });
        tally.add("unknown method", outcome.code);
        if (outcome.code !== "UNIMPLEMENTED") violations.push(`unknown method ${raw.unknownPath} → ${outcome.code} ${outcome.details ?? ""}`);
        return;
      }
      const method = METHODS[raw.method]!;
      const bytes = tame(method, raw.bytes);
      let decoded: Record<string, any> | undefined;
      try {
        decoded = method.type.decode(bytes);
      } catch {
        decoded = undefined;
      }
      // What the generated decoder cannot read is the client's mistake (see requestDecoding.ts).
      const expectation = decoded ? oracle(method.rpc, decoded, undefined) : { invalid: true, allowed: ["INVALID_ARGUMENT"] };
      const wait = expectation.invalid ? { answerMs: 5_000 } : method.streaming ? { answerMs: 20_000, quietMs: 40 } : { answerMs: 20_000 };
      const outcome = await rawCall(client, method.path, method.streaming, bytes, wait);
      const kind = `${method.rpc} ${decoded ? (expectation.invalid ? "(decodes, invalid)" : "(decodes, valid)") : "(undecodable)"}`;
      if (outcome.code === "NO_ANSWER" && expectation.invalid && quotedSize(decoded) >= LOST_ANSWER_QUOTE) {
        tally.add(`${method.rpc} (invalid, quoting ${LOST_ANSWER_QUOTE / 1000}+ KB)`, "NO_ANSWER (known defect)");
        lostAnswers.push(`${kind} [${raw.how}] ${hex(bytes)} decoded as ${show(decoded, 400)}`);
        return;
      }
      tally.add(kind, outcome.code);
      if (!expectation.allowed.includes(outcome.code)) {
        violations.push(`${kind} [${raw.how}] ${hex(bytes)} decoded as ${show(decoded, 400)}: expected ${expectation.allowed.join(" or ")}, got ${outcome.code} ${outcome.details?.slice(0, 200) ?? ""}`);
      }
    };

    await fc.assert(
      fc.asyncProperty(fc.array(rawOp, { minLength: 1, maxLength: 8 }), async (ops) => {
        const batch: Promise<void>[] = [];
        for (const raw of ops) {
          if (raw.bytes.length <= MAX_TEXT) batch.push(runOne(raw));
          else {
            const isolated = new grpc.Client(`127.0.0.1:${s.server.port}`, grpc.credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 });
            apart.push(runOne(raw, isolated).finally(() => isolated.close()));
          }
        }
        await Promise.all(batch);
      }),
      { numRuns: RAW_RUNS, seed, endOnFailure: true },
    );
    await Promise.all(apart);

    // uint64 fields beyond 2^53: valid protobuf the generated decoder cannot turn into a number.
    const beyondSafe = [
      { rpc: "setSpec" as Rpc, field: 7 },
      { rpc: "rollback" as Rpc, field: 2 },
      { rpc: "rollback" as Rpc, field: 3 },
      { rpc: "watchNodes" as Rpc, field: 2 },
      { rpc: "watchGraph" as Rpc, field: 3 },
    ];
    for (const { rpc, field } of beyondSafe) {
      for (const value of [2n ** 53n, 2n ** 64n - 1n]) {
        const method = METHOD.get(rpc)!;
        const bytes = encodeWire([
          { field: rpc === "watchGraph" ? 2 : 1, wire: 2, value: new Uint8Array(Buffer.from("ghost")) },
          { field, wire: 0, value },
          ...(rpc === "setSpec" ? [{ field: 3, wire: 0, value: 1n }] : []),
        ]);
        const outcome = await rawCall(shared, method.path, method.streaming, bytes, { answerMs: 5_000 });
        tally.add(`${rpc} (uint64 field ${field} beyond 2^53)`, outcome.code);
        if (outcome.code !== "INVALID_ARGUMENT") violations.push(`${rpc} field ${field} = ${value} → ${outcome.code} ${outcome.details ?? ""}`);
      }
    }

    // Oversized: over grpc-js's 4 MiB limit a message is refused before anything reads it; at the limit
    // it is read and refused as invalid (field 1 of every request is a name or an id: "BAD!" is neither).
    const limit = 4 * 1024 * 1024;
    const atLimit = (() => {
      const head = encodeWire([{ field: 1, wire: 2, value: new Uint8Array(Buffer.from("BAD!")) }]);
      const key = varint((15n << 3n) | 2n);
      for (let padding = limit - head.length - key.length - 10; ; padding++) {
        const message = Buffer.concat([head, Buffer.from(key), Buffer.from(varint(BigInt(padding))), Buffer.alloc(padding, 0x61)]);
        if (message.length === limit) return message;
        assert.ok(message.length < limit);
      }
    })();
    for (const method of METHODS) {
      for (const [what, bytes, allowed] of [
        ["8 MiB of zeros", Buffer.alloc(8 * limit / 4), ["RESOURCE_EXHAUSTED"]],
        ["4 MiB + 1 byte", Buffer.concat([atLimit, Buffer.from([0])]), ["RESOURCE_EXHAUSTED"]],
        // ListGroups takes no field: field 1 is unknown, and ignored.
        ["exactly 4 MiB", atLimit, method.rpc === "listGroups" ? ["OK", "RESOURCE_EXHAUSTED"] : ["INVALID_ARGUMENT", "RESOURCE_EXHAUSTED"]],
      ] as const) {
        const outcome = await rawCall(shared, method.path, method.streaming, bytes, { answerMs: 5_000 });
        tally.add(`${method.rpc} (${what})`, outcome.code);
        if (!(allowed as readonly string[]).includes(outcome.code)) violations.push(`${method.rpc} with ${what}: expected ${allowed.join(" or ")}, got ${outcome.code} ${outcome.details ?? ""}`);
      }
    }
    // Through the typed client too: an 8 MiB template and an 8 MiB group name.
    const bigTemplate = await unary((signal) => s.client.setTemplate({ group: "big-template", template: { command: "x", args: Array.from({ length: 200 }, () => "y".repeat(40_000)) } }, { signal }), { answerMs: 10_000 });
    tally.add("setTemplate (typed, 8 MiB)", bigTemplate.code);
    if (bigTemplate.code !== "RESOURCE_EXHAUSTED") violations.push(`an 8 MiB SetTemplate → ${bigTemplate.code} ${bigTemplate.details ?? ""}`);
    const bigName = await unary((signal) => s.client.listNodes({ group: "a".repeat(2 * limit) }, { signal }), { answerMs: 10_000 });
    tally.add("listNodes (typed, 8 MiB group)", bigName.code);
    if (bigName.code !== "RESOURCE_EXHAUSTED") violations.push(`an 8 MiB group name → ${bigName.code} ${bigName.details ?? ""}`);
    assert.equal((await s.client.getTemplate({ group: "big-template" })).isDefault, true, "no oversized template was stored");

    await stillServes(s, "after-the-raw-fuzz");
    if (s.errors.length > 0) violations.push(`the server logged errors: ${s.errors.slice(0, 5).join("\n")}`);
    t.diagnostic(`${tally.total()} raw requests in ${Date.now() - started}ms:`);
    for (const line of tally.report()) t.diagnostic(line);
    if (lostAnswers.length > 0) t.diagnostic(`${lostAnswers.length} invalid requests quoting long strings got no answer (known defect), such as ${lostAnswers[0]!.slice(0, 300)}`);
    assert.deepEqual(violations.slice(0, 25), [], `${violations.length} violations`);
  });

  // What issue 5 asked; the one still open is run and reported, without failing the suite.

  it("answers undecodable request bytes with INVALID_ARGUMENT, not INTERNAL", async (t) => {
    const s = await startFuzzServer();
    t.after(() => s.stop());
    const client = new grpc.Client(`127.0.0.1:${s.server.port}`, grpc.credentials.createInsecure());
    t.after(() => client.close());
    // A truncated varint, a length beyond the end, wire type 7.
    for (const bytes of [[0x10, 0x96], [0x0a, 0x05, 0x61], [0x17]]) {
      const outcome = await rawCall(client, "/drover.v1.DroverService/SetSpec", false, Buffer.from(bytes), { answerMs: 5_000 });
      assert.equal(outcome.code, "INVALID_ARGUMENT", `SetSpec ${Buffer.from(bytes).toString("hex")} → ${outcome.code} ${outcome.details}`);
      assert.match(outcome.details ?? "", /^the request is not a valid drover\.v1\.SetSpecRequest \(.+\): send the message proto\/drover\/v1\/drover\.proto describes$/);
    }
    // A streaming method's request too.
    const watch = await rawCall(client, "/drover.v1.DroverService/WatchNodes", true, Buffer.from([0x17]), { answerMs: 5_000 });
    assert.equal(watch.code, "INVALID_ARGUMENT", `WatchNodes 17 → ${watch.code} ${watch.details}`);
    assert.match(watch.details ?? "", /not a valid drover\.v1\.WatchNodesRequest \(it holds a field of wire type 7, which protobuf does not have\)/);
  });

  it(
    "answers an invalid request quoting a 100 KB field (a group name) with INVALID_ARGUMENT, and holds up no other call meanwhile",
    async (t) => {
      const s = await startFuzzServer();
      t.after(() => s.stop());
      const bad = unary((signal) => s.client.listNodes({ group: "A".repeat(100_000) }, { signal }), { answerMs: 3_000 });
      await new Promise((resolve) => setTimeout(resolve, 100));
      const other = await unary((signal) => s.client.listNodes({ group: "web" }, { signal }), { answerMs: 3_000 });
      const { code, details } = await bad;
      assert.deepEqual(
        { bad: code, other: other.code },
        // Group web does not exist: answered, NOT_FOUND.
        { bad: "INVALID_ARGUMENT", other: "NOT_FOUND" },
        `ListNodes {group: 100,000 × "A"} → ${code} ${details ?? ""}; ListNodes {group: "web"} on the same connection meanwhile → ${other.code}`,
      );
    },
  );

  it("answers a uint64 beyond 2^53 (expect_revision, after_sequence) with INVALID_ARGUMENT, not INTERNAL", async (t) => {
    const s = await startFuzzServer();
    t.after(() => s.stop());
    // The typed client encodes these: only the server cannot read them.
    const outcome = await unary((signal) => s.client.setSpec({ group: "web", count: 1, version: 1, expectRevision: 2 ** 53 }, { signal }), { answerMs: 5_000 });
    assert.equal(outcome.code, "INVALID_ARGUMENT", `SetSpec expect_revision 2^53 → ${outcome.code} ${outcome.details}`);
    assert.equal(outcome.details, "expect_revision 9007199254740992 is invalid: it must be at most 9007199254740991 (2^53 - 1)");
    const watch = await firstMessage((signal) => s.client.watchNodes({ group: "web", afterSequence: 2 ** 53 }, { signal }), { answerMs: 5_000 });
    assert.equal(watch.code, "INVALID_ARGUMENT", `WatchNodes after_sequence 2^53 → ${watch.code} ${watch.details}`);
    assert.equal(watch.details, "after_sequence 9007199254740992 is invalid: it must be at most 9007199254740991 (2^53 - 1)");
    const rollback = await unary((signal) => s.client.rollback({ group: "web", revision: 2 ** 60 }, { signal }), { answerMs: 5_000 });
    assert.deepEqual([rollback.code, rollback.details], ["INVALID_ARGUMENT", "revision 1152921504606846976 is invalid: it must be at most 9007199254740991 (2^53 - 1)"]);
    // Nothing was stored on the way: the group does not exist.
    assert.equal(await unlessNotFound(s.client.listRevisions({ group: "web" })), undefined);
  });

  it("refuses a template env name longer than any field may be", async (t) => {
    const s = await startFuzzServer();
    t.after(() => s.stop());
    const name = "A".repeat(10_000);
    const outcome = await unary((signal) => s.client.setTemplate({ group: "web", template: { command: "/bin/true", env: { [name]: "x" } } }, { signal }), { answerMs: 5_000 });
    assert.equal(outcome.code, "INVALID_ARGUMENT", `SetTemplate with env {${show(name)}: "x"} → ${outcome.code}`);
  });

  it(
    "stores SetTemplate's and Rollback's revisions on the spec current when they are stored, also when reading a spec takes time",
    async (t) => {
      // The fuzz above never sees it: on SQLite a read finishes before the next request is read.
      // A networked database's would not (see STYLE.md): here each read of a group's spec takes 20 ms.
      const { client, stop } = await startTestServer({
        driver: { latency: { min: 0, max: 2 } },
        wrapStore: (sqlite) =>
          new Proxy(sqlite, {
            get(target, key) {
              const value = Reflect.get(target, key, target);
              if (typeof value !== "function") return value;
              if (key !== "getGroupSpec") return value.bind(target);
              return async (...args: unknown[]) => {
                const result = await value.apply(target, args);
                await new Promise((resolve) => setTimeout(resolve, 20));
                return result;
              };
            },
          }),
      });
      t.after(stop);
      const first = await client.setSpec({ group: "web", count: 2, version: 1 });
      await drain(client.watchGraph({ graphId: first.graph!.id }));
      const later = () => new Promise((resolve) => setTimeout(resolve, 5));
      // SetTemplate, and 5 ms later SetSpec 5 × v2: in either order, the later revision holds both.
      const template = client.setTemplate({ group: "web", template: { command: "/bin/true" } });
      await later();
      const update = await client.setSpec({ group: "web", count: 5, version: 2 });
      const templated = (await template).update!;
      // Rollback to revision 1 keeping the count, and 5 ms later SetSpec 4 × v3.
      const rollback = client.rollback({ group: "web", revision: 1 });
      await later();
      const update2 = await client.setSpec({ group: "web", count: 4, version: 3 });
      const rolledBack = (await rollback).update!;
      const { revisions } = await client.listRevisions({ group: "web" });
      const stored = new Map(revisions.map((revision) => [revision.revision, revision.spec!]));
      const summary = (spec: ApiSpec | undefined) => spec && `${spec.count} × v${spec.version} ${spec.template?.command ?? "(default template)"}`;
      const found = {
        setTemplate: summary(templated.spec),
        rollback: summary(rolledBack.spec),
        history: revisions.map((revision) => `${revision.revision}: ${summary(revision.spec)}`).reverse(),
      };
      const previous = (revision: number) => stored.get(revision - 1)!;
      const expected = {
        // The spec before SetTemplate's revision, with the template.
        setTemplate: summary({ ...previous(templated.revision), template: { command: "/bin/true" } as ApiTemplate }),
        // Revision 1's spec with the count of the revision before the rollback's.
        rollback: summary({ ...stored.get(1)!, count: previous(rolledBack.revision).count }),
        history: found.history,
      };
      assert.deepEqual(found, expected, `SetSpec stored revisions ${update.revision} and ${update2.revision}`);
    },
  );

  it("stores a template env variable named __proto__ as sent, or refuses it", async (t) => {
    const s = await startFuzzServer();
    t.after(() => s.stop());
    const client = new grpc.Client(`127.0.0.1:${s.server.port}`, grpc.credentials.createInsecure());
    t.after(() => client.close());
    const text = (field: number, value: string): WireField => ({ field, wire: 2, value: new Uint8Array(Buffer.from(value)) });
    const entry = (key: string, value: string): WireField => ({ field: 3, wire: 2, value: new Uint8Array(encodeWire([text(1, key), text(2, value)])) });
    const templateBytes = encodeWire([text(1, "/bin/true"), entry("__proto__", "v"), entry("B", "w")]);
    const request = encodeWire([text(1, "web"), { field: 2, wire: 2, value: new Uint8Array(templateBytes) }]);
    const outcome = await rawCall(client, "/drover.v1.DroverService/SetTemplate", false, request, { answerMs: 5_000 });
    if (outcome.code === "OK") {
      const stored = (await s.client.getTemplate({ group: "web" })).template!;
      assert.deepEqual(Object.entries(stored.env).sort(), [["B", "w"], ["__proto__", "v"]], `SetTemplate env {__proto__: "v", B: "w"} was accepted and stored as ${show(stored.env)}`);
    } else {
      assert.equal(outcome.code, "INVALID_ARGUMENT");
    }
  });
});
