/**
 * Rendering: turns responses and events into the lines a person reads. Nothing here
 * calls the server or decides an exit code; the command files do that.
 */
import {
  type Event,
  EventType,
  FailurePolicy,
  formatAge,
  formatDuration,
  type Graph,
  GraphReason,
  GraphState,
  graphStateName,
  type Node,
  nodeStateName,
  type Revision,
  RevisionReason,
  type SetSpecResponse,
  type Spec,
  TaskAction,
  taskActionName,
  TaskState,
  taskStateName,
  type VersionCount,
} from "@drover/shared";
import Table from "cli-table3";
import type { GraphTracker, TaskTally, TrackedTask } from "./tracker.js";

/** How output looks: colour only on a terminal that wants it (not with NO_COLOR or TERM=dumb). */
export interface Style {
  color: boolean;
}

export function styleFor(stream: NodeJS.WriteStream): Style {
  return { color: Boolean(stream.isTTY) && !("NO_COLOR" in process.env) && process.env.TERM !== "dumb" };
}

const ansi = (code: string) => (style: Style, text: string) => (style.color ? `\x1b[${code}m${text}\x1b[0m` : text);
const bold = ansi("1");
const red = ansi("31");
const green = ansi("32");
const yellow = ansi("33");
const dim = ansi("2");

/** Colours a state word: green for success, red for failure, yellow for work under way. */
function stateColor(style: Style, word: string): string {
  if (word === "succeeded") return green(style, word);
  if (word === "failed") return red(style, word);
  if (word === "running" || word === "starting" || word === "stopping" || word === "paused") return yellow(style, word);
  if (word === "skipped" || word === "cancelled" || word === "superseded" || word === "stopped") return dim(style, word);
  return word;
}

const NO_BORDERS = {
  top: "", "top-mid": "", "top-left": "", "top-right": "",
  bottom: "", "bottom-mid": "", "bottom-left": "", "bottom-right": "",
  left: "", "left-mid": "", mid: "", "mid-mid": "", right: "", "right-mid": "",
  middle: "   ",
};

/** A plain table like kubectl's: a header row, columns three spaces apart, no borders, no trailing spaces. */
export function table(style: Style, head: string[], rows: string[][]): string {
  const rendered = new Table({
    head: head.map((title) => bold(style, title)),
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

/** A node id short enough for a stream line: `01JDX3…8JNE` (ULIDs of one millisecond differ only at the end). */
export function shortId(id: string): string {
  return id.length > 12 ? `${id.slice(0, 6)}…${id.slice(-4)}` : id;
}

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
 * failure policy and deadlines after the surge and unavailability when they are not the defaults.
 */
export function updateHeader(response: SetSpecResponse, dryRun: boolean): string {
  const spec = response.spec;
  const revision = dryRun ? `dry run, based on revision ${response.revision}` : `revision ${response.revision}`;
  const strategy = spec
    ? ` (${[`max surge ${spec.maxSurge}`, `max unavailable ${spec.maxUnavailable}`, ...policyWords(spec, { always: false })].join(", ")})`
    : "";
  return `group ${response.group}: ${revision}, ${currentText(response.current)} → ${specText(spec)}${strategy}`;
}

/** `30s`, `5m`, `1500ms`: a duration the way `--task-timeout` takes it, so that it can be pasted back. */
export function durationText(milliseconds: number): string {
  if (milliseconds % 3_600_000 === 0) return `${milliseconds / 3_600_000}h`;
  if (milliseconds % 60_000 === 0) return `${milliseconds / 60_000}m`;
  if (milliseconds % 1000 === 0) return `${milliseconds / 1000}s`;
  return `${milliseconds}ms`;
}

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

/** `surge 0, unavailable 1, on failure stop`, then any deadline the spec sets: how a revision rolls out. */
export function strategyText(spec: Spec | undefined): string {
  if (!spec) return "-";
  return [`surge ${spec.maxSurge}`, `unavailable ${spec.maxUnavailable}`, ...policyWords(spec, { always: true })].join(", ");
}

/** Why a revision exists: `update`, `rollback to 1`, `auto-rollback to 1`. */
export function revisionReasonText(revision: Pick<Revision, "reason" | "restores">): string {
  switch (revision.reason) {
    case RevisionReason.REVISION_REASON_ROLLBACK:
      return `rollback to ${revision.restores}`;
    case RevisionReason.REVISION_REASON_AUTO_ROLLBACK:
      return `auto-rollback to ${revision.restores}`;
    default:
      return "update";
  }
}

/** Why a graph exists: `update` (a new revision) or `repair` (drift under the same revision). */
export function graphReasonText(reason: GraphReason): string {
  return reason === GraphReason.GRAPH_REASON_REPAIR ? "repair" : "update";
}

/** What a task does: `start_node version=2`, `start_node version=2 01JDX3…8JNE`, `shut_down_node 01JDX3…Q1R7`. */
export function actionText(
  task: Pick<TrackedTask, "action" | "version" | "nodeId">,
  options: { shortIds: boolean },
): string {
  const id = options.shortIds ? shortId(task.nodeId) : task.nodeId;
  switch (task.action) {
    case TaskAction.TASK_ACTION_START_NODE:
      return task.nodeId ? `start_node version=${task.version} ${id}` : `start_node version=${task.version}`;
    case TaskAction.TASK_ACTION_SHUT_DOWN_NODE:
      return `shut_down_node ${id}`;
    default:
      return taskActionName(task.action);
  }
}

export function prerequisitesText(prerequisites: readonly number[]): string {
  return prerequisites.length === 0 ? "-" : prerequisites.join(",");
}

/** The plan as the update shows it: ID, PREREQS, ACTION. */
export function planTable(style: Style, tasks: readonly TrackedTask[]): string {
  return table(
    style,
    ["ID", "PREREQS", "ACTION"],
    tasks.map((task) => [String(task.id), prerequisitesText(task.prerequisites), actionText(task, { shortIds: true })]),
  );
}

/** Tasks with their progress: ID, PREREQS, ACTION, STATE, ATTEMPTS, and ERROR when asked. */
export function taskTable(
  style: Style,
  tasks: readonly TrackedTask[],
  options: { shortIds: boolean; errors: boolean },
): string {
  const head = ["ID", "PREREQS", "ACTION", "STATE", "ATTEMPTS", ...(options.errors ? ["ERROR"] : [])];
  return table(
    style,
    head,
    tasks.map((task) => [
      String(task.id),
      prerequisitesText(task.prerequisites),
      actionText(task, options),
      stateColor(style, taskStateName(task.state)),
      String(task.attempts),
      ...(options.errors ? [task.error || "-"] : []),
    ]),
  );
}

export function nodesTable(style: Style, nodes: readonly Node[], now: number): string {
  return table(
    style,
    ["ID", "VERSION", "STATE", "AGE"],
    nodes.map((node) => [
      node.id,
      String(node.version),
      stateColor(style, nodeStateName(node.state)),
      node.createdAt ? formatAge(now - node.createdAt.getTime()) : "-",
    ]),
  );
}

export function graphsTable(style: Style, graphs: readonly Graph[], now: number): string {
  return table(
    style,
    ["ID", "REVISION", "REASON", "SPEC", "STATE", "TASKS", "AGE"],
    graphs.map((graph) => [
      graph.id,
      String(graph.revision),
      graphReasonText(graph.reason),
      specText(graph.spec),
      stateColor(style, graphStateName(graph.state)),
      `${graph.counts?.succeeded ?? 0}/${graph.counts?.total ?? graph.tasks.length}`,
      graph.createdAt ? formatAge(now - graph.createdAt.getTime()) : "-",
    ]),
  );
}

/**
 * The group's revisions, newest first: what each asked for, why it was made, and the graph
 * it made with that graph's outcome (`nothing to do` when the group already matched).
 */
export function historyTable(style: Style, revisions: readonly Revision[], now: number): string {
  return table(
    style,
    ["REVISION", "COUNT", "VERSION", "STRATEGY", "REASON", "AGE", "GRAPH", "OUTCOME"],
    revisions.map((revision) => [
      String(revision.revision),
      revision.spec ? String(revision.spec.count) : "-",
      revision.spec ? String(revision.spec.version) : "-",
      strategyText(revision.spec),
      revisionReasonText(revision),
      revision.createdAt ? formatAge(now - revision.createdAt.getTime()) : "-",
      revision.graphId || "-",
      revision.graphId ? stateColor(style, graphStateName(revision.graphState)) : "nothing to do",
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
      return undefined;
    default:
      return taskStateName(event.taskState);
  }
}

/**
 * One line of the task stream: `+1.41s  3  succeeded  start_node version=2 01JDX3…8JNE`,
 * with `  error: …` when the event carries one. Undefined for events that are not shown
 * (graph state changes, which the summary reports).
 */
export function eventLine(style: Style, event: Event, graph: GraphTracker, base: Date | undefined): string | undefined {
  const word = eventWord(event);
  if (word === undefined) return undefined;
  const task = graph.task(event.taskId);
  const idWidth = String(Math.max(0, graph.tasks.length - 1)).length;
  const action = task ? actionText(task, { shortIds: true }) : taskActionName(event.action);
  const columns = [
    relativeTime(event.time, base),
    String(event.taskId).padEnd(idWidth),
    colourEventWord(style, word) + " ".repeat(Math.max(0, 9 - word.length)),
    action,
  ];
  const line = columns.join("  ");
  return event.error ? `${line}  ${red(style, "error:")} ${event.error}` : line;
}

function colourEventWord(style: Style, word: string): string {
  if (word.startsWith("retrying")) return yellow(style, word);
  if (word.startsWith("started")) return word;
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

/** `[4/6 done, 1 running, 0 failed, 3.2s]`, with `paused: ` in front while the graph is paused. */
export function progressText(tally: TaskTally, elapsedMilliseconds: number, paused = false): string {
  const text = `${tally.done}/${tally.total} done, ${tally.running} running, ${tally.failed} failed, ${formatDuration(elapsedMilliseconds)}`;
  return paused ? `[paused: ${text}]` : `[${text}]`;
}

/**
 * The summary of a settled graph: `graph 01JDX4… succeeded in 9.8s: 6 tasks, 0 retries`,
 * and for any other outcome the tasks by state and an `error: …` line.
 */
export function summaryLines(style: Style, graph: GraphTracker): string[] {
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
  lines.push(...decisionLines(graph));
  return lines;
}

/**
 * What the server decided as the graph settled, and where to watch what it started:
 * `rolling back to revision 1 (2 × v1); watch it with: client tasks watch 01JDX5…`.
 */
function decisionLines(graph: Pick<GraphTracker, "message" | "error" | "nextGraphId">): string[] {
  const message = graph.message && graph.message !== graph.error ? graph.message : "";
  if (!graph.nextGraphId) return message ? [message] : [];
  const watch = `watch it with: client tasks watch ${graph.nextGraphId}`;
  return [message ? `${message}; ${watch}` : `graph ${graph.nextGraphId} follows; ${watch}`];
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

/** The graph in Graphviz's language: one node per task, labelled with its id and action, and an edge from each prerequisite. */
export function dotGraph(graph: GraphTracker): string {
  const quote = (text: string) => `"${text.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
  const lines = [`digraph ${quote(`graph ${graph.id}`)} {`, "  rankdir=TB;", "  node [shape=box, fontname=monospace];"];
  for (const task of graph.tasks) {
    const label = `${task.id}: ${actionText(task, { shortIds: false })}\\n${taskStateName(task.state)}`;
    lines.push(`  t${task.id} [label="${label.replace(/"/g, '\\"')}"];`);
  }
  for (const task of graph.tasks) {
    for (const prerequisite of task.prerequisites) lines.push(`  t${prerequisite} -> t${task.id};`);
  }
  lines.push("}");
  return lines.join("\n");
}

/** The graph as a Mermaid flowchart, with the same nodes and edges as the dot output. */
export function mermaidGraph(graph: GraphTracker): string {
  const lines = ["flowchart TD"];
  for (const task of graph.tasks) {
    const label = `${task.id}: ${actionText(task, { shortIds: false })}<br/>${taskStateName(task.state)}`;
    lines.push(`  t${task.id}["${label.replace(/"/g, "#quot;")}"]`);
  }
  for (const task of graph.tasks) {
    for (const prerequisite of task.prerequisites) lines.push(`  t${prerequisite} --> t${task.id}`);
  }
  return lines.join("\n");
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

  line(text = ""): void {
    this.clearProgress();
    this.stream.write(`${text}\n`);
    this.redrawProgress();
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
