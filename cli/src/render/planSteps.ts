/**
 * A task graph seen from afar, for the summary of a plan too large to list: its tasks in
 * lanes, the lanes grouped by what they do into steps. Pure and linear in the graph's size;
 * it reads only the graph's shape, so it describes any graph, not only the planner's.
 *
 * A *lane* is a chain of tasks that run one after another: a task joins its prerequisite's
 * lane when it has that one prerequisite and is its only dependent. A lone task is a lane
 * of one. A lane is written as *segments*, each a short unit of task shapes (action and
 * version) and how many times it repeats: a surge lane of a rolling update is one segment,
 * 500 × (start_node v2, shut_down_node); a single lane with a canary is 2 × (shut_down_node,
 * start_node v2), await_promotion, 99,998 × (shut_down_node, start_node v2). Lanes whose
 * first tasks wait for the same prerequisites form a *step*; within a step, lanes of the
 * same segments (however many times each repeats) form a *group*.
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

/** A unit of task shapes a lane repeats, and how many times the lanes of a group repeat it. */
export interface Segment {
  unit: readonly TaskShape[];
  fewestRepeats: number;
  mostRepeats: number;
}

/** Lanes of one step made of the same segments. */
export interface LaneGroup<T extends StepTask = StepTask> {
  lanes: number;
  segments: Segment[];
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
    const segments = laneSegments(sequence, length);
    const segmentsKey = segments.map((segment) => segment.unit.join(" ")).join(",");
    let group = entry.groups.get(segmentsKey);
    if (!group) {
      group = {
        lanes: 0,
        segments: segments.map((segment) => ({ unit: segment.unit.map((index) => shapes.shape(index)), fewestRepeats: Infinity, mostRepeats: 0 })),
        tasks: 0,
        firstTask: head,
        states: new Map(),
      };
      entry.groups.set(segmentsKey, group);
      entry.step.groups.push(group);
    }
    group.lanes++;
    group.tasks += length;
    segments.forEach((segment, index) => {
      const counted = group.segments[index]!;
      counted.fewestRepeats = Math.min(counted.fewestRepeats, segment.repeats);
      counted.mostRepeats = Math.max(counted.mostRepeats, segment.repeats);
    });
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

/** The longest unit a segment repeats: a rolling lane's is 2; longer ones would be read, not seen. */
const MAX_UNIT = 4;

/**
 * A lane's sequence of shape numbers as segments, left to right: at each point, the unit of up
 * to MAX_UNIT shapes that repeats over the longest stretch (at least twice), or else the one
 * shape there. Linear: each unit length's scan stops within one unit of where the longest one
 * stops, and the next segment starts there.
 *
 * Worked example: [s t s t a s t s t s t] (s shut_down_node, t start_node, a await_promotion):
 * at 0, (s t) repeats twice, 4 shapes; at 4, nothing repeats: a alone; at 5, (s t) three times.
 */
function laneSegments(sequence: Int32Array, length: number): { unit: number[]; repeats: number }[] {
  const segments: { unit: number[]; repeats: number }[] = [];
  let start = 0;
  while (start < length) {
    let unitLength = 1;
    let repeats = 1;
    for (let candidate = 1; candidate <= MAX_UNIT && start + 2 * candidate <= length; candidate++) {
      let times = 1;
      while (start + (times + 1) * candidate <= length && repeatsAt(sequence, start, start + times * candidate, candidate)) times++;
      if (times >= 2 && times * candidate > repeats * unitLength) {
        unitLength = candidate;
        repeats = times;
      }
    }
    segments.push({ unit: Array.from(sequence.subarray(start, start + unitLength)), repeats });
    start += unitLength * repeats;
  }
  return segments;
}

/** Whether the `unitLength` shapes at `at` are the same as those at `start`. */
function repeatsAt(sequence: Int32Array, start: number, at: number, unitLength: number): boolean {
  for (let offset = 0; offset < unitLength; offset++) if (sequence[start + offset] !== sequence[at + offset]) return false;
  return true;
}
