import {
  type CancelGraphRequest,
  CancelGraphResponse,
  type GetGraphRequest,
  GetGraphResponse,
  type ListGraphsRequest,
  ListGraphsResponse,
} from "@drover/shared";
import { WAITING_DEADLINE_MS } from "./connection.js";
import { type CommandContext, jsonText } from "./context.js";
import { CliError, ExitCode, UsageError } from "./errors.js";
import { cancelledLine, dotGraph, graphHeader, graphsTable, mermaidGraph, summaryLines, taskTable } from "./render.js";
import { graphIdArgument } from "./tasks.js";
import { GraphTracker } from "./tracker.js";

/** The most graphs the server lists at once. */
export const MAX_GRAPH_LIST_LIMIT = 1000;

export interface GraphsListArguments {
  limit?: string;
}

export function graphsListRequest(args: GraphsListArguments, group: string): ListGraphsRequest {
  if (args.limit === undefined) return { group, limit: 0 };
  const limit = /^\d+$/.test(args.limit) ? Number(args.limit) : Number.NaN;
  if (!(limit >= 1 && limit <= MAX_GRAPH_LIST_LIMIT)) {
    throw new UsageError(`limit ${JSON.stringify(args.limit)} is invalid: it must be an integer from 1 to ${MAX_GRAPH_LIST_LIMIT}`);
  }
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
    out.line(dotGraph(graph));
  } else if (format === "mermaid") {
    out.line(mermaidGraph(graph));
  } else {
    out.line(graphHeader(style, graph));
    out.line();
    out.line(taskTable(style, graph.tasks, { shortIds: false, errors: true }));
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

export function graphsCancelRequest(id: string): CancelGraphRequest {
  return { graphId: graphIdArgument(id) };
}

/** `graphs cancel <id>`: cancels a pending or running graph; refused (exit 1) when it has settled. */
export async function graphsCancel(context: CommandContext, id: string): Promise<ExitCode> {
  const { globals, out } = context;
  const request = graphsCancelRequest(id);
  const connection = context.connection();
  const response = await connection.call((options) => connection.client.cancelGraph(request, options), WAITING_DEADLINE_MS);
  if (globals.output === "json") {
    out.line(jsonText(CancelGraphResponse.toJSON(response), { compact: false }));
  } else if (response.graph) {
    out.line(cancelledLine(context.style, response.graph));
  }
  return ExitCode.ok;
}
