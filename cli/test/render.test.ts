/** The building blocks of the client's tables, checked without a server. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { setImmediate } from "node:timers/promises";
import { type Event, EventType, Graph, GraphState, Task, TaskAction, TaskState } from "@drover/shared";
import fc from "fast-check";
import { eventLine, progressText, table } from "../src/render.js";
import { alignedColumns } from "../src/render/columns.js";
import { planSummaryLines } from "../src/render/planSummary.js";
import { idRangesCell, idRangesText } from "../src/render/ranges.js";
import { GraphTracker } from "../src/tracker.js";

/** Expands what idRangesText wrote back into ids. */
function parseRanges(text: string): number[] {
  if (text === "-") return [];
  return text.split(",").flatMap((part) => {
    const match = /^(\d+)-(\d+)(?:\/(\d+))?$/.exec(part);
    if (!match) return [Number(part)];
    const [from, to, step] = [Number(match[1]), Number(match[2]), Number(match[3] ?? 1)];
    const ids: number[] = [];
    for (let id = from; id <= to; id += step) ids.push(id);
    return ids;
  });
}

describe("task ids as ranges", () => {
  test("runs of four or more become ranges, evenly spaced ones in step notation, the rest stay as they are", () => {
    assert.equal(idRangesText([]), "-");
    assert.equal(idRangesText([5]), "5");
    assert.equal(idRangesText([0, 1, 2]), "0,1,2");
    assert.equal(idRangesText(Array.from({ length: 27 }, (_, i) => i)), "0-26");
    assert.equal(idRangesText([0, 1, 2, 3, 7, 9, 10, 11, 12]), "0-3,7,9-12");
    assert.equal(idRangesText(Array.from({ length: 200 }, (_, i) => 201 + 2 * i)), "201-599/2");
    assert.equal(idRangesText([12, 3, 2, 1, 0, 3]), "0-3,12", "unsorted, with a repeat");
  });

  test("ranges always stand for exactly the ids given", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 300 }), { maxLength: 200 }), (ids) => {
        const expected = [...new Set(ids)].sort((a, b) => a - b);
        assert.deepEqual(parseRanges(idRangesText(ids)), expected);
      }),
    );
  });

  test("a cell of ranges is cut at a comma and says how many ids there are", () => {
    const squares = Array.from({ length: 40 }, (_, i) => i * i);
    const cell = idRangesCell(squares, 24);
    assert.ok(cell.length <= 24, cell);
    assert.match(cell, /^0,1,4,9,.*,…\(40 ids\)$/);
    assert.equal(idRangesCell([0, 1, 2, 3], 24), "0-3");
  });
});

describe("aligned columns", () => {
  const plain = { color: false };
  const word = fc.stringMatching(/^[a-z0-9 …×=-]{0,12}$/);
  const coloured = fc.stringMatching(/^[a-z]{1,9}$/).map((text) => `\x1b[32m${text}\x1b[0m`);
  const cell = fc.oneof({ weight: 6, arbitrary: word }, { weight: 1, arbitrary: coloured }, { weight: 1, arbitrary: fc.tuple(word, word).map(([a, b]) => `${a}\n${b}`) });

  test("lay a table out exactly as cli-table3 does (for ASCII, colours and cells of several lines)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5 }).chain((columns) =>
          fc.tuple(
            fc.oneof(fc.constant([] as string[]), fc.array(fc.stringMatching(/^[A-Z]{1,8}$/), { minLength: columns, maxLength: columns })),
            fc.array(fc.array(cell, { minLength: columns, maxLength: columns }), { maxLength: 20 }),
          ),
        ),
        ([head, rows]) => {
          assert.equal(alignedColumns(head, rows), table(plain, head, rows));
        },
      ),
    );
  });

  test("a table longer than cli-table3 is given is laid out the same way", () => {
    const rows = Array.from({ length: 1000 }, (_, i) => [String(i), i % 7 === 0 ? "0-3,7" : "-", "start_node version=2"]);
    const lines = table(plain, ["ID", "PREREQS", "ACTION"], rows).split("\n");
    assert.equal(lines.length, 1001);
    assert.equal(lines[0], "ID    PREREQS   ACTION");
    assert.equal(lines[1], "0     0-3,7     start_node version=2");
    assert.equal(lines[1000], "999   -         start_node version=2");
  });
});

describe("following a large graph", () => {
  const TASKS = 100_000;
  const taskEvent = (sequence: number, taskId: number, taskState: TaskState, message = ""): Event =>
    ({ sequence, graphId: "G", type: EventType.EVENT_TYPE_TASK, taskId, taskState, attempt: 1, action: TaskAction.TASK_ACTION_START_NODE, nodeId: "", error: "", message, time: new Date(sequence) }) as unknown as Event;

  // Each event's line and the progress line after it, as the follower works them out; when
  // that work grew with the graph, these 200,001 events took minutes (2·10^10 task visits).
  test("does per-event work that does not grow with the graph: 200,001 events of a 100,000-task graph", { timeout: 60_000 }, async () => {
    const tasks = Array.from({ length: TASKS }, (_, id) => Task.fromPartial({ id, action: TaskAction.TASK_ACTION_START_NODE, version: 2, state: TaskState.TASK_STATE_PENDING }));
    const tracker = new GraphTracker(Graph.fromPartial({ id: "G", state: GraphState.GRAPH_STATE_RUNNING, tasks }), 0);
    let sequence = 0;
    let lines = 0;
    const follow = (event: Event) => {
      tracker.apply(event);
      if (eventLine({ color: false }, event, tracker, undefined) !== undefined) lines++;
      progressText(tracker.tally(), 0, false, tracker.waitingCount());
    };
    follow(taskEvent(++sequence, 0, TaskState.TASK_STATE_PENDING, "waiting: would leave 1 available"));
    assert.equal(tracker.waitingCount(), 1);
    for (let id = 0; id < TASKS; id++) {
      follow(taskEvent(++sequence, id, TaskState.TASK_STATE_RUNNING));
      follow(taskEvent(++sequence, id, TaskState.TASK_STATE_SUCCEEDED));
      // Let the test's timeout fire if this is slow.
      if (id % 1_000 === 0) await setImmediate();
    }
    assert.equal(lines, 2 * TASKS + 1);
    assert.deepEqual(tracker.tally(), { total: TASKS, pending: 0, running: 0, succeeded: TASKS, failed: 0, skipped: 0, cancelled: 0, done: TASKS });
    assert.equal(tracker.waitingCount(), 0);
  });

  test("keeps its tally equal to a count of its tasks whatever events come, in any order", () => {
    const states = [TaskState.TASK_STATE_PENDING, TaskState.TASK_STATE_RUNNING, TaskState.TASK_STATE_SUCCEEDED, TaskState.TASK_STATE_FAILED, TaskState.TASK_STATE_SKIPPED, TaskState.TASK_STATE_CANCELLED];
    const change = fc.record({ taskId: fc.integer({ min: 0, max: 5 }), state: fc.constantFrom(...states), message: fc.constantFrom("", "waiting: a bound"), retry: fc.boolean() });
    fc.assert(
      fc.property(fc.array(change, { maxLength: 40 }), (changes) => {
        const tasks = Array.from({ length: 6 }, (_, id) => Task.fromPartial({ id, state: TaskState.TASK_STATE_PENDING }));
        const tracker = new GraphTracker(Graph.fromPartial({ id: "G", tasks }), 0);
        changes.forEach((each, index) => {
          const event = taskEvent(index + 1, each.taskId, each.state, each.message);
          tracker.apply(each.retry ? ({ ...event, type: EventType.EVENT_TYPE_TASK_RETRY } as Event) : event);
        });
        const count = (state: TaskState) => tracker.tasks.filter((task) => task.state === state).length;
        const tally = tracker.tally();
        assert.deepEqual(
          [tally.pending, tally.running, tally.succeeded, tally.failed, tally.skipped, tally.cancelled],
          states.map(count),
        );
        assert.equal(tracker.waitingCount(), tracker.tasks.filter((task) => task.state === TaskState.TASK_STATE_PENDING && task.waiting !== "").length);
      }),
    );
  });
});

describe("the summary of a large plan", () => {
  const START = TaskAction.TASK_ACTION_START_NODE;
  const SHUT = TaskAction.TASK_ACTION_SHUT_DOWN_NODE;
  const JOIN = TaskAction.TASK_ACTION_DO_NOTHING;
  const GATE = TaskAction.TASK_ACTION_AWAIT_PROMOTION;

  /** A graph of tasks given as [prerequisites, action], numbered from `firstId`; starts are of version 2. */
  function graphOf(tasks: [number[], TaskAction][], firstId = 0): Graph {
    return Graph.fromPartial({
      id: "01JDX4ZQ8M6V1Y2K3N4P5Q6R7S",
      tasks: tasks.map(([prerequisites, action], index) =>
        Task.fromPartial({ id: firstId + index, prerequisites: prerequisites.map((id) => id + firstId), action, version: action === START ? 2 : 0, nodeId: action === SHUT ? `NODE${index}` : "", state: TaskState.TASK_STATE_PENDING }),
      ),
    });
  }

  /**
   * The planner's rolling replacement of `nodes` in `lanes` lanes (the first `surge` of them
   * start first), each lane's first task after `after`, appended to `tasks`; returns the lanes' last tasks.
   */
  function rolling(tasks: [number[], TaskAction][], nodes: number, lanes: number, surge: number, after: number[]): number[] {
    const ends = new Array<number>(lanes).fill(-1);
    for (let i = 0; i < nodes; i++) {
      const lane = i % lanes;
      const first = i < lanes ? after : [ends[lane]!];
      const [a, b] = lane < surge ? [START, SHUT] : [SHUT, START];
      tasks.push([first, a]);
      tasks.push([[tasks.length - 1], b]);
      ends[lane] = tasks.length - 1;
    }
    return ends;
  }

  const summary = (graph: Graph) => planSummaryLines({ color: false }, { ...graph, spec: undefined }, { title: "PLAN", states: false });

  const cases: { name: string; graph: () => Graph; expected: string[] }[] = [
    {
      name: "lanes that repeat their unit a different number of times are one group",
      graph: () => {
        const tasks: [number[], TaskAction][] = [];
        tasks.push([rolling(tasks, 203, 2, 0, []), JOIN]);
        return graphOf(tasks);
      },
      expected: [
        "PLAN: 407 tasks in 2 steps (--full lists every task)",
        "STEP   IDS     AFTER   TASKS",
        "1      0-405   -       2 lanes, each 101-102 × (shut_down_node → start_node v2)",
        "2      406     1       do_nothing (a join)",
      ],
    },
    {
      name: "one lane through a canary's promote gate is told segment by segment",
      graph: () => {
        const tasks: [number[], TaskAction][] = [];
        const [canaryEnd] = rolling(tasks, 2, 1, 0, []);
        tasks.push([[canaryEnd!], GATE]);
        rolling(tasks, 150, 1, 0, [tasks.length - 1]);
        return graphOf(tasks);
      },
      expected: [
        "PLAN: 305 tasks in 1 step (--full lists every task)",
        "STEP   IDS     AFTER   TASKS",
        "1      0-304   -       1 lane: 2 × (shut_down_node → start_node v2) → await_promotion (client graphs promote 01JDX4ZQ8M6V1Y2K3N4P5Q6R7S) → 150 × (shut_down_node → start_node v2)",
      ],
    },
    {
      name: "a scale-down, a join, then lanes: each step after the one before, whatever the tasks' ids",
      graph: () => {
        const tasks: [number[], TaskAction][] = Array.from({ length: 100 }, () => [[], SHUT]);
        tasks.push([Array.from({ length: 100 }, (_, id) => id), JOIN]);
        tasks.push([rolling(tasks, 60, 3, 1, [100]), JOIN]);
        return graphOf(tasks, 1_000);
      },
      expected: [
        "PLAN: 222 tasks in 4 steps (--full lists every task)",
        "STEP   IDS         AFTER   TASKS",
        "1      1000-1099   -       100 × shut_down_node, in parallel",
        "2      1100        1       do_nothing (a join)",
        "3      1101-1220   2       1 lane: 20 × (start_node v2 → shut_down_node)",
        "                           2 lanes, each 20 × (shut_down_node → start_node v2)",
        "4      1221        3       do_nothing (a join)",
      ],
    },
  ];
  for (const { name, graph, expected } of cases) {
    test(name, () => assert.deepEqual(summary(graph()).flatMap((text) => text.split("\n")), expected));
  }

  test("a graph of more steps than fit says how many are left out", () => {
    // A chain of joins, each after the one before and a start of its own, so no two tasks start together.
    const tasks: [number[], TaskAction][] = [[[], START]];
    for (let i = 0; i < 150; i++) tasks.push([[tasks.length - 1], START], [[tasks.length - 1, tasks.length], JOIN]);
    const lines = summary(graphOf(tasks)).flatMap((text) => text.split("\n"));
    assert.equal(lines.length, 2 + 24 + 1, lines.join("\n"));
    // 301 steps of one task each, 24 of them shown.
    assert.equal(lines.at(-1), "… and 277 more lines of 277 tasks");
  });
});
