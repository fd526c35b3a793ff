import { GetGroupResponse, ListGroupsResponse } from "@drover/shared";
import { type CommandContext, jsonText } from "./context.js";
import { CliError, ExitCode } from "./errors.js";
import { clientCommand } from "./hints.js";
import { groupStatusLines, groupsTable } from "./render/groups.js";

export interface GroupsListArguments {
  wide?: boolean;
}

/**
 * `groups ls [--wide]`: every group, one line each, by name: its desired count and version, its
 * nodes up to date, available and up, its revision, and its newest graph with that graph's state.
 */
export async function groupsList(context: CommandContext, args: GroupsListArguments): Promise<ExitCode> {
  const { globals, out, style } = context;
  const connection = context.connection();
  const response = await connection.call((options) => connection.client.listGroups({}, options));
  if (globals.output === "json") {
    // Proto JSON leaves out empty lists; a program reading `groups` should always find one.
    out.line(jsonText({ groups: [], ...(ListGroupsResponse.toJSON(response) as object) }, { compact: false }));
  } else if (response.groups.length === 0) {
    out.note(`no groups yet: make one with '${clientCommand("update <count> <version>")}'`);
  } else {
    out.line(groupsTable(style, response.groups, Date.now(), { wide: Boolean(args.wide) }));
  }
  return ExitCode.ok;
}

/**
 * `status`: the group (--group) in more detail than `groups ls` gives it: its spec and template,
 * its nodes counted against the spec, its newest graph and how far it got, the tasks that wait
 * and why, its crash loop and its deletion. A group that does not exist is NOT_FOUND (exit 5).
 */
export async function groupStatus(context: CommandContext): Promise<ExitCode> {
  const { globals, out, style } = context;
  const connection = context.connection();
  const response = await connection.call((options) => connection.client.getGroup({ group: globals.group }, options));
  if (globals.output === "json") {
    out.line(jsonText({ waiting: [], ...(GetGroupResponse.toJSON(response) as object) }, { compact: false }));
    return ExitCode.ok;
  }
  if (!response.group) throw new CliError(ExitCode.failed, `the server answered without group ${globals.group}`);
  out.lines(groupStatusLines(style, response.group, response.waiting, Date.now()));
  return ExitCode.ok;
}
