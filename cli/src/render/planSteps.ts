/**
 * A task graph seen from afar, for the summary of a plan too large to list: its tasks in
 * lanes, the lanes grouped by what they do into steps. Pure and linear in the graph's size;
 * it reads only the graph's shape, so it describes any graph, not only the planner's.
 *
 * A *lane* is a chain of tasks that run one after another: a task joins its prerequisite's
 * lane when it has that one prerequisite and is its only dependent. A lone task is a lane
 * of one. A lane's *unit* is the shortest run of task shapes (action and version) that it
 * repeats: a surge lane of a rolling update repeats (start_node v2, shut_down_node). Lanes
 * whose first tasks wait for the same prerequisites form a *step*; within a step, lanes
 * with the same unit form a *group*.
 *
 * Worked example: 5 nodes v1 → v2, max surge 1, max unavailable 1 (the planner's lanes):
 *
 *   lane 0: start#0 → shut#1 → start#4 → shut#5 → start#8 → shut#9 ─┐
 *   lane 1: shut#2 → start#3 → shut#6 → start#7 ─────────────────────┴→ join#10
 *
 * Two lanes with no prerequisites, so one step: a group of one lane of 3 × (start_node v2,
 * shut_down_node) and a group of one lane of 2 × (shut_down_node, start_node v2). The join
 * waits for tasks 7 and 9, both in step 1: it is step 2, after step 1.
 */
import { TaskAction, type TaskState } from "@drover/shared";
import type { TrackedTask } from "../tracker.js";

/** What the summary needs of a task. */
export type StepTask = Pick<TrackedTask, "id" | "prerequisites" | "action" | "version" | "state">;

/** What a task does, without the node it does it to: its action, and for a start the version. */
export interface TaskShape {
  action: TaskAction;
  version: number;
}

/** Lanes of one step that repeat the same unit. */
export interface LaneGroup<T extends StepTask = StepTask> {
  lanes: number;
  unit: readonly TaskShape[];
  /** The fewest and the most times a lane of the group repeats its unit. */
  fewestRepeats: number;
  mostRepeats: number;
  tasks: number;
  /** The group's first task, which says all of a group of one task. */
  firstTask: T;
  /** How many of its tasks are in each state. */
  states: Map<TaskState, number>;
}

export interface PlanStep<T extends StepTask = StepTask> {
  /** From 1, in the order of the steps' first tasks. */
  number: number;
  /** The ids of its tasks, ascending. */
  ids: number[];
  /** The steps whose tasks its lanes' first tasks wait for, ascending. */
  after: number[];
  groups: LaneGroup<T>[];
}

/** The graph's tasks in steps, in the order of each step's first task. */
export function planSteps<T extends StepTask>(tasks: readonly T[]): PlanStep<T>[] {
  const count = tasks.length;
  const positionOf = taskPositions(tasks);
  const dependents = new Int32Array(count);
  for (const task of tasks) {
    for (const id of task.prerequisites) {
      const position = positionOf(id);
      if (position !== undefined) dependents[position]!++;
    }
  }

  // Lanes, as linked lists through `next`.
  const laneOf = new Int32Array(count);
  const next = new Int32Array(count).fill(-1);
  const laneHead: number[] = [];
  const laneTail: number[] = [];
  for (let position = 0; position < count; position++) {
    const prerequisites = tasks[position]!.prerequisites;
    const before = prerequisites.length === 1 ? positionOf(prerequisites[0]!) : undefined;
    if (before !== undefined && before < position && dependents[before] === 1 && laneTail[laneOf[before]!] === before) {
      const lane = laneOf[before]!;
      next[before] = position;
      laneTail[lane] = position;
      laneOf[position] = lane;
    } else {
      laneOf[position] = laneHead.length;
      laneHead.push(position);
      laneTail.push(position);
    }
  }

  const shapes = new TaskShapes();
  const sequence = new Int32Array(count);
  const prefix = new Int32Array(count);
  const stepByAfter = new Map<string, { step: PlanStep<T>; groups: Map<string, LaneGroup<T>> }>();
  const steps: PlanStep<T>[] = [];
  const stepOfLane = new Int32Array(laneHead.length);
  for (let lane = 0; lane < laneHead.length; lane++) {
    const head = tasks[laneHead[lane]!]!;
    const afterKey = head.prerequisites.join(",");
    let entry = stepByAfter.get(afterKey);
    if (!entry) {
      entry = { step: { number: steps.length + 1, ids: [], after: [], groups: [] }, groups: new Map() };
      stepByAfter.set(afterKey, entry);
      steps.push(entry.step);
    }
    stepOfLane[lane] = entry.step.number - 1;

    let length = 0;
    for (let position = laneHead[lane]!; position !== -1; position = next[position]!) sequence[length++] = shapes.indexOf(tasks[position]!);
    const unitLength = shortestPeriod(sequence, length, prefix);
    const unitKey = Array.from(sequence.subarray(0, unitLength)).join(",");
    let group = entry.groups.get(unitKey);
    if (!group) {
      group = {
        lanes: 0,
        unit: Array.from(sequence.subarray(0, unitLength), (index) => shapes.shape(index)),
        fewestRepeats: Infinity,
        mostRepeats: 0,
        tasks: 0,
        firstTask: head,
        states: new Map(),
      };
      entry.groups.set(unitKey, group);
      entry.step.groups.push(group);
    }
    const repeats = length / unitLength;
    group.lanes++;
    group.tasks += length;
    group.fewestRepeats = Math.min(group.fewestRepeats, repeats);
    group.mostRepeats = Math.max(group.mostRepeats, repeats);
    for (let position = laneHead[lane]!; position !== -1; position = next[position]!) {
      const state = tasks[position]!.state;
      group.states.set(state, (group.states.get(state) ?? 0) + 1);
    }
  }

  for (let position = 0; position < count; position++) steps[stepOfLane[laneOf[position]!]!]!.ids.push(tasks[position]!.id);
  for (const { step } of stepByAfter.values()) {
    const after = new Set<number>();
    for (const id of tasks[positionOf(step.ids[0]!)!]!.prerequisites) {
      const position = positionOf(id);
      if (position !== undefined) after.add(stepOfLane[laneOf[position]!]! + 1);
    }
    step.after = [...after].sort((a, b) => a - b);
  }
  return steps;
}

/**
 * Where each task id sits in the list: a planned graph's ids are its positions, so the map
 * is built only for a graph whose ids are not.
 */
function taskPositions(tasks: readonly StepTask[]): (id: number) => number | undefined {
  if (tasks.every((task, position) => task.id === position)) return (id) => (id >= 0 && id < tasks.length ? id : undefined);
  const positions = new Map(tasks.map((task, position) => [task.id, position]));
  return (id) => positions.get(id);
}

/** Task shapes numbered as they are met, so that a lane's sequence is a list of small integers. */
class TaskShapes {
  private readonly numbers = new Map<string, number>();
  private readonly shapes: TaskShape[] = [];

  indexOf(task: StepTask): number {
    const version = task.action === TaskAction.TASK_ACTION_START_NODE ? task.version : 0;
    const key = `${task.action}:${version}`;
    let index = this.numbers.get(key);
    if (index === undefined) {
      index = this.shapes.length;
      this.numbers.set(key, index);
      this.shapes.push({ action: task.action, version });
    }
    return index;
  }

  shape(index: number): TaskShape {
    return this.shapes[index]!;
  }
}

/**
 * The length of the shortest unit the first `length` items repeat whole (the length itself
 * when none does), from the prefix function (Knuth–Morris–Pratt) in linear time: with p the
 * length of the longest proper prefix that is also a suffix, the sequence repeats its first
 * length − p items if that divides the length. [a b a b a b]: p = 4, unit 2; [a b a]: p = 1,
 * 3 − 1 = 2 does not divide 3, unit 3.
 */
function shortestPeriod(sequence: Int32Array, length: number, prefix: Int32Array): number {
  if (length <= 1) return length;
  prefix[0] = 0;
  for (let i = 1; i < length; i++) {
    let matched = prefix[i - 1]!;
    while (matched > 0 && sequence[i] !== sequence[matched]) matched = prefix[matched - 1]!;
    if (sequence[i] === sequence[matched]) matched++;
    prefix[i] = matched;
  }
  const period = length - prefix[length - 1]!;
  return length % period === 0 ? period : length;
}
