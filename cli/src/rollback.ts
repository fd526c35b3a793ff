import { type RollbackRequest, RollbackResponse } from "@drover/shared";
import { revisionArgument } from "./arguments.js";
import { UNARY_DEADLINE_MS, WAITING_DEADLINE_MS } from "./connection.js";
import { type CommandContext, onInterruptNotice, unansweredNotice } from "./context.js";
import { CliError, ExitCode, UsageError } from "./errors.js";
import { rollbackHeader } from "./render.js";
import { showUpdate } from "./update.js";

/** `rollback`'s argument and options, as commander hands them over. */
export interface RollbackArguments {
  revision?: string;
  expectRevision?: string;
  dryRun?: boolean;
  detach?: boolean;
  full?: boolean;
  withCount?: boolean;
}

/** The Rollback request for `rollback`'s arguments; throws a UsageError naming every bad value. */
export function rollbackRequest(args: RollbackArguments, group: string): RollbackRequest {
  const problems: string[] = [];
  // Revision 0 would mean "the last one whose rollout succeeded" to the server; on the command line that is said by leaving it out.
  const revision = revisionArgument("revision", args.revision, 1, problems) ?? 0;
  const expectRevision = revisionArgument("expect revision", args.expectRevision, 0, problems);
  if (problems.length > 0) throw new UsageError(problems.join("; "));
  return { group, revision, expectRevision, dryRun: Boolean(args.dryRun), withCount: Boolean(args.withCount) };
}

/**
 * `rollback [revision] [--with-count]`: stores a new revision with an earlier revision's spec
 * and template (default: the newest earlier revision whose rollout succeeded), keeping the
 * group's current count unless --with-count, and then behaves exactly like `update` with that
 * spec: the same header, plan and stream, and the same exit codes.
 */
export async function rollback(context: CommandContext, args: RollbackArguments): Promise<ExitCode> {
  const request = rollbackRequest(args, context.globals.group);
  const connection = context.connection();
  const stopNotice = onInterruptNotice(() =>
    request.dryRun ? "interrupted: a dry run changes nothing" : unansweredNotice("rollback"),
  );
  let response: RollbackResponse;
  try {
    response = await connection.call(
      (options) => connection.client.rollback(request, options),
      request.dryRun ? UNARY_DEADLINE_MS : WAITING_DEADLINE_MS,
    );
  } finally {
    stopNotice();
  }
  const update = response.update ?? missingUpdate();
  if (context.globals.output !== "json") context.out.line(rollbackHeader(request, response.restores));
  return showUpdate(context, update, {
    dryRun: request.dryRun,
    detach: Boolean(args.detach),
    full: Boolean(args.full),
    document: () => RollbackResponse.toJSON(response),
  });
}

function missingUpdate(): never {
  throw new CliError(ExitCode.failed, "the server answered the rollback without the update it made");
}
