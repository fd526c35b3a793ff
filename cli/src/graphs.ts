import {
  type CancelGraphRequest,
  CancelGraphResponse,
  type GetGraphRequest,
  GetGraphResponse,
  type Graph,
  GraphReason,
  GraphState,
  graphStateName,
  isSettled,
  type ListGraphsRequest,
  ListGraphsResponse,
  PauseGraphResponse,
  PromoteGraphResponse,
  ResumeGraphResponse,
} from "@drover/shared";
import { limitArgument } from "./arguments.js";
import { WAITING_DEADLINE_MS } from "./connection.js";
import { type CommandContext, jsonText } from "./context.js";
import { CliError, ExitCode, UsageError } from "./errors.js";
import { cancelledLine, graphHeader, graphsTable, pausedLine, promotedLine, summaryLines } from "./render.js";
import { dotLines, mermaidLines } from "./render/graphText.js";
import { taskTableLines } from "./render/plan.js";
import { graphIdArgument } from "./tasks.js";
import { GraphTracker } from "./tracker.js";

/** The most graphs the server lists at once. */
export const MAX_GRAPH_LIST_LIMIT = 1000;

export interface GraphsListArguments {
  limit?: string;
}

export function graphsListRequest(args: GraphsListArguments, group: string): ListGraphsRequest {
  const problems: string[] = [];
  const limit = limitArgument(args.limit, MAX_GRAPH_LIST_LIMIT, problems);
  if (problems.length > 0) throw new UsageError(problems.join("; "));
  return { group, limit };
}

/** `graphs ls [--limit N]`: the group's graphs, newest first. */
export async function graphsList(context: CommandContext, args: GraphsListArguments): Promise<ExitCode> {
  const { globals, out, style } = context;
  const request = graphsListRequest(args, globals.group);
  const connection = context.connection();
  const response = await connection.call((options) => connection.client.listGraphs(request, options));
  if (globals.output === "json") {
    out.line(jsonText({ graphs: [], ...(ListGraphsResponse.toJSON(response) as object) }, { compact: false }));
  } else if (response.graphs.length === 0) {
    out.note(`no graphs in group ${globals.group}`);
  } else {
    out.line(graphsTable(style, response.graphs, Date.now()));
  }
  return ExitCode.ok;
}

export const GRAPH_FORMATS = ["table", "dot", "mermaid"] as const;
export type GraphFormat = (typeof GRAPH_FORMATS)[number];

export interface GraphsShowArguments {
  format?: string;
}

export function graphsShowRequest(id: string, args: GraphsShowArguments, output: string): { request: GetGraphRequest; format: GraphFormat } {
  const format = (args.format ?? "table") as GraphFormat;
  if (!GRAPH_FORMATS.includes(format)) {
    throw new UsageError(`format ${JSON.stringify(args.format)} is invalid: use ${GRAPH_FORMATS.join(", ")}`);
  }
  if (format !== "table" && output === "json") {
    throw new UsageError(`format ${format} cannot be combined with --output json: choose one`);
  }
  return { request: { graphId: graphIdArgument(id) }, format };
}

/** `graphs show <id> [--format table|dot|mermaid]`: one graph with every task. */
export async function graphsShow(context: CommandContext, id: string, args: GraphsShowArguments): Promise<ExitCode> {
  const { globals, out, style } = context;
  const { request, format } = graphsShowRequest(id, args, globals.output);
  const connection = context.connection();
  const response = await connection.call((options) => connection.client.getGraph(request, options));
  if (globals.output === "json") {
    out.line(jsonText(GetGraphResponse.toJSON(response), { compact: false }));
    return ExitCode.ok;
  }
  const graph = new GraphTracker(response.graph ?? missingGraph(request.graphId));
  if (format === "dot") {
    out.lines(dotLines(graph));
  } else if (format === "mermaid") {
    out.lines(mermaidLines(graph));
  } else {
    out.line(graphHeader(style, graph));
    out.line();
    out.lines(taskTableLines(style, graph, { shortIds: false, errors: true }));
    if (graph.settled) {
      out.line();
      for (const line of summaryLines(style, graph)) out.line(line);
    }
  }
  return ExitCode.ok;
}

function missingGraph(graphId: string): never {
  throw new CliError(ExitCode.failed, `the server answered without graph ${graphId}`);
}

/**
 * The request of `graphs cancel|pause|resume|promote [graph-id]`: the graph named (its id, a
 * prefix or its short form), or with none, the group's graph in progress, which the server
 * finds (see CancelGraphRequest).
 */
export function steerRequest(id: string | undefined, group: string): CancelGraphRequest {
  return { graphId: id === undefined ? "" : graphIdArgument(id), group };
}

/** `graphs cancel [graph-id]`: cancels a pending or running graph; refused (exit 1) when it has settled. */
export async function graphsCancel(context: CommandContext, id: string | undefined): Promise<ExitCode> {
  const { globals, out } = context;
  const request = steerRequest(id, globals.group);
  const connection = context.connection();
  const response = await connection.call((options) => connection.client.cancelGraph(request, options), WAITING_DEADLINE_MS);
  if (globals.output === "json") {
    out.line(jsonText(CancelGraphResponse.toJSON(response), { compact: false }));
  } else if (response.graph) {
    out.line(cancelledLine(context.style, response.graph));
    if (response.graph.reason === GraphReason.GRAPH_REASON_UPDATE) {
      // No repair finishes a cancelled rollout behind the operator's back: say what happens instead.
      out.line(`the rollout stays where it is until the next update or rollback; failed nodes are still replaced at their own revision`);
    }
  }
  return ExitCode.ok;
}

/**
 * `graphs pause [graph-id]`: running tasks finish and no new one starts until `graphs resume`.
 * Refused (exit 1) when the graph has settled.
 */
export async function graphsPause(context: CommandContext, id: string | undefined): Promise<ExitCode> {
  const request = steerRequest(id, context.globals.group);
  const connection = context.connection();
  const response = await connection.call((options) => connection.client.pauseGraph(request, options));
  return showPauseOrResume(context, request.graphId || `in progress in group ${request.group}`, response.graph, "paused", PauseGraphResponse.toJSON(response));
}

/** `graphs resume [graph-id]`: a paused graph starts its ready tasks again. Refused (exit 1) when the graph has settled. */
export async function graphsResume(context: CommandContext, id: string | undefined): Promise<ExitCode> {
  const request = steerRequest(id, context.globals.group);
  const connection = context.connection();
  const response = await connection.call((options) => connection.client.resumeGraph(request, options));
  return showPauseOrResume(context, request.graphId || `in progress in group ${request.group}`, response.graph, "resumed", ResumeGraphResponse.toJSON(response));
}

/**
 * `graphs promote [graph-id]`: a graph waiting at its promote gate, after its canaries, goes
 * on. Without an id, the group's graph in progress (a heal running beside a rollout is not
 * taken for it). Refused (exit 1) by a graph that has no gate waiting, or has settled.
 */
export async function graphsPromote(context: CommandContext, id: string | undefined): Promise<ExitCode> {
  const { globals, out, style } = context;
  const connection = context.connection();
  const request = steerRequest(id, globals.group);
  const response = await connection.call((options) => connection.client.promoteGraph(request, options));
  const graph = response.graph ?? missingGraph(request.graphId);
  if (isSettled(graph.state)) {
    throw new CliError(ExitCode.failed, `graph ${graph.id} ${graphStateName(graph.state)} before it could be promoted`);
  }
  if (globals.output === "json") {
    out.line(jsonText(PromoteGraphResponse.toJSON(response), { compact: false }));
  } else {
    out.line(promotedLine(style, graph));
  }
  return ExitCode.ok;
}

function showPauseOrResume(
  context: CommandContext,
  graphId: string,
  graph: Graph | undefined,
  word: "paused" | "resumed",
  document: unknown,
): ExitCode {
  const answered = graph ?? missingGraph(graphId);
  // The server refuses a graph that had settled when it asked; one that settled while the call ran comes back settled.
  if (isSettled(answered.state)) {
    throw new CliError(ExitCode.failed, `graph ${answered.id} ${graphStateName(answered.state)} before it could be ${word}`);
  }
  const expected = word === "paused" ? GraphState.GRAPH_STATE_PAUSED : GraphState.GRAPH_STATE_RUNNING;
  if (answered.state !== expected) {
    // Only a graph that is not running in the server (stored as pending) comes back unchanged.
    throw new CliError(ExitCode.failed, `graph ${answered.id} is ${graphStateName(answered.state)}: the server left it as it was`);
  }
  if (context.globals.output === "json") {
    context.out.line(jsonText(document, { compact: false }));
  } else {
    context.out.line(pausedLine(context.style, answered, word));
  }
  return ExitCode.ok;
}
