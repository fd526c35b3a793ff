/**
 * The summary that stands for a plan too large to list: its steps, each a line or a few
 * (`100,000 × start_node v2, in parallel`, then `do_nothing (a join)`), with `--full` to
 * list every task instead.
 */
import { TaskAction, taskActionName, TaskState, taskStateName } from "@drover/shared";
import { actionText, type Style, table } from "../render.js";
import type { GraphView, TaskView } from "./plan.js";
import { type LaneGroup, planSteps, type Segment, type TaskShape } from "./planSteps.js";
import { idRangesCell, idRangesText } from "./ranges.js";

/**
 * Plans of more tasks than this are summarised unless `--full` is given: 200 rows already
 * fill several screens, and a 100-node rolling update (200 tasks) is still listed whole.
 */
export const SUMMARY_ABOVE_TASKS = 200;

/** The most rows the summary shows; a graph that needs more (no plan of the planner's does) says how much is left out. */
const MAX_SUMMARY_ROWS = 24;
const IDS_WIDTH = 24;

/** Whether a graph of this many tasks is shown as a summary rather than task by task. */
export function summarised(tasks: number, full: boolean): boolean {
  return !full && tasks > SUMMARY_ABOVE_TASKS;
}

const number = (value: number) => value.toLocaleString("en-US");

/**
 * The summary's lines: a title saying how many tasks in how many steps and how to list them,
 * then a table of the steps (STEP, IDS, AFTER: the steps it waits for, TASKS), one row for
 * each group of lanes; with `states`, how many of each group's tasks are in which state.
 */
export function planSummaryLines(style: Style, graph: GraphView, options: { title: string; states: boolean }): string[] {
  const steps = planSteps(graph.tasks);
  const rows: string[][] = [];
  let leftOut = { lines: 0, tasks: 0 };
  for (const step of steps) {
    step.groups.forEach((group, index) => {
      if (rows.length >= MAX_SUMMARY_ROWS) {
        leftOut = { lines: leftOut.lines + 1, tasks: leftOut.tasks + group.tasks };
        return;
      }
      const first = index === 0;
      rows.push([
        first ? String(step.number) : "",
        first ? idRangesCell(step.ids, IDS_WIDTH) : "",
        first ? idRangesText(step.after) : "",
        groupText(group, graph),
        ...(options.states ? [statesText(group.states)] : []),
      ]);
    });
  }
  const stepsText = `${number(steps.length)} ${steps.length === 1 ? "step" : "steps"}`;
  const lines = [
    `${options.title}: ${number(graph.tasks.length)} tasks in ${stepsText} (--full lists every task)`,
    table(style, ["STEP", "IDS", "AFTER", "TASKS", ...(options.states ? ["STATE"] : [])], rows),
  ];
  if (leftOut.lines > 0) lines.push(`… and ${number(leftOut.lines)} more lines of ${number(leftOut.tasks)} tasks`);
  return lines;
}

/** The most segments a lane's text shows; the rest are counted. */
const MAX_SEGMENTS = 6;

/**
 * `start_node v2`, `shut_down_node`: a task shape in a word; for a promote gate, how to
 * open it (`await_promotion (client graphs promote 01JDX4…)`).
 */
function shapeText(shape: TaskShape, graph: GraphView): string {
  if (shape.action === TaskAction.TASK_ACTION_START_NODE) return `start_node v${shape.version}`;
  if (shape.action === TaskAction.TASK_ACTION_AWAIT_PROMOTION) return actionText({ ...shape, nodeId: "" }, { shortIds: true, graph });
  return taskActionName(shape.action);
}

/** `75 × (start_node v2 → shut_down_node)`, `5-6 × shut_down_node`, `await_promotion`. */
function segmentText(segment: Segment, graph: GraphView): string {
  const words = segment.unit.map((shape) => shapeText(shape, graph));
  const unit = words.length === 1 ? words[0]! : `(${words.join(" → ")})`;
  const { fewestRepeats: fewest, mostRepeats: most } = segment;
  if (most === 1) return unit;
  return fewest === most ? `${number(most)} × ${unit}` : `${number(fewest)}-${number(most)} × ${unit}`;
}

/**
 * What a group of lanes does: `start_node version=2 01JDX3…8JNE` for a lone task (as the full
 * table would say it), `100,000 × start_node v2, in parallel` for lone tasks alike, and for
 * lanes `100 lanes, each 500 × (start_node v2 → shut_down_node)` or `1 lane: 2 × (…) →
 * await_promotion (…) → 99,998 × (…)`.
 */
function groupText(group: LaneGroup<TaskView>, graph: GraphView): string {
  const [first, ...others] = group.segments;
  if (others.length === 0 && first!.unit.length === 1 && first!.mostRepeats === 1) {
    if (group.lanes > 1) return `${number(group.lanes)} × ${shapeText(first!.unit[0]!, graph)}, in parallel`;
    const task = group.firstTask;
    const join = task.action === TaskAction.TASK_ACTION_DO_NOTHING && task.prerequisites.length > 1 ? " (a join)" : "";
    return `${actionText(task, { shortIds: true, graph })}${join}`;
  }
  const shown = group.segments.slice(0, MAX_SEGMENTS).map((segment) => segmentText(segment, graph));
  if (group.segments.length > MAX_SEGMENTS) shown.push(`… (${number(group.segments.length - MAX_SEGMENTS)} more)`);
  const lane = shown.join(" → ");
  return group.lanes === 1 ? `1 lane: ${lane}` : `${number(group.lanes)} lanes, each ${lane}`;
}

const STATE_ORDER = [
  TaskState.TASK_STATE_SUCCEEDED,
  TaskState.TASK_STATE_FAILED,
  TaskState.TASK_STATE_SKIPPED,
  TaskState.TASK_STATE_CANCELLED,
  TaskState.TASK_STATE_RUNNING,
  TaskState.TASK_STATE_PENDING,
];

/** `300 succeeded, 2 running, 99,698 pending`: a group's tasks by state, leaving out the states none is in. */
function statesText(states: ReadonlyMap<TaskState, number>): string {
  return STATE_ORDER.filter((state) => (states.get(state) ?? 0) > 0)
    .map((state) => `${number(states.get(state)!)} ${taskStateName(state)}`)
    .join(", ");
}
