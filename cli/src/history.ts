import { type ListRevisionsRequest, ListRevisionsResponse, Revision } from "@drover/shared";
import { limitArgument, revisionArgument } from "./arguments.js";
import { type CommandContext, jsonText } from "./context.js";
import { CliError, ExitCode, UsageError } from "./errors.js";
import { clientCommand } from "./hints.js";
import { fieldsTable } from "./render.js";
import { historyTable, revisionChanges, revisionGraphLines, revisionRows } from "./render/history.js";

/** The most revisions the server lists at once. */
export const MAX_REVISION_LIST_LIMIT = 1000;

export interface HistoryArguments {
  limit?: string;
  revision?: string;
  wide?: boolean;
}

/**
 * The ListRevisions request for `history`'s options, and the one revision to show whole
 * (undefined: the list); throws a UsageError naming every bad value.
 */
export function historyRequest(args: HistoryArguments, group: string): { request: ListRevisionsRequest; revision?: number } {
  const problems: string[] = [];
  const limit = limitArgument(args.limit, MAX_REVISION_LIST_LIMIT, problems);
  const revision = revisionArgument("revision", args.revision, 1, problems);
  if (args.limit !== undefined && args.revision !== undefined) {
    problems.push("--limit and --revision are given together: --limit shortens the list, --revision shows one revision instead of it; give one");
  }
  if (problems.length > 0) throw new UsageError(problems.join("; "));
  // One revision is compared with the one before it: both are among the newest the server lists.
  return revision === undefined ? { request: { group, limit } } : { request: { group, limit: MAX_REVISION_LIST_LIMIT }, revision };
}

/**
 * `history [--limit N]`: the group's spec revisions, newest first, each with the graph it made
 * and how that ended. `history --revision N`: revision N whole (its spec and template), and
 * what changed from the revision before it.
 */
export async function history(context: CommandContext, args: HistoryArguments): Promise<ExitCode> {
  const { globals, out, style } = context;
  const { request, revision } = historyRequest(args, globals.group);
  const connection = context.connection();
  const response = await connection.call((options) => connection.client.listRevisions(request, options));
  if (revision !== undefined) return showRevision(context, response.revisions, revision);
  if (globals.output === "json") {
    // Proto JSON leaves out empty lists; a program reading `revisions` should always find one.
    out.line(jsonText({ revisions: [], ...(ListRevisionsResponse.toJSON(response) as object) }, { compact: false }));
  } else if (response.revisions.length === 0) {
    out.note(`no revisions in group ${globals.group}: make one with '${clientCommand("update <count> <version>")}'`);
  } else {
    out.line(historyTable(style, response.revisions, Date.now(), { wide: Boolean(args.wide) }));
  }
  return ExitCode.ok;
}

function showRevision(context: CommandContext, revisions: readonly Revision[], number: number): ExitCode {
  const { globals, out, style } = context;
  const shown = revisions.find((each) => each.revision === number);
  if (!shown) {
    const newest = revisions[0]?.revision;
    throw new CliError(
      ExitCode.notFound,
      newest === undefined
        ? `group ${globals.group} has no revisions: make one with '${clientCommand("update <count> <version>")}'`
        : `group ${globals.group} has no revision ${number}${newest > number ? ` among its ${revisions.length} newest` : ""} (its newest is ${newest}): list them with '${clientCommand("history")}'`,
    );
  }
  const previous = revisions.find((each) => each.revision === number - 1);
  if (globals.output === "json") {
    out.line(jsonText({ revision: Revision.toJSON(shown), previous: previous ? Revision.toJSON(previous) : null }, { compact: false }));
    return ExitCode.ok;
  }
  const now = Date.now();
  out.line(fieldsTable(style, revisionRows(shown, now)));
  out.line();
  const graphs = revisionGraphLines(style, shown, now);
  if (graphs.length > 0) {
    out.lines(graphs);
    out.line();
  }
  if (!previous) {
    out.line(number === 1 ? "revision 1 is the group's first: there is none before it to compare with" : `revision ${number - 1} is no longer listed: there is nothing to compare with`);
    return ExitCode.ok;
  }
  const changes = revisionChanges(previous.spec, shown.spec);
  if (changes.length === 0) {
    out.line(`no changes from revision ${previous.revision}`);
  } else {
    out.line(`CHANGES FROM REVISION ${previous.revision}`);
    out.line(fieldsTable(style, changes));
  }
  return ExitCode.ok;
}
