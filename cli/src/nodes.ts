import { ListNodesRequest, ListNodesResponse } from "@drover/shared";
import { type CommandContext, jsonText } from "./context.js";
import { ExitCode } from "./errors.js";
import { nodesTable } from "./render.js";

export interface NodesListArguments {
  all?: boolean;
}

export function nodesListRequest(args: NodesListArguments, group: string): ListNodesRequest {
  // The table shows no per-node stats, so they are not asked for (`wide` and any later field keep their defaults).
  return ListNodesRequest.fromPartial({ group, all: Boolean(args.all) });
}

/** `nodes ls [--all]`: the group's nodes, in the server's order; stopped ones only with --all. */
export async function nodesList(context: CommandContext, args: NodesListArguments): Promise<ExitCode> {
  const { globals, out, style } = context;
  const request = nodesListRequest(args, globals.group);
  const connection = context.connection();
  const response = await connection.call((options) => connection.client.listNodes(request, options));
  if (globals.output === "json") {
    // Proto JSON leaves out empty lists; a program reading `nodes` should always find one.
    out.line(jsonText({ nodes: [], ...(ListNodesResponse.toJSON(response) as object) }, { compact: false }));
  } else if (response.nodes.length === 0) {
    out.note(`no nodes in group ${globals.group}${request.all ? "" : " (stopped nodes are listed with --all)"}`);
  } else {
    out.line(nodesTable(style, response.nodes, Date.now()));
  }
  return ExitCode.ok;
}
