import { type ListRevisionsRequest, ListRevisionsResponse } from "@drover/shared";
import { limitArgument } from "./arguments.js";
import { type CommandContext, jsonText } from "./context.js";
import { ExitCode, UsageError } from "./errors.js";
import { historyTable } from "./render.js";

/** The most revisions the server lists at once. */
export const MAX_REVISION_LIST_LIMIT = 1000;

export interface HistoryArguments {
  limit?: string;
}

export function historyRequest(args: HistoryArguments, group: string): ListRevisionsRequest {
  const problems: string[] = [];
  const limit = limitArgument(args.limit, MAX_REVISION_LIST_LIMIT, problems);
  if (problems.length > 0) throw new UsageError(problems.join("; "));
  return { group, limit };
}

/** `history [--limit N]`: the group's spec revisions, newest first, each with the graph it made and how that ended. */
export async function history(context: CommandContext, args: HistoryArguments): Promise<ExitCode> {
  const { globals, out, style } = context;
  const request = historyRequest(args, globals.group);
  const connection = context.connection();
  const response = await connection.call((options) => connection.client.listRevisions(request, options));
  if (globals.output === "json") {
    // Proto JSON leaves out empty lists; a program reading `revisions` should always find one.
    out.line(jsonText({ revisions: [], ...(ListRevisionsResponse.toJSON(response) as object) }, { compact: false }));
  } else if (response.revisions.length === 0) {
    out.note(`no revisions in group ${globals.group}: make one with 'client update <count> <version>'`);
  } else {
    out.line(historyTable(style, response.revisions, Date.now()));
  }
  return ExitCode.ok;
}
