import {
  CloneNodeResponse,
  DescribeNodeResponse,
  Event,
  GetNodeStatsResponse,
  KillNodeResponse,
  ListNodesRequest,
  ListNodesResponse,
  type NodeLogsRequest,
  Node,
  NodeLogsResponse,
  readDuration,
  RestartNodeResponse,
  type SetSpecResponse,
  StopNodeResponse,
  type Task,
  TaskAction,
} from "@drover/shared";
import { nodeIdArgument } from "./arguments.js";
import { WAITING_DEADLINE_MS } from "./connection.js";
import { type CommandContext, jsonText, onInterrupt } from "./context.js";
import { CliError, DeadlineError, ExitCode, UsageError } from "./errors.js";
import { clientCommand } from "./hints.js";
import { crashLoopLine, headerStrategyText, nodeDescribeLines, nodeEventLine, nodeStatsLines, nodesTable, specText } from "./render.js";
import { watchNodes } from "./stream.js";
import { showPlan, showUpdate } from "./update.js";

export interface NodesListArguments {
  all?: boolean;
  wide?: boolean;
  watch?: boolean;
}

export function nodesListRequest(args: NodesListArguments, group: string): ListNodesRequest {
  if (args.watch && (args.all || args.wide)) {
    const given = [args.all && "--all", args.wide && "--wide"].filter(Boolean).join(" and ");
    throw new UsageError(`--watch cannot be combined with ${given}: it shows the live nodes, then each change of a node's state as a line`);
  }
  // Stats cost the server a read of /proc per node: asked for only when the table shows them.
  return ListNodesRequest.fromPartial({ group, all: Boolean(args.all), wide: Boolean(args.wide) });
}

/** `nodes ls [--all] [--wide] [-w]`: the group's nodes, in the server's order; stopped ones only with --all. */
export async function nodesList(context: CommandContext, args: NodesListArguments): Promise<ExitCode> {
  const { globals, out, style } = context;
  const request = nodesListRequest(args, globals.group);
  if (args.watch) return nodesWatch(context);
  const connection = context.connection();
  const response = await connection.call((options) => connection.client.listNodes(request, options));
  if (globals.output === "json") {
    // Proto JSON leaves out empty lists; a program reading `nodes` should always find one.
    out.line(jsonText({ nodes: [], ...(ListNodesResponse.toJSON(response) as object) }, { compact: false }));
  } else {
    const now = Date.now();
    if (response.nodes.length === 0) {
      out.note(`no nodes in group ${globals.group}${request.all ? "" : " (stopped nodes are listed with --all)"}`);
    } else {
      out.line(nodesTable(style, response.nodes, now, { wide: request.wide, all: request.all }));
    }
    // Why the group is short, when its failed nodes keep failing: after the table, where the eye ends.
    if (response.crashLoop) out.line(crashLoopLine(response.crashLoop, now));
  }
  return ExitCode.ok;
}

/**
 * `nodes ls -w`: the group's live nodes, then a line for every change of a node's state as the
 * server commits it, until Ctrl-C, which ends it with 0 (stopping to read is what watching
 * asks for, as with `nodes logs -f`). A broken stream is resumed after the last event seen,
 * as `tasks watch` resumes one. With -o json: `{"snapshot": {"nodes": [...], "sequence": N}}`,
 * then one `{"event": event}` a line.
 */
async function nodesWatch(context: CommandContext): Promise<ExitCode> {
  const { globals, out, style } = context;
  const json = globals.output === "json";
  const interrupted = new AbortController();
  const stopListening = onInterrupt(() => interrupted.abort());
  try {
    const items = watchNodes({
      connection: context.connection(),
      group: globals.group,
      signal: interrupted.signal,
      onBreak: (reason, after) => out.note(`client: the watch stream broke (${reason}); resuming after event ${after}…`),
      onResume: () => out.note("client: the watch stream resumed"),
    });
    for await (const item of items) {
      if (item.type === "snapshot") {
        if (json) {
          out.line(JSON.stringify({ snapshot: { nodes: item.nodes.map((node) => Node.toJSON(node)), sequence: item.sequence } }));
          continue;
        }
        if (item.nodes.length === 0) out.note(`no nodes in group ${globals.group} yet`);
        else out.line(nodesTable(style, item.nodes, Date.now(), { wide: false }));
        out.line();
        out.line("NODES STREAM");
      } else {
        out.line(json ? JSON.stringify({ event: Event.toJSON(item.event) }) : nodeEventLine(style, item.event));
      }
    }
  } catch (error) {
    if (interrupted.signal.aborted) return ExitCode.ok;
    throw error;
  } finally {
    stopListening();
  }
  return ExitCode.ok;
}

/**
 * `nodes describe <id>`: one node's story: its record, the revision it was started from, how
 * it last ended, its restarts, and every event that touched it, oldest first.
 */
export async function nodesDescribe(context: CommandContext, id: string): Promise<ExitCode> {
  const request = { nodeId: nodeIdArgument(id) };
  const connection = context.connection();
  const response = await connection.call((options) => connection.client.describeNode(request, options));
  if (context.globals.output === "json") {
    context.out.line(jsonText({ events: [], ...(DescribeNodeResponse.toJSON(response) as object) }, { compact: false }));
    return ExitCode.ok;
  }
  const node = response.node ?? missing("node", request.nodeId);
  for (const line of nodeDescribeLines(context.style, node, response.events, Date.now())) context.out.line(line);
  return ExitCode.ok;
}

export interface NodeGraphArguments {
  detach?: boolean;
  full?: boolean;
}

/**
 * `nodes restart <id>`: the server replaces the node with a new one at its version, within
 * the group's rollout bounds, under the current revision; the graph is shown and followed
 * like an update's.
 */
export async function nodesRestart(context: CommandContext, id: string, args: NodeGraphArguments): Promise<ExitCode> {
  const request = { nodeId: nodeIdArgument(id) };
  const connection = context.connection();
  // A restart supersedes a running graph, and waits for its running tasks like an update.
  const response = await connection.call((options) => connection.client.restartNode(request, options), WAITING_DEADLINE_MS);
  const graph = response.graph ?? missing("graph", request.nodeId);
  // The node as the server resolved it, when the argument was a prefix: the restart's shut-down names it.
  const nodeId = shutDownNodeOf(graph.tasks) ?? request.nodeId;
  return showPlan(context, graph, {
    dryRun: false,
    detach: Boolean(args.detach),
    full: Boolean(args.full),
    document: () => RestartNodeResponse.toJSON(response),
    header: [
      `group ${graph.group}: revision ${graph.revision}, restarting node ${nodeId} of ${specText(graph.spec)}${graph.spec ? ` (${headerStrategyText(graph.spec)})` : ""}`,
    ],
  });
}

/** `nodes stop <id>`: the node shuts down and the count goes down by one, as a new revision shown like an update. */
export async function nodesStop(context: CommandContext, id: string, args: NodeGraphArguments): Promise<ExitCode> {
  const request = { nodeId: nodeIdArgument(id) };
  const connection = context.connection();
  const response = await connection.call((options) => connection.client.stopNode(request, options), WAITING_DEADLINE_MS);
  const nodeId = shutDownNodeOf(response.update?.graph?.tasks ?? []) ?? request.nodeId;
  return showNodeUpdate(context, response.update, () => StopNodeResponse.toJSON(response), args, `stopping node ${nodeId}: the count goes down by one`);
}

/** `nodes clone <id>`: one more node like this one starts and the count goes up by one, as a new revision shown like an update. */
export async function nodesClone(context: CommandContext, id: string, args: NodeGraphArguments): Promise<ExitCode> {
  const request = { nodeId: nodeIdArgument(id) };
  const connection = context.connection();
  const response = await connection.call((options) => connection.client.cloneNode(request, options), WAITING_DEADLINE_MS);
  return showNodeUpdate(context, response.update, () => CloneNodeResponse.toJSON(response), args, `cloning node ${request.nodeId}: the count goes up by one`);
}

function showNodeUpdate(
  context: CommandContext,
  update: SetSpecResponse | undefined,
  document: () => unknown,
  args: NodeGraphArguments,
  preface: string,
): Promise<ExitCode> {
  const answered = update ?? missing("update", preface);
  if (context.globals.output !== "json") context.out.line(preface);
  return showUpdate(context, answered, { dryRun: false, detach: Boolean(args.detach), full: Boolean(args.full), document });
}

/** `nodes kill <id>`: the node fails abruptly, as a crash would; the server's reconciler heals the group. */
export async function nodesKill(context: CommandContext, id: string): Promise<ExitCode> {
  const request = { nodeId: nodeIdArgument(id) };
  const connection = context.connection();
  const response = await connection.call((options) => connection.client.killNode(request, options));
  if (context.globals.output === "json") {
    context.out.line(jsonText(KillNodeResponse.toJSON(response), { compact: false }));
  } else {
    context.out.line(`node ${response.node?.id ?? request.nodeId} killed; the group heals itself (watch with: ${clientCommand("nodes ls -w")})`);
  }
  return ExitCode.ok;
}

/** `nodes stats <id>`: the node with what the OS says of its process. */
export async function nodesStats(context: CommandContext, id: string): Promise<ExitCode> {
  const request = { nodeId: nodeIdArgument(id) };
  const connection = context.connection();
  const response = await connection.call((options) => connection.client.getNodeStats(request, options));
  if (context.globals.output === "json") {
    context.out.line(jsonText(GetNodeStatsResponse.toJSON(response), { compact: false }));
    return ExitCode.ok;
  }
  const node = response.node ?? missing("node", request.nodeId);
  for (const line of nodeStatsLines(context.style, node, Date.now())) context.out.line(line);
  return ExitCode.ok;
}

export interface NodesLogsArguments {
  follow?: boolean;
  tail?: string;
  since?: string;
  timestamps?: boolean;
}

/**
 * `nodes logs` as kubectl takes it: `--tail N` lines (0: none, -1: the whole log), `--since D`
 * (only what the server received in the last D), `--timestamps`. Without --tail or --since the
 * server sends the last 64 KiB, in whole lines.
 */
export function nodesLogsRequest(id: string, args: NodesLogsArguments): NodeLogsRequest {
  const problems: string[] = [];
  let tailLines: number | undefined;
  if (args.tail !== undefined) {
    tailLines = /^(?:\d+|-1)$/.test(args.tail) ? Number(args.tail) : Number.NaN;
    if (!Number.isSafeInteger(tailLines)) problems.push(`tail ${JSON.stringify(args.tail)} is invalid: write a number of lines from 0, or -1 for the whole log`);
  }
  let sinceMs = 0;
  if (args.since !== undefined) {
    const reading = readDuration(args.since);
    if (reading.problem !== undefined) problems.push(`since ${JSON.stringify(args.since)} is invalid: ${reading.problem}`);
    else if (reading.milliseconds === 0) problems.push(`since ${JSON.stringify(args.since)} is invalid: it must be more than 0, like 10m`);
    else sinceMs = reading.milliseconds;
  }
  if (problems.length > 0) throw new UsageError(problems.join("; "));
  return { nodeId: nodeIdArgument(id), follow: Boolean(args.follow), tailBytes: 0, tailLines, sinceMs, timestamps: Boolean(args.timestamps) };
}

/**
 * `nodes logs <id> [-f] [--tail N] [--since D] [--timestamps]`: the node's output as it was written. With -f it
 * keeps following until the node stops, or until Ctrl-C, which ends it quietly with 0:
 * stopping to read is what following asks for.
 */
export async function nodesLogs(context: CommandContext, id: string, args: NodesLogsArguments): Promise<ExitCode> {
  const { globals, out } = context;
  const request = nodesLogsRequest(id, args);
  const connection = context.connection();
  const interrupted = new AbortController();
  const stopListening = onInterrupt(() => interrupted.abort());
  // Without -f the read ends on its own, and a server that never ends it is as good as unavailable.
  const deadline = request.follow ? undefined : AbortSignal.timeout(WAITING_DEADLINE_MS);
  const signal = deadline ? AbortSignal.any([interrupted.signal, deadline]) : interrupted.signal;
  try {
    for await (const piece of connection.client.nodeLogs(request, { signal })) {
      if (globals.output === "json") out.line(JSON.stringify(NodeLogsResponse.toJSON(piece)));
      else out.write(piece.text);
    }
  } catch (error) {
    if (interrupted.signal.aborted) return ExitCode.ok;
    if (deadline?.aborted) throw new DeadlineError(connection.server, WAITING_DEADLINE_MS, { cause: error });
    throw error;
  } finally {
    stopListening();
  }
  return ExitCode.ok;
}

/** The node a restart's or a stop's graph shuts down: the one its argument named. */
function shutDownNodeOf(tasks: readonly Task[]): string | undefined {
  return tasks.find((task) => task.action === TaskAction.TASK_ACTION_SHUT_DOWN_NODE && task.nodeId !== "")?.nodeId;
}

function missing(what: string, about: string): never {
  throw new CliError(ExitCode.failed, `the server answered without the ${what} (${about})`);
}
