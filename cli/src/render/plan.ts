/**
 * The plan and the tasks of a graph as tables: what `update` prints before it follows a
 * graph, and what `tasks watch` and `graphs show` print of each task.
 */
import type { Spec } from "@drover/shared";
import { stateColor, type Style } from "../palette.js";
import { actionText, tableLines, taskStateWord, waitingReason } from "../render.js";
import type { TrackedTask } from "../tracker.js";
import { idRangesCell } from "./ranges.js";

/** What these tables read of a task. */
export type TaskView = Pick<TrackedTask, "id" | "prerequisites" | "action" | "version" | "nodeId" | "state" | "waiting" | "attempts" | "error">;

/**
 * What these tables read of a graph: a GraphTracker, or a graph as the server sent it (a plan
 * of 200,000 tasks is shown without copying them first).
 */
export interface GraphView {
  id: string;
  spec: Spec | undefined;
  tasks: readonly TaskView[];
}

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
export function planTable(style: Style, graph: GraphView): string {
  return [...planTableLines(style, graph)].join("\n");
}

/** `planTable` as lines, made a row at a time. */
export function planTableLines(style: Style, graph: GraphView): Iterable<string> {
  return tableLines(style, ["ID", "PREREQS", "ACTION"], {
    count: graph.tasks.length,
    row: (index) => {
      const task = graph.tasks[index]!;
      return [String(task.id), prerequisitesText(task.prerequisites), actionText(task, { shortIds: true, graph })];
    },
  });
}

export interface TaskTableOptions {
  shortIds: boolean;
  errors: boolean;
}

/**
 * Tasks with their progress: ID, PREREQS, ACTION, STATE, ATTEMPTS, and when asked DETAIL: the
 * error of a task that failed, or what a waiting task waits for.
 */
export function taskTable(style: Style, graph: GraphView, options: TaskTableOptions): string {
  return [...taskTableLines(style, graph, options)].join("\n");
}

/** `taskTable` as lines, made a row at a time. */
export function taskTableLines(style: Style, graph: GraphView, options: TaskTableOptions): Iterable<string> {
  const head = ["ID", "PREREQS", "ACTION", "STATE", "ATTEMPTS", ...(options.errors ? ["DETAIL"] : [])];
  return tableLines(style, head, {
    count: graph.tasks.length,
    row: (index) => {
      const task = graph.tasks[index]!;
      return [
        String(task.id),
        prerequisitesText(task.prerequisites),
        actionText(task, { shortIds: options.shortIds, graph }),
        stateColor(style, taskStateWord(task)),
        String(task.attempts),
        ...(options.errors ? [task.error || waitingReason(task.waiting) || "-"] : []),
      ];
    },
  });
}
