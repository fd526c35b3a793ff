import {
  DeleteGroupResponse,
  GetTemplateResponse,
  HealthCheckType,
  type NodeTemplate,
  type SetTemplateRequest,
  SetTemplateResponse,
} from "@drover/shared";
import { ClientError, Status } from "nice-grpc";
import { durationArgument, integerArgument } from "./arguments.js";
import { WAITING_DEADLINE_MS } from "./connection.js";
import { type CommandContext, jsonText, onInterruptNotice, unansweredNotice } from "./context.js";
import { CliError, ExitCode, UsageError } from "./errors.js";
import { clientCommand } from "./hints.js";
import { durationText, fieldsTable, specText, strategyText, templateRows } from "./render.js";
import { showUpdate } from "./update.js";

/**
 * The flags that make a node template, as commander hands them over: `group set-template`
 * takes them, and so does `update` (where any of them means "send a template").
 */
export interface TemplateArguments {
  command?: string;
  arg?: string[];
  env?: string[];
  health?: string;
  healthPath?: string;
  healthInterval?: string;
  healthTimeout?: string;
  healthThreshold?: string;
  startTimeout?: string;
  stopGrace?: string;
}

/** Each template flag by its option name, in the order `--help` lists them. */
const TEMPLATE_FLAGS: Record<keyof TemplateArguments, string> = {
  command: "--command",
  arg: "--arg",
  env: "--env",
  health: "--health",
  healthPath: "--health-path",
  healthInterval: "--health-interval",
  healthTimeout: "--health-timeout",
  healthThreshold: "--health-threshold",
  startTimeout: "--start-timeout",
  stopGrace: "--stop-grace",
};

/** The template flags given, as the command line spells them; none: no template to send. */
export function templateFlagsGiven(args: TemplateArguments): string[] {
  return (Object.keys(TEMPLATE_FLAGS) as (keyof TemplateArguments)[]).filter((key) => args[key] !== undefined).map((key) => TEMPLATE_FLAGS[key]);
}

/** `group set-template`'s options, as commander hands them over. */
export interface SetTemplateArguments extends TemplateArguments {
  command: string;
  detach?: boolean;
  full?: boolean;
}

/** Adds a repeated option's value to the ones before it, in order. */
export const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

const HEALTH_CHECK_TYPES: Record<string, HealthCheckType> = {
  http: HealthCheckType.HEALTH_CHECK_TYPE_HTTP,
  tcp: HealthCheckType.HEALTH_CHECK_TYPE_TCP,
  none: HealthCheckType.HEALTH_CHECK_TYPE_NONE,
};

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Set by the server's driver for every node, so a template may not set them. */
const RESERVED_ENV = new Set(["PORT", "DROVER_NODE_ID", "DROVER_VERSION", "DROVER_GROUP", "DROVER_PEERS_FILE"]);
const MAX_HEALTH_PATH = 1024;

/**
 * Reads a duration of the template that the server bounds (`min` to `max`); absent or 0 leaves
 * it to the server's default, like every zero field of a template.
 */
function boundedDuration(name: string, text: string | undefined, min: number, max: number, problems: string[]): number {
  const milliseconds = durationArgument(name, text, problems);
  if (milliseconds > 0 && (milliseconds < min || milliseconds > max)) {
    problems.push(`${name} ${JSON.stringify(text)} is invalid: it must be from ${durationText(min)} to ${durationText(max)} (0 for the server's default)`);
  }
  return milliseconds;
}

/**
 * Reads the template flags into a template, adding a problem for every bad one. Fields left
 * out are 0 or empty, which the server fills in with its defaults. The server checks the same
 * rules again; checking here names the flag before anything is sent.
 */
export function templateArgument(args: TemplateArguments, problems: string[]): NodeTemplate {
  if (args.command === undefined) {
    const others = templateFlagsGiven(args);
    problems.push(`command is missing: ${others.join(", ")} ${others.length === 1 ? "sets" : "set"} the node template, which replaces the whole template and so needs --command, the program each node runs`);
  } else if (args.command.trim() === "") {
    problems.push("command is empty: name the program each node runs");
  }

  const env: Record<string, string> = {};
  for (const entry of args.env ?? []) {
    const equals = entry.indexOf("=");
    const name = equals < 0 ? entry : entry.slice(0, equals);
    if (equals < 0) problems.push(`env ${JSON.stringify(entry)} is invalid: write NAME=VALUE`);
    else if (!ENV_NAME.test(name)) problems.push(`env name ${JSON.stringify(name)} is invalid: use letters, digits and '_', not starting with a digit`);
    else if (RESERVED_ENV.has(name)) problems.push(`env ${name} is set by the server for each node: choose another name`);
    else if (Object.hasOwn(env, name)) problems.push(`env ${name} is given twice: give each variable once`);
    else env[name] = entry.slice(equals + 1);
  }

  const typeWord = args.health ?? "http";
  const type = Object.hasOwn(HEALTH_CHECK_TYPES, typeWord) ? HEALTH_CHECK_TYPES[typeWord]! : undefined;
  if (type === undefined) problems.push(`health ${JSON.stringify(typeWord)} is invalid: use http, tcp or none`);
  const path = args.healthPath ?? "";
  if (args.healthPath !== undefined && type !== undefined && type !== HealthCheckType.HEALTH_CHECK_TYPE_HTTP) {
    problems.push(`health path ${JSON.stringify(path)} is given with --health ${typeWord}: a path is for http checks only`);
  } else if (args.healthPath !== undefined && (!path.startsWith("/") || /\s/.test(path) || path.length > MAX_HEALTH_PATH)) {
    problems.push(`health path ${JSON.stringify(path)} is invalid: write a path starting with '/', without spaces, like /healthz`);
  }
  const intervalMs = boundedDuration("health interval", args.healthInterval, 100, 3_600_000, problems);
  const timeoutMs = boundedDuration("health timeout", args.healthTimeout, 10, 60_000, problems);
  const failureThreshold =
    args.healthThreshold === undefined ? 0 : integerArgument("health threshold", args.healthThreshold, 1, 100, problems);
  const startTimeoutMs = boundedDuration("start timeout", args.startTimeout, 100, 3_600_000, problems);
  const stopGraceMs = boundedDuration("stop grace", args.stopGrace, 1, 600_000, problems);

  return {
    command: args.command ?? "",
    args: args.arg ?? [],
    env,
    healthCheck: { type: type ?? HealthCheckType.HEALTH_CHECK_TYPE_UNSPECIFIED, path, intervalMs, timeoutMs, failureThreshold, startTimeoutMs },
    stopGraceMs,
  };
}

/** The SetTemplate request for `group set-template`'s options; throws a UsageError naming every bad value. */
export function setTemplateRequest(args: SetTemplateArguments, group: string): SetTemplateRequest {
  const problems: string[] = [];
  const template = templateArgument(args, problems);
  if (problems.length > 0) throw new UsageError(problems.join("; "));
  return { group, template, templatePatch: undefined };
}

/**
 * `group set-template --command CMD …`: sets the template the group's nodes start from. The
 * template is part of the spec: on a group with a spec the server stores it as a new revision
 * and rolls it out, which is shown and followed exactly like an update; on a group without
 * one it waits for the first update, and the template is shown as stored.
 */
export async function groupSetTemplate(context: CommandContext, args: SetTemplateArguments): Promise<ExitCode> {
  const { globals, out, style } = context;
  const request = setTemplateRequest(args, globals.group);
  const connection = context.connection();
  const stopNotice = onInterruptNotice(() => unansweredNotice("template"));
  let response: SetTemplateResponse;
  try {
    // Like an update's, the call stores a revision, and may supersede a graph that runs.
    response = await connection.call((options) => connection.client.setTemplate(request, options), WAITING_DEADLINE_MS);
  } finally {
    stopNotice();
  }
  if (response.update) {
    if (globals.output !== "json") out.line(`group ${globals.group}: template set; rolling it out as revision ${response.update.revision}`);
    return showUpdate(context, response.update, {
      dryRun: false,
      detach: Boolean(args.detach),
      full: Boolean(args.full),
      followRollback: true,
      document: () => SetTemplateResponse.toJSON(response),
    });
  }
  if (globals.output === "json") {
    out.line(jsonText(SetTemplateResponse.toJSON(response), { compact: false }));
    return ExitCode.ok;
  }
  const template = response.template ?? missingTemplate(globals.group);
  out.line(`group ${globals.group}: template set`);
  out.line(`the group has no spec yet: the template applies to its first update ('${clientCommand("update <count> <version>")}')`);
  out.line();
  out.line(fieldsTable(style, templateRows(template)));
  return ExitCode.ok;
}

/**
 * `group show`: the group's template (its own or the server's default) and its current spec. Of
 * a group that does not exist yet it shows the template its first update would use, and says
 * it has no spec (so a misspelt --group shows as one).
 */
export async function groupShow(context: CommandContext): Promise<ExitCode> {
  const { globals, out, style } = context;
  const group = globals.group;
  const connection = context.connection();
  if (globals.output === "json") {
    const response = await connection.call((options) => connection.client.getTemplate({ group }, options));
    out.line(jsonText(GetTemplateResponse.toJSON(response), { compact: false }));
    return ExitCode.ok;
  }
  const [response, nodes] = await Promise.all([
    connection.call((options) => connection.client.getTemplate({ group }, options)),
    // A group without a spec has no nodes to list: NOT_FOUND.
    connection.call((options) => connection.client.listNodes({ group, all: false, wide: false }, options)).catch((error: unknown) => {
      if (error instanceof ClientError && error.code === Status.NOT_FOUND) return undefined;
      throw error;
    }),
  ]);
  const template = response.template ?? missingTemplate(group);
  const spec =
    !nodes || nodes.revision === 0 || !nodes.spec
      ? `none yet: set one with '${clientCommand("update <count> <version>")}'`
      : `revision ${nodes.revision}: ${specText(nodes.spec)} (${strategyText(nodes.spec)})`;
  out.line(
    fieldsTable(style, [
      ["GROUP", group],
      ["TEMPLATE", response.isDefault ? "the server's default (the group has none of its own)" : "the group's own"],
      ...templateRows(template),
      ["SPEC", spec],
      ["NODES", `${nodes?.nodes.length ?? 0} live (list them with: ${clientCommand("nodes ls")})`],
    ]),
  );
  return ExitCode.ok;
}

export interface GroupDeleteArguments {
  detach?: boolean;
  full?: boolean;
}

/**
 * `group delete`: scales the group to 0 as a new revision, shown and followed like an update;
 * once that succeeds the server forgets the group (its spec, revisions, graphs and nodes), as
 * deleting a Deployment does. A group with no node left is forgotten at once. No confirmation
 * is asked, as kubectl asks none; an update before the graph succeeds cancels the deletion.
 */
export async function groupDelete(context: CommandContext, args: GroupDeleteArguments): Promise<ExitCode> {
  const { globals, out } = context;
  const group = globals.group;
  const connection = context.connection();
  const stopNotice = onInterruptNotice(() => unansweredNotice("deletion"));
  let response: DeleteGroupResponse;
  try {
    response = await connection.call((options) => connection.client.deleteGroup({ group }, options), WAITING_DEADLINE_MS);
  } finally {
    stopNotice();
  }
  const json = globals.output === "json";
  const update = response.update;
  if (response.deleted || !update) {
    out.line(json ? jsonText(DeleteGroupResponse.toJSON(response), { compact: false }) : `group ${group} deleted: it had no nodes left`);
    return ExitCode.ok;
  }
  if (update.nothingToDo) {
    if (json) {
      out.line(jsonText(DeleteGroupResponse.toJSON(response), { compact: false }));
    } else {
      out.line(`group ${group}: deleting it as revision ${update.revision}`);
      out.line("its nodes are already gone: the group is forgotten once the graphs it supersedes have ended");
    }
    return ExitCode.ok;
  }
  if (!json) out.line(`group ${group}: deleting it: revision ${update.revision} scales it to 0, and once that succeeds the group is forgotten`);
  return showUpdate(context, update, {
    dryRun: false,
    detach: Boolean(args.detach),
    full: Boolean(args.full),
    document: () => DeleteGroupResponse.toJSON(response),
  });
}

function missingTemplate(group: string): never {
  throw new CliError(ExitCode.failed, `the server answered without group ${group}'s template`);
}
