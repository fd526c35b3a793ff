/**
 * The plan and the tasks of a graph as tables: what `update` prints before it follows a
 * graph, and what `tasks watch` and `graphs show` print of each task.
 */
import { actionText, stateColor, type Style, table, taskStateWord, waitingReason } from "../render.js";
import type { GraphTracker } from "../tracker.js";

export function prerequisitesText(prerequisites: readonly number[]): string {
  return prerequisites.length === 0 ? "-" : prerequisites.join(",");
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
