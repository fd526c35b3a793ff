import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { type Node, NodeState, type PlannedTask, type Spec, TaskAction } from "../src/domain.js";
import { plan } from "../src/planner/plan.js";
import { node, spec } from "./planning.js";
import { estimateDuration, type PlanBounds, planBounds } from "../src/planner/preview.js";

const running = (count: number, version = 1, from = 0): Node[] => Array.from({ length: count }, (_, i) => node(`n${from + i}`, version, "running", from + i));

/**
 * The truth, by enumeration: every reachable moment of the plan (a set of finished tasks closed
 * under prerequisites, and any set of tasks ready at that point in progress), each node's state
 * at that moment, and the fewest available and most alive over all of them. Exponential: for
 * small plans only.
 */
function bruteForceBounds(nodes: readonly Node[], tasks: readonly PlannedTask[]): PlanBounds {
  let minAvailable = Infinity;
  let maxAlive = -Infinity;
  const finished = new Array<boolean>(tasks.length).fill(false);

  const measure = (inProgress: readonly PlannedTask[]) => {
    const states = new Map<string, NodeState>(nodes.map((n) => [n.id, n.state]));
    let added: NodeState[] = [];
    const shutDown = (task: PlannedTask, done: boolean) => {
      const state = states.get(task.nodeId!);
      if (state === undefined || state === "failed" || state === "stopped") return;
      states.set(task.nodeId!, done ? "stopped" : "stopping");
    };
    for (const task of tasks) {
      if (!finished[task.id]) continue;
      if (task.action === "start_node") added.push("running");
      if (task.action === "shut_down_node") shutDown(task, true);
    }
    for (const task of inProgress) {
      if (task.action === "start_node") added.push("starting");
      if (task.action === "shut_down_node") shutDown(task, false);
    }
    const all = [...states.values(), ...added];
    added = [];
    const available = all.filter((state) => state === "running").length;
    const alive = all.filter((state) => state === "starting" || state === "running" || state === "unhealthy" || state === "stopping").length;
    minAvailable = Math.min(minAvailable, available);
    maxAlive = Math.max(maxAlive, alive);
  };

  const everyInProgressSet = () => {
    const ready = tasks.filter((task) => !finished[task.id] && task.prerequisites.every((p) => finished[p]));
    for (let mask = 0; mask < 1 << ready.length; mask++) measure(ready.filter((_, i) => mask & (1 << i)));
  };

  // Every finished set closed under prerequisites: decide task by task, in id order.
  const decide = (index: number) => {
    if (index === tasks.length) return everyInProgressSet();
    decide(index + 1);
    if (tasks[index]!.prerequisites.every((p) => finished[p])) {
      finished[index] = true;
      decide(index + 1);
      finished[index] = false;
    }
  };
  decide(0);
  return { minAvailable, maxAlive };
}

interface BoundsCase {
  name: string;
  nodes: Node[];
  spec: Spec;
  canary?: number;
  expected: PlanBounds;
}

const boundsCases: BoundsCase[] = [
  { name: "a scale-up from empty: nothing available until the starts finish, all of them alive at once", nodes: [], spec: spec(3, 1), expected: { minAvailable: 0, maxAlive: 3 } },
  {
    name: "a scale-down shuts every surplus node down at once: the floor is the new count",
    nodes: running(5),
    spec: spec(2, 1),
    expected: { minAvailable: 2, maxAlive: 5 },
  },
  {
    name: "a rolling update with the defaults (surge 0, unavailable 1) dips by one and never rises",
    nodes: running(3),
    spec: spec(3, 2),
    expected: { minAvailable: 2, maxAlive: 3 },
  },
  {
    name: "a rolling update with surge 1, unavailable 0 never dips and rises by one",
    nodes: running(3),
    spec: spec(3, 2, 1, 0),
    expected: { minAvailable: 3, maxAlive: 4 },
  },
  {
    name: "a rolling update with surge 1, unavailable 1 (the plan's worked example) stays within 4 .. 6",
    nodes: running(5),
    spec: spec(5, 2, 1, 1),
    expected: { minAvailable: 4, maxAlive: 6 },
  },
  {
    name: "a rolling update with surge 2, unavailable 3 on 10 nodes stays within 7 .. 12",
    nodes: running(10),
    spec: spec(10, 2, 2, 3),
    expected: { minAvailable: 7, maxAlive: 12 },
  },
  {
    name: "a scale-up with a version change rolls only after the new nodes run: the floor is the starting size",
    nodes: running(3),
    spec: spec(6, 2, 0, 2),
    expected: { minAvailable: 3, maxAlive: 6 },
  },
  {
    name: "a scale-down with a version change (10 v1 to 4 v2) sinks to 3, from 10 alive",
    nodes: running(10),
    spec: spec(4, 2),
    expected: { minAvailable: 3, maxAlive: 10 },
  },
  {
    name: "a failed node's removal changes neither count; an unhealthy node is alive but not available",
    nodes: [node("a", 1, "running"), node("b", 1, "failed"), node("c", 1, "unhealthy"), node("d", 1, "running")],
    spec: spec(3, 1, 1, 0),
    // Shut b down (failed: it changes nothing), join; then replace c (unhealthy) in a surge lane.
    expected: { minAvailable: 2, maxAlive: 4 },
  },
  {
    name: "a canary of 2 out of 6 with surge 1, unavailable 1 keeps the bounds across the promote gate",
    nodes: running(6),
    spec: spec(6, 2, 1, 1),
    canary: 2,
    expected: { minAvailable: 5, maxAlive: 7 },
  },
  {
    name: "a canary on a scale-up starts the canaries first, then the rest after the gate",
    nodes: running(2),
    spec: spec(5, 2, 0, 1),
    canary: 1,
    // The replacements wait for every fresh node, so the floor is the nodes there at first.
    expected: { minAvailable: 2, maxAlive: 5 },
  },
];

describe("planBounds on the planner's plans", () => {
  for (const c of boundsCases) {
    it(c.name, () => {
      const { tasks } = plan(c.nodes, c.spec, { canary: c.canary });
      assert.deepEqual(planBounds(c.nodes, tasks, c.spec), c.expected);
      assert.deepEqual(bruteForceBounds(c.nodes, tasks), c.expected, "the enumeration agrees");
    });
  }

  it("counts an empty plan as the nodes as they are", () => {
    const nodes = [node("a", 1, "running"), node("b", 1, "starting"), node("c", 1, "stopping"), node("d", 1, "stopped")];
    assert.deepEqual(planBounds(nodes, [], spec(2, 1)), { minAvailable: 1, maxAlive: 3 });
  });

  it("agrees with the enumeration on the planner's plans for small random groups", () => {
    const states = Object.values(NodeState);
    const groupArb = fc.uniqueArray(
      fc.record({ id: fc.constantFrom("a", "b", "c", "d", "e"), version: fc.integer({ min: 1, max: 2 }), state: fc.constantFrom(...states), createdAt: fc.nat(9) }),
      { maxLength: 4, selector: (n) => n.id },
    );
    const specArb = fc
      .record({ count: fc.integer({ min: 0, max: 4 }), version: fc.integer({ min: 1, max: 2 }), maxSurge: fc.integer({ min: 0, max: 2 }), maxUnavailable: fc.integer({ min: 0, max: 2 }) })
      .filter((s) => s.maxSurge + s.maxUnavailable > 0);
    fc.assert(
      fc.property(groupArb, specArb, fc.integer({ min: 0, max: 3 }), (group, s, canary) => {
        const nodes = group.map((n) => node(n.id, n.version, n.state, n.createdAt));
        const { tasks } = plan(nodes, s, { canary });
        fc.pre(tasks.length <= 14);
        assert.deepEqual(planBounds(nodes, tasks, s), bruteForceBounds(nodes, tasks));
      }),
      { numRuns: 300 },
    );
  });
});

/** A random plan: up to `maxTasks` tasks, each with random earlier prerequisites, shutting down distinct nodes. */
const randomPlanArb = (maxTasks: number) =>
  fc
    .record({
      nodeStates: fc.array(fc.constantFrom(...Object.values(NodeState)), { maxLength: 6 }),
      tasks: fc.array(
        fc.record({
          action: fc.constantFrom<TaskAction>("start_node", "shut_down_node", "shut_down_node", "do_nothing", "await_promotion"),
          prerequisiteBits: fc.nat(),
          target: fc.nat(7),
        }),
        { maxLength: maxTasks },
      ),
    })
    .map(({ nodeStates, tasks }) => {
      const nodes = nodeStates.map((state, i) => node(`n${i}`, 1, state));
      const targeted = new Set<number>();
      const planned: PlannedTask[] = tasks.map((t, id) => {
        const prerequisites = Array.from({ length: id }, (_, p) => p).filter((p) => t.prerequisiteBits & (1 << p));
        // Each node at most once (plans never shut one down twice); a target beyond the nodes is unknown.
        if (t.action === "shut_down_node" && !targeted.has(t.target)) {
          targeted.add(t.target);
          return { id, prerequisites, action: t.action, nodeId: `n${t.target}` };
        }
        if (t.action === "shut_down_node") return { id, prerequisites, action: "do_nothing" };
        return t.action === "start_node" ? { id, prerequisites, action: t.action, version: 1 } : { id, prerequisites, action: t.action };
      });
      return { nodes, tasks: planned };
    });

describe("planBounds on any DAG", () => {
  it("equals the fewest available and most alive over every reachable state, on small random DAGs", () => {
    fc.assert(
      fc.property(randomPlanArb(9), ({ nodes, tasks }) => {
        assert.deepEqual(planBounds(nodes, tasks, spec(0, 1)), bruteForceBounds(nodes, tasks));
      }),
      { numRuns: 500 },
    );
  });

  it("needs an augmenting path where a greedy choice would be wrong", () => {
    // Shutdown 3 can be paid for by start 0 or start 1, shutdown 2 only by start 0: a greedy
    // match of 3 to 0 leaves 2 unpaid, and the true floor (1 of 3) is higher than that.
    const nodes = running(3);
    const tasks: PlannedTask[] = [
      { id: 0, prerequisites: [], action: "start_node", version: 2 },
      { id: 1, prerequisites: [], action: "start_node", version: 2 },
      { id: 2, prerequisites: [0], action: "shut_down_node", nodeId: "n0" },
      { id: 3, prerequisites: [0, 1], action: "shut_down_node", nodeId: "n1" },
    ];
    const bounds = planBounds(nodes, tasks, spec(3, 2));
    assert.deepEqual(bounds, bruteForceBounds(nodes, tasks));
    assert.deepEqual(bounds, { minAvailable: 3, maxAlive: 5 });
  });

  it("refuses tasks out of id order, or a prerequisite that is not earlier", () => {
    assert.throws(() => planBounds([], [{ id: 1, prerequisites: [], action: "do_nothing" }], spec(0, 1)), /task 1 is at position 0/);
    assert.throws(
      () => planBounds([], [{ id: 0, prerequisites: [0], action: "do_nothing" }], spec(0, 1)),
      /task 0 has prerequisite 0: a prerequisite must be an earlier task/,
    );
  });
});

describe("estimateDuration", () => {
  const p50 = { startMs: 1000, stopMs: 400 };
  const cases: { name: string; nodes: Node[]; spec: Spec; p50: { startMs?: number; stopMs?: number }; parallelism: number; expected: number | undefined }[] = [
    { name: "an empty plan takes no time", nodes: running(3), spec: spec(3, 1), p50, parallelism: 4, expected: 0 },
    { name: "a scale-up of 3 with room for all runs the starts side by side", nodes: [], spec: spec(3, 1), p50, parallelism: 4, expected: 1000 },
    { name: "a scale-up of 8 on 4 slots takes two rounds of starts", nodes: [], spec: spec(8, 1), p50, parallelism: 4, expected: 2000 },
    { name: "a scale-up of 5 on 2 slots: the work over the slots, 2500 ms, beats the longest path", nodes: [], spec: spec(5, 1), p50, parallelism: 2, expected: 2500 },
    { name: "the default rolling update of 3 is one chain: 3 × (stop + start)", nodes: running(3), spec: spec(3, 2), p50, parallelism: 4, expected: 4200 },
    { name: "a scale-down needs no start history", nodes: running(4), spec: spec(1, 1), p50: { stopMs: 400 }, parallelism: 8, expected: 400 },
    { name: "a scale-up needs no stop history", nodes: [], spec: spec(2, 1), p50: { startMs: 1000 }, parallelism: 8, expected: 1000 },
    { name: "without start history a plan that starts nodes has no estimate", nodes: running(3), spec: spec(3, 2), p50: { stopMs: 400 }, parallelism: 4, expected: undefined },
    { name: "without stop history a plan that shuts nodes down has no estimate", nodes: running(3), spec: spec(3, 2), p50: { startMs: 1000 }, parallelism: 4, expected: undefined },
    { name: "fractions round up to the next millisecond", nodes: [], spec: spec(2, 1), p50: { startMs: 0.2 }, parallelism: 8, expected: 1 },
  ];
  for (const c of cases) {
    it(c.name, () => {
      assert.equal(estimateDuration(plan(c.nodes, c.spec).tasks, c.p50, c.parallelism), c.expected);
    });
  }

  it("weighs the longest path through joins, and the promote gate as nothing", () => {
    const tasks: PlannedTask[] = [
      { id: 0, prerequisites: [], action: "start_node", version: 2 },
      { id: 1, prerequisites: [], action: "shut_down_node", nodeId: "a" },
      { id: 2, prerequisites: [0, 1], action: "await_promotion" },
      { id: 3, prerequisites: [2], action: "shut_down_node", nodeId: "b" },
      { id: 4, prerequisites: [3], action: "start_node", version: 2 },
      { id: 5, prerequisites: [2], action: "start_node", version: 2 },
      { id: 6, prerequisites: [4, 5], action: "do_nothing" },
    ];
    assert.equal(estimateDuration(tasks, p50, 10), 1000 + 400 + 1000);
    assert.equal(estimateDuration(tasks, p50, 1), 3 * 1000 + 2 * 400, "one slot: every task in turn");
  });

  it("refuses a parallelism below 1", () => {
    assert.throws(() => estimateDuration([], p50, 0), /parallelism 0 is invalid/);
  });
});
