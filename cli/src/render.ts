/**
 * Rendering: turns responses and events into the lines a person reads. Nothing here
 * calls the server or decides an exit code; the command files do that.
 */
import {
  type CrashLoop,
  durationText,
  type Event,
  EventType,
  FailurePolicy,
  formatAge,
  formatDuration,
  type Graph,
  graphReasonText,
  type HealthCheck,
  HealthCheckType,
  GraphState,
  graphStateName,
  type Node,
  NodeState,
  type NodeStats,
  type NodeTemplate,
  nodeStateName,
  type SetSpecResponse,
  shortId,
  type Spec,
  TaskAction,
  taskActionName,
  TaskState,
  taskStateName,
  type VersionCount,
  formatBytes,
} from "@drover/shared";
import Table from "cli-table3";
import { boundText } from "./boundText.js";
import { alignedLines, type Rows } from "./render/columns.js";
import { clientCommand } from "./hints.js";
import { bold, green, nodeStateColor, red, stateColor, type Style, yellow } from "./palette.js";
import type { GraphTracker, TaskTally, TrackedTask } from "./tracker.js";

export { type Style, styleFor } from "./palette.js";

const NO_BORDERS = {
  top: "", "top-mid": "", "top-left": "", "top-right": "",
  bottom: "", "bottom-mid": "", "bottom-left": "", "bottom-right": "",
  left: "", "left-mid": "", mid: "", "mid-mid": "", right: "", "right-mid": "",
  middle: "   ",
};

/**
 * The most rows a table hands to cli-table3; longer ones are laid out by `alignedLines`,
 * whose time grows with the rows and not faster (cli-table3 takes about 0.2 s for 1,000 rows
 * and 5 s for 10,000 here).
 */
const CLI_TABLE_MAX_ROWS = 200;

/**
 * A plain table like kubectl's: a header row (none when `head` is empty), columns three
 * spaces apart, no borders, no trailing spaces.
 */
export function table(style: Style, head: string[], rows: string[][]): string {
  return [...tableLines(style, head, { count: rows.length, row: (index) => rows[index]! })].join("\n");
}

/**
 * `table` as lines, its rows made on demand: a table of more than CLI_TABLE_MAX_ROWS rows is
 * laid out one row at a time and never held whole, for tables as long as a plan.
 */
export function tableLines(style: Style, head: string[], rows: Rows): Iterable<string> {
  const boldHead = head.map((title) => bold(style, title));
  if (rows.count > CLI_TABLE_MAX_ROWS) return alignedLines(boldHead, rows);
  return [cliTable(boldHead, Array.from({ length: rows.count }, (_, index) => [...rows.row(index)]))].filter((text) => text !== "");
}

function cliTable(head: string[], rows: string[][]): string {
  const rendered = new Table({
    head,
    chars: NO_BORDERS,
    style: { head: [], border: [], "padding-left": 0, "padding-right": 0, compact: true },
  });
  rendered.push(...rows);
  return rendered
    .toString()
    .split("\n")
    .map((line) => line.trimEnd())
    .filter((line) => line !== "")
    .join("\n");
}

/** A node or graph id short enough for a stream line: `01JDX3…8JNE`, which commands take back (see @drover/shared). */
export { shortId };

/** `3 × v2`. */
export function specText(spec: Pick<Spec, "count" | "version"> | undefined): string {
  return spec ? `${spec.count} × v${spec.version}` : "-";
}

/** The live nodes by version: `3 × v1`, `2 × v1 + 1 × v2`, or `0 nodes`. */
export function currentText(current: readonly VersionCount[]): string {
  const live = current.filter((entry) => entry.count > 0);
  return live.length === 0 ? "0 nodes" : live.map((entry) => `${entry.count} × v${entry.version}`).join(" + ");
}

/**
 * `group default: revision 4, 3 × v1 → 3 × v2 (max surge 0, max unavailable 1)`, with the
 * failure policy, deadlines and reservations after the surge and unavailability when they
 * are not the defaults. An update that makes a group (its first revision; a dry run based on
 * none) says so: `group web: creating the group, revision 1, 0 nodes → 3 × v1 (…)`, so that a
 * misspelt --group is seen before the nodes start.
 */
export function updateHeader(response: SetSpecResponse, dryRun: boolean): string {
  const spec = response.spec;
  const revision = dryRun
    ? response.created
      ? "dry run, would create the group"
      : `dry run, based on revision ${response.revision}`
    : response.created
      ? `creating the group, revision ${response.revision}`
      : `revision ${response.revision}`;
  const strategy = spec ? ` (${headerStrategyText(spec)})` : "";
  return `group ${response.group}: ${revision}, ${currentText(response.current)} → ${specText(spec)}${strategy}`;
}

/** `max surge 0, max unavailable 1`, then what is not the default: how a header says a spec rolls out. */
export function headerStrategyText(spec: Spec): string {
  return [
    `max surge ${boundText(spec.maxSurge, spec.maxSurgePercent)}`,
    `max unavailable ${boundText(spec.maxUnavailable, spec.maxUnavailablePercent)}`,
    ...rolloutWords(spec),
    ...policyWords(spec, { always: false }),
    ...resourceWords(spec),
  ].join(", ");
}

/** `min ready 5s`, `canary 2`, `auto-promote after 1m`: how the spec paces its rollout, only what it sets. */
function rolloutWords(spec: Spec): string[] {
  const words: string[] = [];
  if (spec.minReadyMs > 0) words.push(`min ready ${durationText(spec.minReadyMs)}`);
  if (spec.canary > 0) words.push(`canary ${spec.canary}`);
  if (spec.canary > 0 && spec.autoPromoteAfterMs > 0) words.push(`auto-promote after ${durationText(spec.autoPromoteAfterMs)}`);
  return words;
}

/**
 * `template 3f9c2a1b: node examples/chat/chat.mjs`: what the spec's nodes run (the start of
 * its hash, which `nodes describe` shows for each node, and its command line).
 */
export function specTemplateLine(spec: Pick<Spec, "template" | "templateHash">): string {
  const hash = spec.templateHash ? ` ${spec.templateHash.slice(0, 8)}` : "";
  return `template${hash}: ${spec.template ? commandLineText(spec.template) : "the server's default"}`;
}

/** The template's command line as a shell would take it back. */
export function commandLineText(template: Pick<NodeTemplate, "command" | "args">): string {
  return [template.command, ...template.args].map(shellWord).join(" ");
}

/** The command line cut to `max` characters, for a table's column: `node chat.mjs --name…`. */
export function shortCommandText(template: NodeTemplate | undefined, max = 40): string {
  if (!template) return "default";
  const text = commandLineText(template);
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/**
 * What the server's preview says of a plan before it runs: `min available 2, max alive 4,
 * estimated 12s`, the fewest available and the most alive nodes in any order the plan
 * allows, and how long it should take from the group's recent starts and stops.
 */
export function previewLine(response: Pick<SetSpecResponse, "minAvailable" | "maxAlive" | "estimatedDurationMs" | "hasEstimate">): string {
  const estimate = response.hasEstimate ? `estimated ${estimateText(response.estimatedDurationMs)}` : "no history to estimate its duration";
  return `min available ${response.minAvailable}, max alive ${response.maxAlive}, ${estimate}`;
}

/** An estimate, no finer than it is: `800ms`, `12s`, `3m12s`. */
export function estimateText(milliseconds: number): string {
  if (milliseconds < 1000) return `${Math.round(milliseconds)}ms`;
  if (milliseconds < 60_000) return `${Math.round(milliseconds / 1000)}s`;
  return formatDuration(milliseconds);
}

/**
 * The line above a rollback's update: which revision it restores, why that one when the user
 * named none, and whether the count comes back too.
 */
export function rollbackHeader(request: { revision: number; withCount: boolean }, restores: number): string {
  const which = request.revision === 0 ? ` (the last revision whose rollout succeeded)` : "";
  return `rolling back to revision ${restores}${which}, ${request.withCount ? "with its count" : "keeping the current count"}`;
}

/** `30s`, `5m`, `1h30m`, `1500ms`: a duration the way `--task-timeout` takes it, so that it can be pasted back. */
export { durationText } from "@drover/shared";

/**
 * `on failure rollback`, `task timeout 30s`, `progress deadline 5m`: how the spec handles
 * failure. The deadlines only when the spec sets them; the policy always, or (in a header,
 * where every word counts) only when it is not the default, stop.
 */
function policyWords(spec: Spec, options: { always: boolean }): string[] {
  const words: string[] = [];
  const rollback = spec.onFailure === FailurePolicy.FAILURE_POLICY_ROLLBACK;
  if (rollback || options.always) words.push(`on failure ${rollback ? "rollback" : "stop"}`);
  if (spec.taskTimeoutMs > 0) words.push(`task timeout ${durationText(spec.taskTimeoutMs)}`);
  if (spec.progressDeadlineMs > 0) words.push(`progress deadline ${durationText(spec.progressDeadlineMs)}`);
  return words;
}

/** `cpu 500m`, `cpu 2`: thousandths of a core the way `--cpu` takes them, whole cores without the m. */
export function cpuText(millis: number): string {
  return millis % 1000 === 0 ? String(millis / 1000) : `${millis}m`;
}

/** `256Mi`, `2Gi`, `1Ti`: mebibytes the way `--memory` takes them, in the largest unit that is exact. */
export function memoryText(mebibytes: number): string {
  if (mebibytes % 1_048_576 === 0) return `${mebibytes / 1_048_576}Ti`;
  if (mebibytes % 1024 === 0) return `${mebibytes / 1024}Gi`;
  return `${mebibytes}Mi`;
}

/** `cpu 500m`, `memory 256Mi`: what the spec reserves per node, only what it sets. */
function resourceWords(spec: Spec): string[] {
  const words: string[] = [];
  if (spec.cpuMillis > 0) words.push(`cpu ${cpuText(spec.cpuMillis)}`);
  if (spec.memoryMb > 0) words.push(`memory ${memoryText(spec.memoryMb)}`);
  return words;
}

/**
 * `surge 0, unavailable 1, on failure stop`, then any deadline and reservation the spec
 * sets: how a revision rolls out and what its nodes hold.
 */
export function strategyText(spec: Spec | undefined): string {
  if (!spec) return "-";
  return [
    `surge ${boundText(spec.maxSurge, spec.maxSurgePercent, false)}`,
    `unavailable ${boundText(spec.maxUnavailable, spec.maxUnavailablePercent, false)}`,
    ...rolloutWords(spec),
    ...policyWords(spec, { always: true }),
    ...resourceWords(spec),
  ].join(", ");
}

/**
 * What a task does: `start_node version=2`, `start_node version=2 01JDX3…8JNE`,
 * `shut_down_node 01JDX3…Q1R7`, and for a canary's promote gate, how to open it:
 * `await_promotion (client graphs promote 01JDX4…)`, with `auto after 1m, or` when the spec
 * promotes by itself.
 */
export function actionText(
  task: Pick<TrackedTask, "action" | "version" | "nodeId">,
  options: { shortIds: boolean; graph?: Pick<GraphTracker, "id" | "spec"> },
): string {
  const id = options.shortIds ? shortId(task.nodeId) : task.nodeId;
  switch (task.action) {
    case TaskAction.TASK_ACTION_START_NODE:
      return task.nodeId ? `start_node version=${task.version} ${id}` : `start_node version=${task.version}`;
    case TaskAction.TASK_ACTION_SHUT_DOWN_NODE:
      return `shut_down_node ${id}`;
    case TaskAction.TASK_ACTION_AWAIT_PROMOTION: {
      if (!options.graph) return taskActionName(task.action);
      const auto = options.graph.spec?.autoPromoteAfterMs ? `auto after ${durationText(options.graph.spec.autoPromoteAfterMs)}, or ` : "";
      // A dry run's graph has no id yet: without one, promote takes the group's latest rollout.
      const id = options.graph.id ? ` ${options.graph.id}` : "";
      return `await_promotion (${auto}${clientCommand(`graphs promote${id}`)})`;
    }
    default:
      return taskActionName(task.action);
  }
}

/** Why a task waits, without a leading "waiting:" where the word is already said (the state, the stream's word). */
export function waitingReason(message: string): string {
  return message.replace(/^waiting:\s*/i, "");
}

/** A task's state in a word; a pending task that waits (for a bound, for a promote) is `waiting`. */
export function taskStateWord(task: Pick<TrackedTask, "state" | "waiting">): string {
  return task.state === TaskState.TASK_STATE_PENDING && task.waiting ? "waiting" : taskStateName(task.state);
}

/**
 * The nodes: ID, VERSION, REVISION (whose template it was started from), STATE, AGE (a stopped
 * node's since it stopped); with
 * `wide`, what the OS says of each too (`-` where it says nothing); with `all`, LAST STATE:
 * how each one that ended did, and when.
 */
export function nodesTable(
  style: Style,
  nodes: readonly Node[],
  now: number,
  options: { wide: boolean; all?: boolean } = { wide: false },
): string {
  const wideHead = options.wide ? ["PID", "PORT", "CPU", "MEMORY", "UPTIME", "HEALTH"] : [];
  return table(
    style,
    ["ID", "VERSION", "REVISION", "STATE", "AGE", ...wideHead, ...(options.all ? ["LAST STATE"] : [])],
    nodes.map((node) => [
      node.id,
      String(node.version),
      node.revision ? String(node.revision) : "-",
      nodeStateColor(style, nodeStateName(node.state)),
      nodeAgeText(node, now),
      ...(options.wide ? wideCells(style, node.stats) : []),
      ...(options.all ? [cut(lastStateText(node, now) ?? "-", LAST_STATE_WIDTH)] : []),
    ]),
  );
}

/** A node's AGE: since it was created, or for a stopped node since it stopped (as long as it has been gone). */
function nodeAgeText(node: Pick<Node, "state" | "createdAt" | "updatedAt">, now: number): string {
  const since = node.state === NodeState.NODE_STATE_STOPPED ? (node.updatedAt ?? node.createdAt) : node.createdAt;
  return since ? formatAge(now - since.getTime()) : "-";
}

/** The widest LAST STATE a node list shows; `nodes describe` shows it whole. */
const LAST_STATE_WIDTH = 80;

const cut = (text: string, max: number) => (text.length > max ? `${text.slice(0, max - 1)}…` : text);

/**
 * How a node that ended did, and when: `exited with code 1, 2m ago: Error: listen EADDRINUSE`,
 * `stopped 5s ago`; undefined for a node that has not ended (or left no word of it).
 */
export function lastStateText(node: Pick<Node, "state" | "exitStatus" | "error" | "updatedAt">, now: number): string | undefined {
  const ended = node.state === NodeState.NODE_STATE_STOPPED || node.state === NodeState.NODE_STATE_FAILED;
  if (!ended && !node.exitStatus && !node.error) return undefined;
  const when = node.updatedAt ? `, ${formatAge(now - node.updatedAt.getTime())} ago` : "";
  const how = node.exitStatus || nodeStateName(node.state);
  return `${how}${when}${node.error ? `: ${node.error}` : ""}`;
}

/**
 * `crash loop: 7 restarts, next in 40s (last: exited with code 1)`: the group's failed nodes
 * are being replaced with a growing backoff.
 */
export function crashLoopLine(crashLoop: CrashLoop, now: number): string {
  const next = crashLoop.nextAttemptAt ? crashLoop.nextAttemptAt.getTime() - now : 0;
  // Rounded up: "next in 0s" would read as now.
  const when = next > 0 ? `next in ${formatAge(Math.ceil(next / 1000) * 1000)}` : "next now";
  const restarts = `${crashLoop.restarts} ${crashLoop.restarts === 1 ? "restart" : "restarts"}`;
  return `crash loop: ${restarts}, ${when}${crashLoop.lastFailure ? ` (last: ${crashLoop.lastFailure})` : ""}`;
}

function wideCells(style: Style, stats: NodeStats | undefined): string[] {
  if (!stats) return ["-", "-", "-", "-", "-", "-"];
  return [
    stats.pid ? String(stats.pid) : "-",
    stats.port ? String(stats.port) : "-",
    cpuPercentText(stats.cpuPercent),
    stats.residentBytes ? bytesText(stats.residentBytes) : "-",
    stats.uptimeMs ? formatDuration(stats.uptimeMs) : "-",
    checked(stats) ? healthWord(style, stats.healthy) : "-",
  ];
}

/** `1.5%` of one core. */
export function cpuPercentText(percent: number): string {
  return `${percent.toFixed(1)}%`;
}

/** `45.2 MiB`: a size in bytes in the largest binary unit under 1024 of it. */
export const bytesText = formatBytes;

/** Whether the node has been health-checked at all: until its first check, healthy=false means nothing. */
const checked = (stats: NodeStats) => stats.lastCheckAt !== undefined || stats.lastCheck !== "";

const healthWord = (style: Style, healthy: boolean) => (healthy ? green(style, "healthy") : red(style, "unhealthy"));

/**
 * What `nodes stats` shows, a field a row: the node's processes from the OS (pid, port,
 * cpu, memory, uptime, health) then its record. Without stats, the record alone and a line
 * saying why there are none.
 */
export function nodeStatsLines(style: Style, node: Node, now: number): string[] {
  const stats = node.stats;
  const age = (time: Date | undefined) => (time ? formatAge(now - time.getTime()) : "-");
  const record = [
    ["VERSION", String(node.version)],
    ["STATE", nodeStateColor(style, nodeStateName(node.state))],
    ["HOST", node.host || "-"],
  ];
  const error = node.error ? [["ERROR", node.error]] : [];
  const heading = [
    ["NODE", node.id],
    ["GROUP", node.group],
  ];
  if (!stats) {
    return [fieldsTable(style, [...heading, ...record, ["AGE", age(node.createdAt)], ...error]), noStatsLine(node)];
  }
  const health = checked(stats) ? `${healthWord(style, stats.healthy)} (${stats.lastCheck || "-"})` : "not checked yet";
  const rows = [
    ...heading,
    ["PID", stats.pid ? String(stats.pid) : "-"],
    ["PORT", stats.port ? String(stats.port) : "-"],
    ["CPU", cpuPercentText(stats.cpuPercent)],
    ["MEMORY", stats.residentBytes ? `${bytesText(stats.residentBytes)} resident` : "-"],
    ["UPTIME", stats.uptimeMs ? formatDuration(stats.uptimeMs) : "-"],
    ["HEALTH", health],
    ["LAST CHECK", stats.lastCheckAt ? `${age(stats.lastCheckAt)} ago` : "-"],
    ["RESTARTS", String(stats.restarts)],
    ...record,
    ...error,
  ];
  return [fieldsTable(style, rows)];
}

/**
 * Why a node has no stats. The server says so only by leaving them out: for a node that
 * is live, that is a driver that runs no processes (the mock driver).
 */
function noStatsLine(node: Node): string {
  switch (node.state) {
    case NodeState.NODE_STATE_STOPPED:
      return "no process stats: the node is stopped";
    case NodeState.NODE_STATE_FAILED:
      return "no process stats: the node failed and has no process";
    case NodeState.NODE_STATE_STARTING:
      return "no process stats: the node has no process yet";
    default:
      return "no process stats: the server's driver simulates this node";
  }
}

/**
 * What `nodes describe` shows: the node's record, the revision (and template) it was started
 * from, how it last ended, its restarts; then every event that touched it, oldest first.
 */
export function nodeDescribeLines(style: Style, node: Node, events: readonly Event[], now: number): string[] {
  const created = node.createdAt;
  const template = node.templateHash ? ` (template ${node.templateHash.slice(0, 8)})` : "";
  const rows = [
    ["NODE", node.id],
    ["GROUP", node.group],
    ["VERSION", String(node.version)],
    ["REVISION", node.revision ? `${node.revision}${template}` : "-"],
    ["STATE", nodeStateColor(style, nodeStateName(node.state))],
    ["HOST", node.host || "-"],
    ["CREATED", created ? `${formatAge(now - created.getTime())} ago (${created.toISOString()})` : "-"],
    ["LAST STATE", lastStateText(node, now) ?? "-"],
    ["RESTARTS", node.stats ? String(node.stats.restarts) : "-"],
    ...(node.stats?.pid ? [["PID", String(node.stats.pid)]] : []),
    ...(node.stats?.port ? [["PORT", String(node.stats.port)]] : []),
  ];
  const lines = [fieldsTable(style, rows), ""];
  if (events.length === 0) {
    lines.push("no events recorded for this node");
    return lines;
  }
  const base = created ?? events[0]!.time;
  lines.push("EVENTS (oldest first; TIME is since the node was created)");
  lines.push(
    table(
      style,
      ["TIME", "EVENT", "GRAPH", "DETAIL"],
      events.map((event) => [
        event.time && base ? `+${formatDuration(event.time.getTime() - base.getTime())}` : "-",
        nodeEventText(event),
        event.graphId || "-",
        event.error || event.message || "-",
      ]),
    ),
  );
  return lines;
}

/** What one event says of a node: `node running`, `task 3 started start_node`, `task 3 retrying in 200ms`. */
function nodeEventText(event: Event): string {
  switch (event.type) {
    case EventType.EVENT_TYPE_NODE:
      return `node ${nodeStateName(event.nodeState)}`;
    case EventType.EVENT_TYPE_TASK:
    case EventType.EVENT_TYPE_TASK_RETRY:
      return `task ${event.taskId} ${eventWord(event) ?? taskStateName(event.taskState)} ${taskActionName(event.action)}`;
    case EventType.EVENT_TYPE_GRAPH:
      return `graph ${graphStateName(event.graphState)}`;
    default:
      return "-";
  }
}

/** A table of fields, one a row: the name (in bold on a terminal) and its value. */
export function fieldsTable(style: Style, rows: readonly (readonly string[])[]): string {
  return table(style, [], rows.map(([name, ...values]) => [bold(style, name!), ...values]));
}

/** A word of a command line as a POSIX shell would take it back: quoted only when it must be. */
export function shellWord(word: string): string {
  return /^[A-Za-z0-9_./{}=:,@%+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/**
 * `http GET /healthz every 1s, timeout 1s, unhealthy after 3 failures, start timeout 10s`:
 * a health check in the words (and the durations) set-template takes.
 */
export function healthCheckText(check: HealthCheck | undefined): string {
  if (!check) return "-";
  const timing = [
    `every ${durationText(check.intervalMs)}`,
    `timeout ${durationText(check.timeoutMs)}`,
    `unhealthy after ${check.failureThreshold} ${check.failureThreshold === 1 ? "failure" : "failures"}`,
    `start timeout ${durationText(check.startTimeoutMs)}`,
  ].join(", ");
  switch (check.type) {
    case HealthCheckType.HEALTH_CHECK_TYPE_TCP:
      return `tcp connect to the node's port ${timing}`;
    case HealthCheckType.HEALTH_CHECK_TYPE_NONE:
      return `none: healthy while the process runs (start timeout ${durationText(check.startTimeoutMs)})`;
    default:
      return `http GET ${check.path} ${timing}`;
  }
}

/** A template a field a row: COMMAND (as a shell line), ENV (a variable a row), HEALTH CHECK, STOP GRACE. */
export function templateRows(template: NodeTemplate): string[][] {
  const env = Object.entries(template.env).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return [
    ["COMMAND", commandLineText(template)],
    ...(env.length === 0 ? [["ENV", "-"]] : env.map(([name, value], index) => [index === 0 ? "ENV" : "", `${name}=${shellWord(value)}`])),
    ["HEALTH CHECK", healthCheckText(template.healthCheck)],
    ["STOP GRACE", `${durationText(template.stopGraceMs)}, then SIGKILL`],
  ];
}

export function graphsTable(style: Style, graphs: readonly Graph[], now: number): string {
  return table(
    style,
    ["ID", "REVISION", "REASON", "SPEC", "STATE", "TASKS", "AGE"],
    graphs.map((graph) => [
      graph.id,
      String(graph.revision),
      graphReasonText(graph),
      specText(graph.spec),
      stateColor(style, graphStateName(graph.state)),
      `${graph.counts?.succeeded ?? 0}/${graph.counts?.total ?? graph.tasks.length}`,
      graph.createdAt ? formatAge(now - graph.createdAt.getTime()) : "-",
    ]),
  );
}

/** `graph 01JDX4…: group default, revision 4, 3 × v2, running`. */
export function graphHeader(style: Style, graph: GraphTracker): string {
  return `graph ${graph.id}: group ${graph.group}, revision ${graph.revision}, ${specText(graph.spec)}, ${stateColor(style, graphStateName(graph.state))}`;
}

/** `+1.41s`: seconds since the graph started, padded so that lines align. */
export function relativeTime(time: Date | undefined, base: Date | undefined): string {
  const milliseconds = time && base ? Math.max(0, time.getTime() - base.getTime()) : 0;
  return `+${(milliseconds / 1000).toFixed(2)}s`.padStart(7);
}

/** The word for what happened to a task, or undefined for events not shown as lines. */
export function eventWord(event: Event): string | undefined {
  if (event.type === EventType.EVENT_TYPE_TASK_RETRY) return `retrying in ${formatDuration(event.retryDelayMs)}`;
  if (event.type !== EventType.EVENT_TYPE_TASK) return undefined;
  switch (event.taskState) {
    case TaskState.TASK_STATE_RUNNING:
      return event.attempt > 1 ? `started (attempt ${event.attempt})` : "started";
    case TaskState.TASK_STATE_PENDING:
      // A pending task's event tells why it waits; one without a reason changes nothing to show.
      return event.message ? "waiting" : undefined;
    default:
      return taskStateName(event.taskState);
  }
}

/**
 * One line of the task stream: `+1.41s  3  succeeded  start_node version=2 01JDX3…8JNE`,
 * with `  error: …` when the event carries one, and for a task that waits, why:
 * `+1.41s  4  waiting    shut_down_node 01JDX3…Q1R7: would leave 1 available, below the floor 2`.
 * Undefined for events that are not shown (graph state changes, which the summary reports).
 */
export function eventLine(style: Style, event: Event, graph: GraphTracker, base: Date | undefined): string | undefined {
  const word = eventWord(event);
  if (word === undefined) return undefined;
  const task = graph.task(event.taskId);
  const idWidth = String(Math.max(0, graph.tasks.length - 1)).length;
  const action = task ? actionText(task, { shortIds: true, graph }) : taskActionName(event.action);
  const columns = [
    relativeTime(event.time, base),
    String(event.taskId).padEnd(idWidth),
    colourEventWord(style, word) + " ".repeat(Math.max(0, 9 - word.length)),
    word === "waiting" ? `${action}: ${waitingReason(event.message)}` : action,
  ];
  const line = columns.join("  ");
  return event.error ? `${line}  ${red(style, "error:")} ${event.error}` : line;
}

/**
 * A line of `nodes ls -w` for one node event: when it happened (the server's time, in the local
 * zone), the node in its short form, its group, version and new state, and why it failed:
 * `14:03:07  01JDX3…8JNE  web  v2  running`, `14:03:09  01JDX3…Q1R7  web  v1  failed     error: exited with code 1`.
 */
export function nodeEventLine(style: Style, event: Event): string {
  const time = event.time ? clockTime(event.time) : "--:--:--";
  const state = nodeStateName(event.nodeState);
  const line = [time, shortId(event.nodeId), event.group, `v${event.version}`, nodeStateColor(style, state) + " ".repeat(Math.max(0, 9 - state.length))].join("  ");
  return event.error ? `${line}  ${red(style, "error:")} ${event.error}` : line.trimEnd();
}

/** `14:03:07`: a time of day in the local zone, as `date` prints it. */
function clockTime(time: Date): string {
  return [time.getHours(), time.getMinutes(), time.getSeconds()].map((part) => String(part).padStart(2, "0")).join(":");
}

function colourEventWord(style: Style, word: string): string {
  if (word.startsWith("retrying") || word.startsWith("started")) return yellow(style, word);
  return stateColor(style, word);
}

/**
 * A line for a graph's own change of state, shown only where it tells something the task
 * lines do not: `+3.20s  graph paused`, `+9.00s  graph resumed`. The final state is the summary's.
 */
export function graphEventLine(style: Style, event: Event, previous: GraphState, base: Date | undefined): string | undefined {
  if (event.type !== EventType.EVENT_TYPE_GRAPH) return undefined;
  let word: string;
  if (event.graphState === GraphState.GRAPH_STATE_PAUSED) word = "paused";
  else if (event.graphState === GraphState.GRAPH_STATE_RUNNING && previous === GraphState.GRAPH_STATE_PAUSED) word = "resumed";
  else return undefined;
  const line = `${relativeTime(event.time, base)}  graph ${yellow(style, word)}`;
  return event.message ? `${line}: ${event.message}` : line;
}

/**
 * `[4/6 done, 1 running, 0 failed, 3.2s]`, with `paused: ` in front while the graph is paused,
 * and `1 waiting` while tasks wait for a bound or a promote.
 */
export function progressText(tally: TaskTally, elapsedMilliseconds: number, paused = false, waiting = 0): string {
  const waitingText = waiting > 0 ? `${waiting} waiting, ` : "";
  const text = `${tally.done}/${tally.total} done, ${tally.running} running, ${waitingText}${tally.failed} failed, ${formatDuration(elapsedMilliseconds)}`;
  return paused ? `[paused: ${text}]` : `[${text}]`;
}

/**
 * The summary of a settled graph: `graph 01JDX4… succeeded in 9.8s: 6 tasks, 0 retries`,
 * and for any other outcome the tasks by state and an `error: …` line, then what the server
 * decided (with `followingNext`, the client follows the graph the decision started).
 */
export function summaryLines(style: Style, graph: GraphTracker, options: { followingNext: boolean } = { followingNext: false }): string[] {
  const tally = graph.tally();
  const state = graphStateName(graph.state);
  const took =
    graph.startedAt && graph.finishedAt
      ? ` in ${formatDuration(graph.finishedAt.getTime() - graph.startedAt.getTime())}`
      : "";
  const retries = `${graph.retries} ${graph.retries === 1 ? "retry" : "retries"}`;
  const tasks = tasksText(tally.total);
  const detail = state === "succeeded" ? `${tasks}, ${retries}` : `${tasks} (${breakdownText(tally) || "none run"}), ${retries}`;
  const lines = [`graph ${graph.id} ${stateColor(style, state)}${took}: ${detail}`];
  if (graph.error) lines.push(`${red(style, "error:")} ${graph.error}`);
  lines.push(...decisionLines(graph, options.followingNext && graph.state === GraphState.GRAPH_STATE_FAILED));
  return lines;
}

/**
 * What the server decided as the graph settled, and where to watch what it started:
 * `rolling back to revision 1 (2 × v1); watch it with: client tasks watch 01JDX5…`, or
 * `…; following graph 01JDX5…` when the client goes on to follow it.
 */
function decisionLines(graph: Pick<GraphTracker, "message" | "error" | "nextGraphId">, following: boolean): string[] {
  const message = graph.message && graph.message !== graph.error ? graph.message : "";
  if (!graph.nextGraphId) return message ? [message] : [];
  const watch = following ? `following graph ${graph.nextGraphId}` : `watch it with: ${clientCommand(`tasks watch ${graph.nextGraphId}`)}`;
  return [message ? `${message}; ${watch}` : `graph ${graph.nextGraphId} follows; ${watch}`];
}

/**
 * The last line of an update followed into the rollback its failure started:
 * `update failed; rolled back to revision 3 (graph 01JDX5…)`, or how the rollback ended
 * when it did not succeed. `restores` may be unknown.
 */
export function rolledBackLine(style: Style, rollback: Pick<GraphTracker, "id" | "state">, restores: number | undefined): string {
  const to = restores ? ` to revision ${restores}` : "";
  if (rollback.state === GraphState.GRAPH_STATE_SUCCEEDED) return `update failed; rolled back${to} (graph ${rollback.id})`;
  const how = rollback.state === GraphState.GRAPH_STATE_FAILED ? "failed too" : `was ${graphStateName(rollback.state)}`;
  return `update failed, and its rollback${to} ${red(style, how)} (graph ${rollback.id})`;
}

const tasksText = (total: number) => `${total} ${total === 1 ? "task" : "tasks"}`;

/** `2 succeeded, 4 cancelled`: the tasks by state, leaving out the states no task is in. */
export function breakdownText(counts: Omit<TaskTally, "done" | "total">): string {
  return (["succeeded", "failed", "skipped", "cancelled", "running", "pending"] as const)
    .filter((key) => counts[key] > 0)
    .map((key) => `${counts[key]} ${key}`)
    .join(", ");
}

/** What `graphs cancel` says: `graph 01JDX4… cancelled: 8 tasks (2 succeeded, 6 cancelled)`. */
export function cancelledLine(style: Style, graph: Graph): string {
  const counts = graph.counts;
  const breakdown = counts ? breakdownText(counts) : "";
  const tasks = counts ? `: ${tasksText(counts.total)}${breakdown ? ` (${breakdown})` : ""}` : "";
  return `graph ${graph.id} ${stateColor(style, graphStateName(graph.state))}${tasks}`;
}

/** What `graphs pause` and `graphs resume` say: `graph 01JDX4… paused`. */
export function pausedLine(style: Style, graph: Graph, word: "paused" | "resumed"): string {
  return `graph ${graph.id} ${yellow(style, word)}`;
}

/** What `graphs promote` says: `graph 01JDX4… promoted: the rollout goes on past its canaries`, and where to watch it. */
export function promotedLine(style: Style, graph: Graph): string {
  return `graph ${graph.id} ${green(style, "promoted")}: the rollout goes on past its canaries; watch it with: ${clientCommand(`tasks watch ${graph.id}`)}`;
}

/**
 * Writes lines to a stream and, on a terminal, keeps one progress line at the bottom that is
 * rewritten in place and cleared before each new line. Off a terminal it writes plain lines only.
 */
export class Output {
  private progress = "";
  readonly interactive: boolean;

  constructor(private readonly stream: NodeJS.WriteStream = process.stdout) {
    this.interactive = Boolean(stream.isTTY);
  }

  /** Writes text as it is, not a line: a piece of a stream that may end mid-line. */
  write(text: string): void {
    this.clearProgress();
    this.stream.write(text);
    this.redrawProgress();
  }

  line(text = ""): void {
    this.clearProgress();
    this.stream.write(`${text}\n`);
    this.redrawProgress();
  }

  /** Writes many lines, a chunk of about 64 KiB at a time: a write each would cost a system call each. */
  lines(lines: Iterable<string>): void {
    let chunk = "";
    for (const text of lines) {
      chunk += `${text}\n`;
      if (chunk.length >= 65_536) {
        this.write(chunk);
        chunk = "";
      }
    }
    if (chunk !== "") this.write(chunk);
  }

  /** Writes a line to stderr, keeping the progress line intact. */
  note(text: string, stderr: NodeJS.WriteStream = process.stderr): void {
    this.clearProgress();
    stderr.write(`${text}\n`);
    this.redrawProgress();
  }

  /** Sets the progress line (ignored off a terminal). */
  setProgress(text: string): void {
    if (!this.interactive) return;
    this.progress = text;
    this.stream.write(`\r\x1b[2K${text}`);
  }

  /** Removes the progress line for good. */
  endProgress(): void {
    this.clearProgress();
    this.progress = "";
  }

  private clearProgress(): void {
    if (this.interactive && this.progress) this.stream.write("\r\x1b[2K");
  }

  private redrawProgress(): void {
    if (this.interactive && this.progress) this.stream.write(this.progress);
  }
}
