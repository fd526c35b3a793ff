import {
  boundProblem,
  DEFAULT_MAX_SURGE,
  DEFAULT_MAX_UNAVAILABLE,
  type Graph,
  type IntOrPercent,
  MAX_COUNT,
  MAX_VERSION,
  parseIntOrPercent,
  percentOf,
  type SetSpecRequest,
  SetSpecResponse,
  specProblems,
} from "@drover/shared";
import {
  cpuArgument,
  durationArgument,
  failurePolicyArgument,
  integerArgument,
  memoryArgument,
  revisionArgument,
} from "./arguments.js";
import { UNARY_DEADLINE_MS, WAITING_DEADLINE_MS } from "./connection.js";
import { type CommandContext, onInterruptNotice, unansweredNotice } from "./context.js";
import { ExitCode, UsageError } from "./errors.js";
import { type TemplateArguments, templateArgument, templateFlagsGiven } from "./group.js";
import { clientCommand } from "./hints.js";
import { previewLine, specTemplateLine, updateHeader } from "./render.js";
import { planTableLines } from "./render/plan.js";
import { planSummaryLines, summarised } from "./render/planSummary.js";
import { followGraph } from "./tasks.js";

/** `update`'s arguments and options, as commander hands them over. */
export interface UpdateArguments extends TemplateArguments {
  count: string;
  version: string;
  maxSurge?: string;
  maxUnavailable?: string;
  dryRun?: boolean;
  detach?: boolean;
  full?: boolean;
  expectRevision?: string;
  onFailure?: string;
  taskTimeout?: string;
  progressDeadline?: string;
  cpu?: string;
  memory?: string;
  minReady?: string;
  canary?: string;
  autoPromoteAfter?: string;
}

/** The fields of a SetSpec request that `update` sets; the server's defaults stand for the rest. */
export type UpdateRequest = Pick<
  SetSpecRequest,
  | "group"
  | "count"
  | "version"
  | "maxSurge"
  | "maxUnavailable"
  | "maxSurgePercent"
  | "maxUnavailablePercent"
  | "dryRun"
  | "expectRevision"
  | "onFailure"
  | "taskTimeoutMs"
  | "progressDeadlineMs"
  | "cpuMillis"
  | "memoryMb"
  | "template"
  | "minReadyMs"
  | "canary"
  | "autoPromoteAfterMs"
>;

/** The SetSpec request for `update`'s arguments; throws a UsageError naming every bad value. */
export function updateRequest(args: UpdateArguments, group: string): UpdateRequest {
  const problems: string[] = [];
  const count = integerArgument("count", args.count, 0, MAX_COUNT, problems);
  const version = integerArgument("version", args.version, 1, MAX_VERSION, problems);
  const maxSurge = boundArgument("max surge", args.maxSurge, problems);
  const maxUnavailable = boundArgument("max unavailable", args.maxUnavailable, problems);
  const expectRevision = revisionArgument("expect revision", args.expectRevision, 0, problems);
  const onFailure = failurePolicyArgument(args.onFailure, problems);
  const taskTimeoutMs = durationArgument("task timeout", args.taskTimeout, problems);
  const progressDeadlineMs = durationArgument("progress deadline", args.progressDeadline, problems);
  const cpuMillis = cpuArgument(args.cpu, problems);
  const memoryMb = memoryArgument(args.memory, problems);
  // Absent: the server's default; 0: no wait at all, which is not the same.
  const minReadyMs = args.minReady === undefined ? undefined : durationArgument("min ready", args.minReady, problems, "no wait");
  const canary = args.canary === undefined ? 0 : integerArgument("canary", args.canary, 0, MAX_COUNT, problems);
  const autoPromoteAfterMs = durationArgument("auto promote after", args.autoPromoteAfter, problems, "waiting for 'client graphs promote'");
  if (args.autoPromoteAfter !== undefined && autoPromoteAfterMs > 0 && !(canary > 0)) {
    problems.push(`auto promote after ${JSON.stringify(args.autoPromoteAfter)} is given without --canary: it times the promote gate, which only a canary has`);
  }
  // Any template flag sends a whole template; none keeps the group's current one.
  const template = templateFlagsGiven(args).length > 0 ? templateArgument(args, problems) : undefined;
  if (problems.length === 0) {
    // The rules that tie fields together, in the words the server would use.
    problems.push(
      ...specProblems({
        count,
        version,
        maxSurge: maxSurge ?? DEFAULT_MAX_SURGE,
        maxUnavailable: maxUnavailable ?? DEFAULT_MAX_UNAVAILABLE,
      }),
    );
  }
  if (problems.length > 0) throw new UsageError(problems.join("; "));
  return {
    group,
    count,
    version,
    // A percent goes in its own field, which the server resolves against count (and stores as given).
    maxSurge: nodesOf(maxSurge),
    maxSurgePercent: maybePercentOf(maxSurge),
    maxUnavailable: nodesOf(maxUnavailable),
    maxUnavailablePercent: maybePercentOf(maxUnavailable),
    dryRun: Boolean(args.dryRun),
    expectRevision,
    onFailure,
    taskTimeoutMs,
    progressDeadlineMs,
    cpuMillis,
    memoryMb,
    template,
    minReadyMs,
    canary,
    autoPromoteAfterMs,
  };
}

/** `--max-surge` or `--max-unavailable`: a number of nodes, or a percent of count (`25%`); absent: the server's default. */
function boundArgument(name: string, text: string | undefined, problems: string[]): IntOrPercent | undefined {
  if (text === undefined) return undefined;
  const value = parseIntOrPercent(text);
  const problem = boundProblem(name, value, MAX_COUNT);
  if (problem) problems.push(problem.replace(`${name} ${value}`, `${name} ${JSON.stringify(text)}`));
  return value;
}

/** A bound given as a number of nodes, for SetSpec's `maxSurge` or `maxUnavailable`; undefined for a percent or none. */
const nodesOf = (value: IntOrPercent | undefined): number | undefined => (typeof value === "number" ? value : undefined);

/** A bound given as a percent, for SetSpec's `maxSurgePercent` or `maxUnavailablePercent`: 25 for 25%. */
const maybePercentOf = (value: IntOrPercent | undefined): number | undefined => (value === undefined ? undefined : percentOf(value));

/**
 * `update <count> <version>`: stores the spec, prints the plan, and (unless --dry-run or
 * --detach) follows the graph to its end, and when it fails and the spec's failure policy
 * starts a rollback, the rollback too. Exits 0 only if the graph (or that rollback) succeeded.
 */
export async function update(context: CommandContext, args: UpdateArguments): Promise<ExitCode> {
  const request = updateRequest(args, context.globals.group);
  const connection = context.connection();
  const stopNotice = onInterruptNotice(() =>
    request.dryRun ? "interrupted: a dry run changes nothing" : unansweredNotice("update"),
  );
  let response: SetSpecResponse;
  try {
    response = await connection.call(
      (options) => connection.client.setSpec(request, options),
      request.dryRun ? UNARY_DEADLINE_MS : WAITING_DEADLINE_MS,
    );
  } finally {
    stopNotice();
  }
  return showUpdate(context, response, {
    dryRun: request.dryRun,
    detach: Boolean(args.detach),
    full: Boolean(args.full),
    followRollback: true,
    document: () => SetSpecResponse.toJSON(response),
  });
}

export interface ShowUpdateOptions {
  dryRun: boolean;
  detach: boolean;
  /** List every task of a large plan (and of the snapshot of a rollback followed after it), not a summary. */
  full: boolean;
  /**
   * What -o json prints on the first line: the response of the call that made the update.
   * Made only for -o json: for a 200,000-task plan it is a second copy of every task.
   */
  document: () => unknown;
  /**
   * When the graph fails and its failure policy starts a rollback, follow that too and exit
   * with its outcome (update and set-template do; a rollback, or a node's stop, does not).
   */
  followRollback?: boolean;
}

/**
 * Shows an update the server has made (from `update`, a `rollback`, a template, or a node's
 * stop or clone): the header, the template, the superseded graph, the preview and the plan;
 * then, unless it was a dry run, detached or had nothing to do, follows its graph to the end.
 * Returns 0 unless the followed graph did not succeed.
 */
export function showUpdate(context: CommandContext, response: SetSpecResponse, options: ShowUpdateOptions): Promise<ExitCode> {
  const header = [updateHeader(response, options.dryRun)];
  if (response.spec?.template) header.push(specTemplateLine(response.spec));
  if (response.supersededGraphId) header.push(`superseded graph ${response.supersededGraphId}`);
  if (!response.nothingToDo) header.push(previewLine(response));
  return showPlan(context, response.nothingToDo ? undefined : response.graph, { ...options, header });
}

export interface ShowPlanOptions extends ShowUpdateOptions {
  /** The lines above the plan in a table: what made the graph. */
  header: string[];
}

/**
 * Shows a graph the server has just planned (undefined: there was nothing to do) under its
 * header, then follows it like an update's: every command that makes a graph ends the
 * same way, with the same stream, summary and exit codes.
 */
export async function showPlan(context: CommandContext, graph: Graph | undefined, options: ShowPlanOptions): Promise<ExitCode> {
  const { globals, out, style } = context;
  const json = globals.output === "json";

  if (json) {
    out.line(JSON.stringify(options.document()));
  } else {
    for (const line of options.header) out.line(line);
    if (!graph) {
      out.line("nothing to do: the group already matches");
    } else {
      out.line();
      if (summarised(graph.tasks.length, options.full)) {
        for (const line of planSummaryLines(style, graph, { title: "TASK GRAPH SPEC", states: false })) out.line(line);
      } else {
        out.line("TASK GRAPH SPEC");
        out.lines(planTableLines(style, graph));
      }
    }
  }
  if (!graph || options.dryRun) return ExitCode.ok;
  if (options.detach) {
    if (!json) {
      out.line();
      out.line(`graph ${graph.id} started; watch it with: ${clientCommand(`tasks watch ${graph.id}`)}`);
    }
    return ExitCode.ok;
  }
  if (!json) out.line();
  return followGraph(context, { graphId: graph.id, planned: graph, followRollback: Boolean(options.followRollback), full: options.full });
}
