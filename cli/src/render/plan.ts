/**
 * The plan and the tasks of a graph as tables: what `update` prints before it follows a
 * graph, and what `tasks watch` and `graphs show` print of each task.
 */
import { actionText, stateColor, type Style, table, taskStateWord, waitingReason } from "../render.js";
import type { GraphTracker } from "../tracker.js";
import { idRangesCell } from "./ranges.js";

/**
 * The widest PREREQS cell: one long cell pads its whole column, so a join that waited for every
 * task of a large plan once made each of its rows as wide as the plan (1,000 nodes printed 3.9 MB).
 */
const PREREQUISITES_WIDTH = 40;

/** A task's prerequisites as ranges (`0-26`, `0-3,7,9-12`, `201-599/2`), cut to fit a cell. */
export function prerequisitesText(prerequisites: readonly number[]): string {
  return idRangesCell(prerequisites, PREREQUISITES_WIDTH);
}

/** The plan as the update shows it: ID, PREREQS, ACTION. */
export function planTable(style: Style, graph: GraphTracker): string {
  return table(
    style,
    ["ID", "PREREQS", "ACTION"],
    graph.tasks.map((task) => [String(task.id), prerequisitesText(task.prerequisites), actionText(task, { shortIds: true, graph })]),
  );
}

/**
 * Tasks with their progress: ID, PREREQS, ACTION, STATE, ATTEMPTS, and when asked DETAIL: the
 * error of a task that failed, or what a waiting task waits for.
 */
export function taskTable(style: Style, graph: GraphTracker, options: { shortIds: boolean; errors: boolean }): string {
  const head = ["ID", "PREREQS", "ACTION", "STATE", "ATTEMPTS", ...(options.errors ? ["DETAIL"] : [])];
  return table(
    style,
    head,
    graph.tasks.map((task) => [
      String(task.id),
      prerequisitesText(task.prerequisites),
      actionText(task, { shortIds: options.shortIds, graph }),
      stateColor(style, taskStateWord(task)),
      String(task.attempts),
      ...(options.errors ? [task.error || waitingReason(task.waiting) || "-"] : []),
    ]),
  );
}
