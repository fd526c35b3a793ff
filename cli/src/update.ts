import {
  DEFAULT_MAX_SURGE,
  DEFAULT_MAX_UNAVAILABLE,
  MAX_COUNT,
  MAX_VERSION,
  type SetSpecRequest,
  SetSpecResponse,
  specProblems,
} from "@drover/shared";
import { UNARY_DEADLINE_MS, WAITING_DEADLINE_MS } from "./connection.js";
import type { CommandContext } from "./context.js";
import { ExitCode, UsageError } from "./errors.js";
import { planTable, updateHeader } from "./render.js";
import { followGraph } from "./tasks.js";
import { GraphTracker } from "./tracker.js";

/** `update`'s arguments and options, as commander hands them over. */
export interface UpdateArguments {
  count: string;
  version: string;
  maxSurge?: string;
  maxUnavailable?: string;
  dryRun?: boolean;
  detach?: boolean;
}

/**
 * Reads a whole number written in decimal digits: "3" and "007" pass; "abc", "-1", "1.5",
 * "1e3" and " 3" do not. Returns the number, or undefined with the rule broken in `problems`.
 */
function integerArgument(name: string, text: string, min: number, max: number, problems: string[]): number {
  const value = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!(value >= min && value <= max)) {
    problems.push(`${name} ${JSON.stringify(text)} is invalid: it must be an integer from ${min} to ${max}`);
  }
  return value;
}

/** The fields of a SetSpec request that `update` sets; the server's defaults stand for the rest. */
export type UpdateRequest = Pick<SetSpecRequest, "group" | "count" | "version" | "maxSurge" | "maxUnavailable" | "dryRun">;

/** The SetSpec request for `update`'s arguments; throws a UsageError naming every bad value. */
export function updateRequest(args: UpdateArguments, group: string): UpdateRequest {
  const problems: string[] = [];
  const count = integerArgument("count", args.count, 0, MAX_COUNT, problems);
  const version = integerArgument("version", args.version, 1, MAX_VERSION, problems);
  const maxSurge =
    args.maxSurge === undefined ? undefined : integerArgument("max surge", args.maxSurge, 0, MAX_COUNT, problems);
  const maxUnavailable =
    args.maxUnavailable === undefined
      ? undefined
      : integerArgument("max unavailable", args.maxUnavailable, 0, MAX_COUNT, problems);
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
  return { group, count, version, maxSurge, maxUnavailable, dryRun: Boolean(args.dryRun) };
}

/**
 * `update <count> <version>`: stores the spec, prints the plan, and (unless --dry-run or
 * --detach) follows the graph to its end. Exits 0 only if the graph succeeded.
 */
export async function update(context: CommandContext, args: UpdateArguments): Promise<ExitCode> {
  const { globals, out, style } = context;
  const request = updateRequest(args, globals.group);
  const connection = context.connection();
  const response = await connection.call(
    (options) => connection.client.setSpec(request, options),
    request.dryRun ? UNARY_DEADLINE_MS : WAITING_DEADLINE_MS,
  );
  const json = globals.output === "json";
  const graph = response.graph;

  if (json) {
    out.line(JSON.stringify(SetSpecResponse.toJSON(response)));
  } else {
    out.line(updateHeader(response, request.dryRun));
    if (response.supersededGraphId) out.line(`superseded graph ${response.supersededGraphId}`);
    if (response.nothingToDo || !graph) {
      out.line("nothing to do: the group already matches");
    } else {
      out.line();
      out.line("TASK GRAPH SPEC");
      out.line(planTable(style, new GraphTracker(graph, 0).tasks));
    }
  }
  if (response.nothingToDo || !graph || request.dryRun) return ExitCode.ok;
  if (args.detach) {
    if (!json) {
      out.line();
      out.line(`graph ${graph.id} started; watch it with: client tasks watch ${graph.id}`);
    }
    return ExitCode.ok;
  }
  if (!json) out.line();
  return followGraph(context, { graphId: graph.id, planned: graph });
}
