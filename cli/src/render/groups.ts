/**
 * Groups as `groups ls` lists them (one line each, like `kubectl get deployments`) and as
 * `status` shows one whole.
 */
import { formatAge, type GroupStatus, graphReasonText, graphStateName, isSettled, shortId, type Task } from "@drover/shared";
import {
  actionText,
  crashLoopLine,
  fieldsTable,
  specTemplateLine,
  specText,
  strategyText,
  table,
  waitingReason,
} from "../render.js";
import { clientCommand } from "../hints.js";
import { stateColor, type Style, yellow } from "../palette.js";

/** A column of the group list: its title, and its cell for a group. */
interface GroupColumn {
  title: string;
  cell(group: GroupStatus, style: Style, now: number): string;
}

const column = (title: string, cell: GroupColumn["cell"]): GroupColumn => ({ title, cell });

const GROUP = column("GROUP", (group) => group.group);
const DESIRED = column("DESIRED", (group) => specText(group.spec));
const COUNT = column("COUNT", (group) => (group.spec ? String(group.spec.count) : "-"));
const VERSION = column("VERSION", (group) => (group.spec ? String(group.spec.version) : "-"));
const UP_TO_DATE = column("UP-TO-DATE", (group) => String(group.upToDate));
const AVAILABLE = column("AVAILABLE", (group) => String(group.available));
const TOTAL = column("TOTAL", (group) => String(group.total));
const FAILED = column("FAILED", (group) => String(group.failed));
const REVISION = column("REVISION", (group) => String(group.revision));
const SHORT_GRAPH = column("GRAPH", (group) => (group.graph ? shortId(group.graph.id) : "-"));
const GRAPH = column("GRAPH", (group) => group.graph?.id || "-");
const REASON = column("REASON", (group) => (group.graph ? graphReasonText(group.graph) : "-"));
const STATE = column("STATE", (group, style) => groupStateText(style, group));
const TASKS = column("TASKS", (group) => (group.graph?.counts ? `${group.graph.counts.succeeded}/${group.graph.counts.total}` : "-"));
const AGE = column("AGE", (group, _style, now) => (group.createdAt ? formatAge(now - group.createdAt.getTime()) : "-"));

/**
 * What `groups ls` shows by default: the desired spec, the nodes counted against it (up to date,
 * available, up in all, as a Deployment's UP-TO-DATE and AVAILABLE), the revision, and the
 * newest graph (its id shortened, as `history` shortens it) with its state.
 */
const NARROW = [GROUP, DESIRED, UP_TO_DATE, AVAILABLE, TOTAL, REVISION, SHORT_GRAPH, STATE];
/** `groups ls --wide`: count and version apart, failed nodes, the graph's whole id, why it was made and its tasks done, the group's age. */
const WIDE = [GROUP, COUNT, VERSION, UP_TO_DATE, AVAILABLE, TOTAL, FAILED, REVISION, GRAPH, REASON, STATE, TASKS, AGE];

/** Every group, one line each, in the order the server lists them (by name). */
export function groupsTable(style: Style, groups: readonly GroupStatus[], now: number, options: { wide: boolean } = { wide: false }): string {
  const columns = options.wide ? WIDE : NARROW;
  return table(
    style,
    columns.map((each) => each.title),
    groups.map((group) => columns.map((each) => each.cell(group, style, now))),
  );
}

/**
 * A group's state in a few words: its newest graph's state (`-` with none), then what else
 * holds: `2 waiting` (tasks of a graph that has not settled wait for a bound or a gate),
 * `deleting`, `crash loop`. Like `running, 2 waiting` or `succeeded, deleting`.
 */
export function groupStateText(style: Style, group: GroupStatus): string {
  const words: string[] = [group.graph ? stateColor(style, graphStateName(group.graph.state)) : "-"];
  if (group.graph && !isSettled(group.graph.state) && group.waitingTasks > 0) words.push(yellow(style, `${group.waitingTasks} waiting`));
  if (group.deleting) words.push(yellow(style, "deleting"));
  if (group.crashLoop) words.push(stateColor(style, "crash loop"));
  return words.join(", ");
}

/** `3 up, 2 up to date, 2 available, 1 failed`: the group's nodes counted against its spec. */
export function groupNodesText(group: GroupStatus): string {
  const failed = group.failed > 0 ? `, ${group.failed} failed` : "";
  return `${group.total} up, ${group.upToDate} up to date, ${group.available} available${failed} (of ${group.spec?.count ?? 0} desired)`;
}

/**
 * What `status` shows of one group, like `nomad job status <job>`: a field a row (its spec and
 * template, its nodes, its newest graph and how far it got, its crash loop, its deletion), then
 * the tasks of that graph that wait and why, and where to look next.
 */
export function groupStatusLines(style: Style, group: GroupStatus, waiting: readonly Task[], now: number): string[] {
  const ago = (time: Date | undefined) => (time ? `${formatAge(now - time.getTime())} ago` : "-");
  const graph = group.graph;
  const rows: string[][] = [
    ["GROUP", group.group],
    ["REVISION", `${group.revision} (${ago(group.updatedAt)})`],
    ["DESIRED", `${specText(group.spec)} (${strategyText(group.spec)})`],
    ["TEMPLATE", group.spec ? specTemplateLine(group.spec).replace(/^template:? ?/, "") || "-" : "-"],
    ["NODES", groupNodesText(group)],
    ["GRAPH", graph ? `${graph.id} (${graphReasonText(graph)}, revision ${graph.revision})` : "none yet"],
    ["STATE", groupStateText(style, group)],
  ];
  if (graph) {
    const counts = graph.counts;
    const done = counts ? `${counts.succeeded}/${counts.total} tasks succeeded` : "";
    const started = graph.startedAt ? `, started ${ago(graph.startedAt)}` : "";
    const finished = graph.finishedAt ? `, settled ${ago(graph.finishedAt)}` : "";
    rows.push(["PROGRESS", `${done}${started}${finished}`]);
    if (graph.error) rows.push(["ERROR", graph.error]);
  }
  if (group.crashLoop) rows.push(["CRASH LOOP", crashLoopLine(group.crashLoop, now).replace(/^crash loop: /, "")]);
  if (group.deleting) {
    rows.push(["DELETING", `the group is forgotten once the rollout of revision ${group.revision} (to 0 nodes) succeeds; an update cancels it`]);
  }
  rows.push(["CREATED", ago(group.createdAt)]);
  const lines = [fieldsTable(style, rows)];
  if (waiting.length > 0 && graph) {
    const more = group.waitingTasks > waiting.length ? ` (the first ${waiting.length} of ${group.waitingTasks})` : "";
    lines.push("", `WAITING${more}`);
    lines.push(
      table(
        style,
        ["TASK", "ACTION", "WHY"],
        waiting.map((task) => [String(task.id), actionText(task, { shortIds: true, graph: { id: graph.id, spec: graph.spec } }), waitingReason(task.waiting)]),
      ),
    );
  }
  const next = graph && !isSettled(graph.state) ? `follow it with: ${clientCommand("tasks watch")}; ` : "";
  lines.push("", `${next}nodes: ${clientCommand("nodes ls")}; revisions: ${clientCommand("history")}`);
  return lines;
}
