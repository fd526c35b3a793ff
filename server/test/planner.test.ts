import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { NodeState, type Node, type PlannedTask, type Spec, type TaskGraphSpec } from "../src/domain.js";
import { plan } from "../src/planner/plan.js";
import { node, spec } from "./planning.js";

interface Case {
  name: string;
  nodes: Node[];
  spec: Spec;
  tasks: PlannedTask[];
}

const cases: Case[] = [
  {
    name: "A group scaled up from empty starts every node in parallel, then joins.",
    nodes: [],
    spec: spec(3, 1),
    tasks: [
      { id: 0, prerequisites: [], action: "start_node", version: 1 },
      { id: 1, prerequisites: [], action: "start_node", version: 1 },
      { id: 2, prerequisites: [], action: "start_node", version: 1 },
      { id: 3, prerequisites: [0, 1, 2], action: "do_nothing" },
    ],
  },
  {
    name: "A scale-down shuts down failed nodes, then outdated ones, then the newest good ones, then joins.",
    nodes: [
      node("a", 2, "running", 9),
      node("b", 2, "running", 2),
      node("c", 2, "running", 3),
      node("d", 2, "running", 3),
      node("e", 1, "running", 0),
      node("f", 2, "failed", 5),
    ],
    spec: spec(2, 2),
    tasks: [
      { id: 0, prerequisites: [], action: "shut_down_node", nodeId: "f" },
      { id: 1, prerequisites: [], action: "shut_down_node", nodeId: "e" },
      { id: 2, prerequisites: [], action: "shut_down_node", nodeId: "a" },
      { id: 3, prerequisites: [], action: "shut_down_node", nodeId: "d" },
      { id: 4, prerequisites: [0, 1, 2, 3], action: "do_nothing" },
    ],
  },
  {
    name: "A version change with the default strategy is one chain: shut down one, start one.",
    nodes: [node("a", 1, "running", 1), node("b", 1, "running", 2), node("c", 1, "running", 3)],
    spec: spec(3, 2),
    tasks: [
      { id: 0, prerequisites: [], action: "shut_down_node", nodeId: "a" },
      { id: 1, prerequisites: [0], action: "start_node", version: 2 },
      { id: 2, prerequisites: [1], action: "shut_down_node", nodeId: "b" },
      { id: 3, prerequisites: [2], action: "start_node", version: 2 },
      { id: 4, prerequisites: [3], action: "shut_down_node", nodeId: "c" },
      { id: 5, prerequisites: [4], action: "start_node", version: 2 },
    ],
  },
  {
    name: "A version change with surge 1 and unavailable 0 starts each new node before shutting down an old one.",
    nodes: [node("a", 1, "running", 1), node("b", 1, "running", 2), node("c", 1, "running", 3)],
    spec: spec(3, 2, 1, 0),
    tasks: [
      { id: 0, prerequisites: [], action: "start_node", version: 2 },
      { id: 1, prerequisites: [0], action: "shut_down_node", nodeId: "a" },
      { id: 2, prerequisites: [1], action: "start_node", version: 2 },
      { id: 3, prerequisites: [2], action: "shut_down_node", nodeId: "b" },
      { id: 4, prerequisites: [3], action: "start_node", version: 2 },
      { id: 5, prerequisites: [4], action: "shut_down_node", nodeId: "c" },
    ],
  },
  {
    name: "Percents resolve against count as Kubernetes does: 25% of 3 surges ⌈0.75⌉ = 1 and leaves ⌊0.75⌋ = 0 unavailable, like surge 1, unavailable 0.",
    nodes: [node("a", 1, "running", 1), node("b", 1, "running", 2), node("c", 1, "running", 3)],
    spec: { ...spec(3, 2), maxSurge: "25%", maxUnavailable: "25%" },
    tasks: [
      { id: 0, prerequisites: [], action: "start_node", version: 2 },
      { id: 1, prerequisites: [0], action: "shut_down_node", nodeId: "a" },
      { id: 2, prerequisites: [1], action: "start_node", version: 2 },
      { id: 3, prerequisites: [2], action: "shut_down_node", nodeId: "b" },
      { id: 4, prerequisites: [3], action: "start_node", version: 2 },
      { id: 5, prerequisites: [4], action: "shut_down_node", nodeId: "c" },
    ],
  },
  {
    name: "Percents that both round to 0 (0% surge, 25% of 3 unavailable) leave 1 unavailable, like the default strategy.",
    nodes: [node("a", 1, "running", 1), node("b", 1, "running", 2), node("c", 1, "running", 3)],
    spec: { ...spec(3, 2), maxSurge: "0%", maxUnavailable: "25%" },
    tasks: [
      { id: 0, prerequisites: [], action: "shut_down_node", nodeId: "a" },
      { id: 1, prerequisites: [0], action: "start_node", version: 2 },
      { id: 2, prerequisites: [1], action: "shut_down_node", nodeId: "b" },
      { id: 3, prerequisites: [2], action: "start_node", version: 2 },
      { id: 4, prerequisites: [3], action: "shut_down_node", nodeId: "c" },
      { id: 5, prerequisites: [4], action: "start_node", version: 2 },
    ],
  },
  {
    name: "A version change with surge 2 and unavailable 1 rolls in two surge lanes and one unavailability lane, then joins.",
    nodes: [
      node("d", 1, "running", 4),
      node("c", 1, "running", 3),
      node("b", 1, "running", 2),
      node("a", 1, "running", 1),
    ],
    spec: spec(4, 2, 2, 1),
    tasks: [
      { id: 0, prerequisites: [], action: "start_node", version: 2 },
      { id: 1, prerequisites: [0], action: "shut_down_node", nodeId: "a" },
      { id: 2, prerequisites: [], action: "start_node", version: 2 },
      { id: 3, prerequisites: [2], action: "shut_down_node", nodeId: "b" },
      { id: 4, prerequisites: [], action: "shut_down_node", nodeId: "c" },
      { id: 5, prerequisites: [4], action: "start_node", version: 2 },
      { id: 6, prerequisites: [1], action: "start_node", version: 2 },
      { id: 7, prerequisites: [6], action: "shut_down_node", nodeId: "d" },
      { id: 8, prerequisites: [7, 3, 5], action: "do_nothing" },
    ],
  },
  {
    name: "A scale-up with a version change starts the missing nodes, joins, then rolls the outdated ones.",
    nodes: [node("a", 1, "running", 1), node("b", 1, "running", 2), node("c", 2, "running", 3)],
    spec: spec(4, 2, 1, 1),
    tasks: [
      { id: 0, prerequisites: [], action: "start_node", version: 2 },
      { id: 1, prerequisites: [0], action: "do_nothing" },
      { id: 2, prerequisites: [1], action: "start_node", version: 2 },
      { id: 3, prerequisites: [2], action: "shut_down_node", nodeId: "a" },
      { id: 4, prerequisites: [1], action: "shut_down_node", nodeId: "b" },
      { id: 5, prerequisites: [4], action: "start_node", version: 2 },
      { id: 6, prerequisites: [3, 5], action: "do_nothing" },
    ],
  },
  {
    name: "A scale-down with a version change (10 v1 to 4 v2) shuts down the 6 newest, joins, then replaces the 4 oldest.",
    nodes: Array.from({ length: 10 }, (_, i) => node(`n${i}`, 1, "running", i)),
    spec: spec(4, 2),
    tasks: [
      { id: 0, prerequisites: [], action: "shut_down_node", nodeId: "n9" },
      { id: 1, prerequisites: [], action: "shut_down_node", nodeId: "n8" },
      { id: 2, prerequisites: [], action: "shut_down_node", nodeId: "n7" },
      { id: 3, prerequisites: [], action: "shut_down_node", nodeId: "n6" },
      { id: 4, prerequisites: [], action: "shut_down_node", nodeId: "n5" },
      { id: 5, prerequisites: [], action: "shut_down_node", nodeId: "n4" },
      { id: 6, prerequisites: [0, 1, 2, 3, 4, 5], action: "do_nothing" },
      { id: 7, prerequisites: [6], action: "shut_down_node", nodeId: "n0" },
      { id: 8, prerequisites: [7], action: "start_node", version: 2 },
      { id: 9, prerequisites: [8], action: "shut_down_node", nodeId: "n1" },
      { id: 10, prerequisites: [9], action: "start_node", version: 2 },
      { id: 11, prerequisites: [10], action: "shut_down_node", nodeId: "n2" },
      { id: 12, prerequisites: [11], action: "start_node", version: 2 },
      { id: 13, prerequisites: [12], action: "shut_down_node", nodeId: "n3" },
      { id: 14, prerequisites: [13], action: "start_node", version: 2 },
    ],
  },
  {
    name: "Surplus outdated nodes go starting ones first, then the lowest version, then the newest.",
    nodes: [
      node("a", 1, "running", 1),
      node("b", 3, "running", 2),
      node("c", 1, "starting", 3),
      node("d", 1, "running", 4),
    ],
    spec: spec(1, 2),
    tasks: [
      { id: 0, prerequisites: [], action: "shut_down_node", nodeId: "c" },
      { id: 1, prerequisites: [], action: "shut_down_node", nodeId: "d" },
      { id: 2, prerequisites: [], action: "shut_down_node", nodeId: "a" },
      { id: 3, prerequisites: [0, 1, 2], action: "do_nothing" },
      { id: 4, prerequisites: [3], action: "shut_down_node", nodeId: "b" },
      { id: 5, prerequisites: [4], action: "start_node", version: 2 },
    ],
  },
  {
    name: "A group that already matches its spec gets an empty plan.",
    nodes: [node("a", 2, "running", 1), node("b", 2, "running", 2), node("c", 2, "running", 3)],
    spec: spec(3, 2),
    tasks: [],
  },
  {
    name: "Count 0 on an empty group gets an empty plan.",
    nodes: [],
    spec: spec(0, 1),
    tasks: [],
  },
  {
    name: "Count 0 on a group of 3 shuts down all three, newest first, then joins.",
    nodes: [node("a", 1, "running", 1), node("b", 1, "running", 2), node("c", 1, "running", 3)],
    spec: spec(0, 1),
    tasks: [
      { id: 0, prerequisites: [], action: "shut_down_node", nodeId: "c" },
      { id: 1, prerequisites: [], action: "shut_down_node", nodeId: "b" },
      { id: 2, prerequisites: [], action: "shut_down_node", nodeId: "a" },
      { id: 3, prerequisites: [0, 1, 2], action: "do_nothing" },
    ],
  },
  {
    name: "A starting node counts as running at its version.",
    nodes: [node("a", 1, "running", 1), node("b", 2, "starting", 2)],
    spec: spec(2, 2),
    tasks: [
      { id: 0, prerequisites: [], action: "shut_down_node", nodeId: "a" },
      { id: 1, prerequisites: [0], action: "start_node", version: 2 },
    ],
  },
  {
    name: "Among surplus good nodes, a starting one goes before a running one, even if it is older.",
    nodes: [node("a", 2, "running", 1), node("b", 2, "starting", 0)],
    spec: spec(1, 2),
    tasks: [
      { id: 0, prerequisites: [], action: "shut_down_node", nodeId: "b" },
      { id: 1, prerequisites: [0], action: "do_nothing" },
    ],
  },
  {
    name: "Stopping and stopped nodes count as gone and get no tasks.",
    nodes: [node("a", 1, "stopping", 1), node("b", 1, "stopped", 2), node("c", 2, "running", 3)],
    spec: spec(2, 2),
    tasks: [
      { id: 0, prerequisites: [], action: "start_node", version: 2 },
      { id: 1, prerequisites: [0], action: "do_nothing" },
    ],
  },
  {
    name: "A failed node is shut down and replaced by one more start.",
    nodes: [node("a", 2, "running", 1), node("b", 2, "failed", 2)],
    spec: spec(2, 2),
    tasks: [
      { id: 0, prerequisites: [], action: "shut_down_node", nodeId: "b" },
      { id: 1, prerequisites: [], action: "start_node", version: 2 },
      { id: 2, prerequisites: [0, 1], action: "do_nothing" },
    ],
  },
  {
    name: "A failed node's cleanup and replacement finish before a version change rolls.",
    nodes: [node("a", 1, "running", 1), node("b", 1, "failed", 2)],
    spec: spec(2, 2),
    tasks: [
      { id: 0, prerequisites: [], action: "shut_down_node", nodeId: "b" },
      { id: 1, prerequisites: [], action: "start_node", version: 2 },
      { id: 2, prerequisites: [0, 1], action: "do_nothing" },
      { id: 3, prerequisites: [2], action: "shut_down_node", nodeId: "a" },
      { id: 4, prerequisites: [3], action: "start_node", version: 2 },
    ],
  },
  {
    name: "An unhealthy node at the target version is replaced like an outdated one, first and within the bounds.",
    nodes: [node("a", 2, "running", 1), node("b", 2, "running", 2), node("c", 2, "unhealthy", 3)],
    spec: spec(3, 2, 1, 0),
    tasks: [
      { id: 0, prerequisites: [], action: "start_node", version: 2 },
      { id: 1, prerequisites: [0], action: "shut_down_node", nodeId: "c" },
    ],
  },
  {
    name: "On a scale-down unhealthy nodes go first.",
    nodes: [node("a", 2, "running", 1), node("b", 2, "unhealthy", 0), node("c", 2, "running", 3)],
    spec: spec(2, 2),
    tasks: [
      { id: 0, prerequisites: [], action: "shut_down_node", nodeId: "b" },
      { id: 1, prerequisites: [0], action: "do_nothing" },
    ],
  },
];

/** The plan's shape without the gate marks, which the tests below check on their own. */
const ungated = (graph: TaskGraphSpec): TaskGraphSpec => ({ tasks: graph.tasks.map(({ gated: _, ...task }) => task) });

describe("plan, on worked examples", () => {
  for (const c of cases) {
    it(c.name, () => {
      assert.deepStrictEqual(ungated(plan(c.nodes, c.spec)), { tasks: c.tasks });
    });
  }

  it("gates a rolling replacement's shut-downs and its surge lanes' starts, and nothing of a scale-up or scale-down", () => {
    const three = [node("a", 1, "running", 1), node("b", 1, "running", 2), node("c", 1, "running", 3)];
    const gatedIds = (graph: TaskGraphSpec) => graph.tasks.filter((task) => task.gated).map((task) => task.id);
    // Default strategy: shut a#0 → start#1 → shut b#2 → start#3 → shut c#4 → start#5.
    assert.deepStrictEqual(gatedIds(plan(three, spec(3, 2))), [0, 2, 4]);
    // Surge 1, unavailable 0: start#0 → shut a#1 → start#2 → shut b#3 → start#4 → shut c#5.
    assert.deepStrictEqual(gatedIds(plan(three, spec(3, 2, 1, 0))), [0, 1, 2, 3, 4, 5]);
    assert.deepStrictEqual(gatedIds(plan(three, spec(5, 1))), []);
    assert.deepStrictEqual(gatedIds(plan(three, spec(1, 1))), []);
    // A node recorded with another template's hash is outdated like one at another version.
    const hashed = three.map((n, i) => ({ ...n, templateHash: i === 0 ? "old" : "new" }));
    assert.deepStrictEqual(ungated(plan(hashed, { ...spec(3, 1), templateHash: "new" })).tasks.map((task) => task.action), ["shut_down_node", "start_node"]);
  });

  it("puts a canary's new nodes before a promote gate and every other change after it", () => {
    const ten = Array.from({ length: 10 }, (_, i) => node(`n${i}`, 1, "running", i));
    const { tasks } = plan(ten, spec(10, 2), { canary: 2 });
    const gate = tasks.find((task) => task.action === "await_promotion")!;
    assert.ok(gate, "a promote gate");
    // Before the gate: shut n0 → start → shut n1 → start (one lane); the gate after both.
    const before = tasks.filter((task) => task.id < gate.id);
    assert.deepStrictEqual(before.map((task) => task.action), ["shut_down_node", "start_node", "shut_down_node", "start_node"]);
    assert.deepStrictEqual(gate.prerequisites, [3]);
    // After it, the other eight replacements, the first waiting for the gate.
    const after = tasks.filter((task) => task.id > gate.id);
    assert.equal(after.filter((task) => task.action === "start_node").length, 8);
    assert.deepStrictEqual(after[0]!.prerequisites, [gate.id]);
    // A canary as large as the change needs no gate; a scale-up's canary is its first new nodes.
    assert.ok(!plan(ten, spec(10, 2), { canary: 10 }).tasks.some((task) => task.action === "await_promotion"));
    const up = plan([], spec(4, 1), { canary: 1 }).tasks;
    assert.deepStrictEqual(up.map((task) => [task.action, task.prerequisites]), [
      ["start_node", []],
      ["await_promotion", [0]],
      ["start_node", [1]],
      ["start_node", [1]],
      ["start_node", [1]],
      ["do_nothing", [2, 3, 4]],
    ]);
  });
});

// ---------------------------------------------------------------------------------------
// Properties.

const isLive = (state: NodeState) => state === "starting" || state === "running" || state === "unhealthy";

/**
 * The spec's bounds in nodes, worked out here from Kubernetes' rule rather than with the
 * planner's function: a surge percent rounds up, an unavailability percent down, and when
 * both come to 0 max unavailable is 1.
 */
function boundsInNodes(s: Spec): { maxSurge: number; maxUnavailable: number } {
  const inNodes = (bound: Spec["maxSurge"], round: (x: number) => number) =>
    typeof bound === "number" ? bound : round((s.count * Number(bound.replace("%", ""))) / 100);
  const maxSurge = inNodes(s.maxSurge, Math.ceil);
  const maxUnavailable = inNodes(s.maxUnavailable, Math.floor);
  return { maxSurge, maxUnavailable: maxSurge === 0 && maxUnavailable === 0 ? 1 : maxUnavailable };
}

/** What the spec says about a group, worked out independently of the planner. */
function expectations(nodes: readonly Node[], s: Spec) {
  let initialLive = 0;
  let good = 0;
  let outdated = 0;
  let failed = 0;
  for (const n of nodes) {
    if (n.state === "failed") failed++;
    if (!isLive(n.state)) continue;
    initialLive++;
    if (n.version === s.version && n.state !== "unhealthy") good++;
    else outdated++;
  }
  const toReplace = good >= s.count ? 0 : Math.min(outdated, s.count - good);
  const { maxSurge, maxUnavailable } = boundsInNodes(s);
  const lanes = Math.min(toReplace, maxSurge + maxUnavailable);
  const surgeLanes = Math.min(maxSurge, lanes);
  return {
    initialLive,
    starts: Math.max(0, s.count - good),
    shutDowns: failed + outdated + Math.max(0, good - s.count),
    surgeLanes,
    unavailabilityLanes: lanes - surgeLanes,
  };
}

/** A small seeded PRNG, so a failing schedule shrinks and replays exactly. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Mode = "random" | "eager" | "serial";
interface Schedule {
  seed: number;
  /** eager: begin every ready task before finishing any; serial: one task in flight. */
  mode: Mode;
}

interface Run {
  /** The number of live nodes, initially and after every change. */
  live: number[];
  /** The versions of the live nodes at the end. */
  finalVersions: number[];
}

/**
 * Runs a graph against a model of the group. Every task is a begin event and a finish
 * event; the schedule picks among all possible events, so any number of ready tasks can
 * be in flight at once and finish in any order. A new node counts as live when its start
 * finishes; a node being shut down stops counting when its shutdown begins.
 */
function simulate(nodes: readonly Node[], graph: TaskGraphSpec, schedule: Schedule): Run {
  const random = mulberry32(schedule.seed);
  const pick = <T>(xs: T[]): T => {
    const i = Math.floor(random() * xs.length);
    const x = xs[i];
    xs[i] = xs[xs.length - 1];
    xs.pop();
    return x;
  };

  const initial = new Map(nodes.map((n) => [n.id, n]));
  const liveVersion = new Map<string, number>();
  for (const n of nodes) if (isLive(n.state)) liveVersion.set(n.id, n.version);
  const shutDown = new Set<string>();
  const live = [liveVersion.size];

  const tasks = graph.tasks;
  const waitingOn = tasks.map((t) => t.prerequisites.length);
  const dependents: number[][] = tasks.map(() => []);
  for (const t of tasks) for (const p of t.prerequisites) dependents[p].push(t.id);
  const ready = tasks.filter((t) => t.prerequisites.length === 0).map((t) => t.id);
  const inFlight: number[] = [];
  let finished = 0;

  const begin = (id: number) => {
    const t = tasks[id];
    if (t.action === "shut_down_node") {
      const nodeId = t.nodeId!;
      const target = initial.get(nodeId);
      assert.ok(target, `task ${id} shuts down ${nodeId}, which is not in the group`);
      assert.ok(!shutDown.has(nodeId), `task ${id} shuts down ${nodeId} a second time`);
      assert.ok(
        isLive(target.state) || target.state === "failed",
        `task ${id} shuts down ${nodeId}, which is ${target.state}`,
      );
      shutDown.add(nodeId);
      if (liveVersion.delete(nodeId)) live.push(liveVersion.size);
    }
    inFlight.push(id);
  };
  const finish = (id: number) => {
    const t = tasks[id];
    if (t.action === "start_node") {
      liveVersion.set(`new-${id}`, t.version!);
      live.push(liveVersion.size);
    }
    finished++;
    for (const d of dependents[id]) if (--waitingOn[d] === 0) ready.push(d);
  };

  while (ready.length > 0 || inFlight.length > 0) {
    let beginNext: boolean;
    if (ready.length === 0) beginNext = false;
    else if (inFlight.length === 0) beginNext = true;
    else if (schedule.mode === "eager") beginNext = true;
    else if (schedule.mode === "serial") beginNext = false;
    else beginNext = random() * (ready.length + inFlight.length) < ready.length;
    if (beginNext) begin(pick(ready));
    else finish(pick(inFlight));
  }
  assert.equal(finished, tasks.length, "some tasks never became ready");
  return { live, finalVersions: [...liveVersion.values()] };
}

const nodesArb: fc.Arbitrary<Node[]> = fc.uniqueArray(
  fc.record({
    id: fc.string({ minLength: 1, maxLength: 3 }),
    version: fc.integer({ min: 1, max: 4 }),
    state: fc.constantFrom(...Object.values(NodeState)),
    createdAt: fc.integer({ min: 0, max: 20 }),
  }),
  { maxLength: 40, selector: (n) => n.id },
).map((rs) => rs.map((r) => node(r.id, r.version, r.state, r.createdAt)));

/** A bound in nodes, or as a percent of count (one in three). */
const boundArb: fc.Arbitrary<Spec["maxSurge"]> = fc.oneof(
  { weight: 2, arbitrary: fc.integer({ min: 0, max: 5 }) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 100 }).map((percent): `${number}%` => `${percent}%`) },
);
const isZero = (bound: Spec["maxSurge"]) => bound === 0 || bound === "0%";

const specArb: fc.Arbitrary<Spec> = fc
  .record({
    count: fc.integer({ min: 0, max: 30 }),
    version: fc.integer({ min: 1, max: 4 }),
    maxSurge: boundArb,
    maxUnavailable: boundArb,
  })
  .filter((s) => !(isZero(s.maxSurge) && isZero(s.maxUnavailable)));

const scheduleArb: fc.Arbitrary<Schedule> = fc.record({
  seed: fc.integer(),
  mode: fc.constantFrom<Mode>("random", "eager", "serial"),
});

const numRuns = 300;

describe("plan, on any group and spec", () => {
  it("numbers tasks 0..n-1 in order, with distinct prerequisites that all come earlier, and the right fields per action", () => {
    fc.assert(
      fc.property(nodesArb, specArb, (nodes, s) => {
        const { tasks } = plan(nodes, s);
        tasks.forEach((t, i) => {
          assert.equal(t.id, i);
          assert.equal(new Set(t.prerequisites).size, t.prerequisites.length);
          for (const p of t.prerequisites) assert.ok(Number.isInteger(p) && p >= 0 && p < t.id);
          const fields = Object.keys(t).filter((key) => key !== "gated").sort();
          if (t.action === "start_node") {
            assert.deepStrictEqual(fields, ["action", "id", "prerequisites", "version"]);
            assert.equal(t.version, s.version);
          } else if (t.action === "shut_down_node") {
            assert.deepStrictEqual(fields, ["action", "id", "nodeId", "prerequisites"]);
          } else {
            assert.deepStrictEqual(fields, ["action", "id", "prerequisites"]);
          }
        });
      }),
      { numRuns },
    );
  });

  it("does only the work the spec needs: one start per missing good node, one shutdown per failed, outdated or surplus node", () => {
    fc.assert(
      fc.property(nodesArb, specArb, (nodes, s) => {
        const { tasks } = plan(nodes, s);
        const want = expectations(nodes, s);
        assert.equal(tasks.filter((t) => t.action === "start_node").length, want.starts);
        assert.equal(tasks.filter((t) => t.action === "shut_down_node").length, want.shutDowns);
      }),
      { numRuns },
    );
  });

  it("ends every non-empty plan in its last task, the only one nothing depends on", () => {
    fc.assert(
      fc.property(nodesArb, specArb, (nodes, s) => {
        const { tasks } = plan(nodes, s);
        const hasDependents = new Array<boolean>(tasks.length).fill(false);
        for (const t of tasks) for (const p of t.prerequisites) hasDependents[p] = true;
        const sinks = tasks.filter((t) => !hasDependents[t.id]).map((t) => t.id);
        assert.deepStrictEqual(sinks, tasks.length === 0 ? [] : [tasks.length - 1]);
      }),
      { numRuns },
    );
  });

  it("plans the same graph whatever order the nodes are given in, and leaves them untouched", () => {
    fc.assert(
      fc.property(nodesArb, specArb, fc.integer(), (nodes, s, seed) => {
        const before = structuredClone(nodes);
        const expected = plan(nodes, s);
        assert.deepStrictEqual(nodes, before);
        const random = mulberry32(seed);
        const shuffled = [...nodes];
        for (let i = shuffled.length - 1; i > 0; i--) {
          const j = Math.floor(random() * (i + 1));
          [shuffled[i], shuffled[j]] = [shuffled[j], shuffled[i]];
        }
        assert.deepStrictEqual(plan(shuffled, s), expected);
      }),
      { numRuns },
    );
  });

  it("ends, under any interleaving of tasks, with exactly count live nodes, all at the spec's version", () => {
    fc.assert(
      fc.property(nodesArb, specArb, fc.array(scheduleArb, { minLength: 1, maxLength: 3 }), (nodes, s, schedules) => {
        const graph = plan(nodes, s);
        for (const schedule of schedules) {
          const run = simulate(nodes, graph, schedule);
          assert.equal(run.finalVersions.length, s.count);
          for (const v of run.finalVersions) assert.equal(v, s.version);
        }
      }),
      { numRuns },
    );
  });

  /*
   * The exact guarantee. With S surge lanes and U unavailability lanes (S ≤ maxSurge,
   * U ≤ maxUnavailable, both 0 when nothing is replaced), call [count − U, count + S]
   * the band. Phase A only adds (a scale-up, ending at count) or only removes (a
   * scale-down, ending at count), so the live count moves monotonically from where it
   * started towards the band, and once inside never leaves it: phase A goes on to count,
   * and the rolling lanes each add or take away at most one node. No exception is needed
   * for scale-downs: they stop at count, which is inside the band.
   *
   * From that follow the spec-level bounds: never above max(initial live,
   * count + maxSurge); once at count or more, never below count − maxUnavailable.
   */
  it("keeps the live count moving monotonically into the band [count − unavailability lanes, count + surge lanes] and never leaving it", () => {
    fc.assert(
      fc.property(nodesArb, specArb, fc.array(scheduleArb, { minLength: 1, maxLength: 3 }), (nodes, s, schedules) => {
        const graph = plan(nodes, s);
        const want = expectations(nodes, s);
        const low = s.count - want.unavailabilityLanes;
        const high = s.count + want.surgeLanes;
        const { maxSurge, maxUnavailable } = boundsInNodes(s);
        assert.ok(want.surgeLanes <= maxSurge && want.unavailabilityLanes <= maxUnavailable);
        for (const schedule of schedules) {
          const { live } = simulate(nodes, graph, schedule);
          assert.equal(live[0], want.initialLive);
          let inBand = false;
          let reachedCount = false;
          for (let i = 0; i < live.length; i++) {
            const n = live[i];
            const at = `live ${live.join(",")} at step ${i} (band ${low}..${high})`;
            if (inBand) {
              assert.ok(n >= low && n <= high, `left the band: ${at}`);
            } else if (n >= low && n <= high) {
              inBand = true;
            } else if (i > 0) {
              // Outside the band: only ever moving towards it.
              if (live[0] < low) assert.ok(n >= live[i - 1], `fell back below the band: ${at}`);
              else assert.ok(n <= live[i - 1], `grew back above the band: ${at}`);
            }
            // The spec-level bounds, as the user states them.
            assert.ok(n <= Math.max(want.initialLive, s.count + maxSurge), `over the surge: ${at}`);
            if (reachedCount) assert.ok(n >= s.count - maxUnavailable, `under the availability: ${at}`);
            if (n >= s.count) reachedCount = true;
          }
          assert.equal(live[live.length - 1], s.count);
        }
      }),
      { numRuns },
    );
  });

  it("plans 100,000 nodes v1 to v2 with surge 100 and unavailable 100 as 200 lanes and a join", () => {
    const n = 100_000;
    const nodes = Array.from({ length: n }, (_, i) => node(`n${i}`, 1, "running", i));
    const { tasks } = plan(nodes, spec(n, 2, 100, 100));
    assert.equal(tasks.length, 2 * n + 1);
    const last = tasks[tasks.length - 1];
    assert.equal(last.action, "do_nothing");
    assert.equal(last.prerequisites.length, 200);
    assert.equal(tasks.filter((t) => t.action === "start_node").length, n);
    assert.equal(tasks.filter((t) => t.action === "shut_down_node").length, n);
  });
});
