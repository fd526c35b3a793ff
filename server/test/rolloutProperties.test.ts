/**
 * A property of rollouts under faults (issue 10), on the simulated driver: whatever crashes,
 * slow stops and failed starts fast-check throws at a rollout, the node event stream never
 * shows the group outside its rollout bounds (except right after a node was killed from
 * outside), every graph settles, and a failed update's failure policy runs.
 *
 * One run: a real server with a fresh data dir; N nodes at version 1; a watch of the group's
 * nodes (snapshot, then events); an update to version 2 with a random strategy and failure
 * policy while faults are injected; then, once every graph has settled, the checks below on
 * the recorded stream, folded node by node in sequence order.
 *
 * Seed: FUZZ_SEED (printed); runs: FUZZ_RUNS; FUZZ_SHRINK=1 shrinks a counterexample (each run
 * takes a second or two, so shrinking takes minutes: off by default); FUZZ_SCENARIO='{…}' runs
 * one scenario, the JSON a failure prints after "scenario". Timing is real, so a replayed seed
 * or scenario gives the same faults but not always the same interleaving.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import fc from "fast-check";
import {
  type DroverServiceClient,
  type Event as ApiEvent,
  EventType,
  FailurePolicy,
  type Graph,
  GraphReason,
  GraphState,
  NodeState,
  type Spec as ApiSpec,
  TaskState,
} from "@drover/shared";
import { drain, startTestServer, type TestServer } from "./support.js";

const RUNS = Number(process.env.FUZZ_RUNS ?? 30);

/** The seed of the property: FUZZ_SEED to replay, else a fixed one so that the suite is repeatable. */
const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : 20_261_010;

const GROUP = "default";

/** A scenario to replay (FUZZ_SCENARIO, the JSON a failure prints), instead of generated ones. */
const REPLAY = process.env.FUZZ_SCENARIO;

// ---------------------------------------------------------------------------------------
// Scenarios

interface Strategy {
  maxSurge: number;
  maxUnavailable: number;
  onFailure: FailurePolicy;
}

interface Scenario {
  count: number;
  /** Revision 1's strategy: a rollback restores it, so the rollback's graph is held to it. */
  initial: Strategy;
  /** The update to version 2. */
  update: Strategy & { minReadyMs: number };
  /** Crashes of available (running) nodes, in ms after the update; `preferNew`: a version-2 node if one runs. */
  crashes: { atMs: number; pick: number; preferNew: boolean }[];
  /** Which driver start calls after the update fail (0: the first). */
  failedStarts: number[];
  /** Which driver stop calls after the update take longer, and how much. */
  slowStops: { call: number; delayMs: number }[];
}

const policyArb = fc.constantFrom(FailurePolicy.FAILURE_POLICY_STOP, FailurePolicy.FAILURE_POLICY_ROLLBACK);

const strategyArb: fc.Arbitrary<Strategy> = fc
  .record({ maxSurge: fc.integer({ min: 0, max: 2 }), maxUnavailable: fc.integer({ min: 0, max: 2 }), onFailure: policyArb })
  .filter((strategy) => strategy.maxSurge + strategy.maxUnavailable > 0);

const scenarioArb: fc.Arbitrary<Scenario> = fc.record({
  count: fc.integer({ min: 2, max: 5 }),
  initial: strategyArb,
  update: fc.tuple(strategyArb, fc.oneof(fc.constant(0), fc.integer({ min: 30, max: 120 }))).map(([strategy, minReadyMs]) => ({ ...strategy, minReadyMs })),
  crashes: fc.array(fc.record({ atMs: fc.integer({ min: 0, max: 1200 }), pick: fc.nat(9), preferNew: fc.boolean() }), { maxLength: 3 }),
  failedStarts: fc.uniqueArray(fc.integer({ min: 0, max: 11 }), { maxLength: 4 }),
  slowStops: fc.uniqueArray(fc.record({ call: fc.integer({ min: 0, max: 9 }), delayMs: fc.integer({ min: 100, max: 400 }) }), {
    maxLength: 3,
    selector: (stop) => stop.call,
  }),
});

// ---------------------------------------------------------------------------------------
// The group as the node event stream tells it

const ALIVE = new Set([NodeState.NODE_STATE_STARTING, NodeState.NODE_STATE_RUNNING, NodeState.NODE_STATE_UNHEALTHY, NodeState.NODE_STATE_STOPPING]);

/** Node states folded from a snapshot and then events, by node id; stopped nodes are forgotten. */
class GroupFold {
  readonly states = new Map<string, NodeState>();

  constructor(snapshot: readonly { id: string; state: NodeState }[]) {
    for (const node of snapshot) this.states.set(node.id, node.state);
  }

  /** Applies one node event; returns the node's state before it. */
  apply(event: ApiEvent): NodeState | undefined {
    const before = this.states.get(event.nodeId);
    if (event.nodeState === NodeState.NODE_STATE_STOPPED) this.states.delete(event.nodeId);
    // A failed node being removed has no process to stop: it stays dead, not alive (as the census counts it).
    else if (event.nodeState === NodeState.NODE_STATE_STOPPING && before === NodeState.NODE_STATE_FAILED) this.states.set(event.nodeId, NodeState.NODE_STATE_FAILED);
    else this.states.set(event.nodeId, event.nodeState);
    return before;
  }

  stateOf(nodeId: string): NodeState | undefined {
    return this.states.get(nodeId);
  }

  get available(): number {
    let available = 0;
    for (const state of this.states.values()) if (state === NodeState.NODE_STATE_RUNNING) available++;
    return available;
  }

  get alive(): number {
    let alive = 0;
    for (const state of this.states.values()) if (ALIVE.has(state)) alive++;
    return alive;
  }

  running(): string[] {
    return [...this.states].filter(([, state]) => state === NodeState.NODE_STATE_RUNNING).map(([id]) => id);
  }
}

/** The live watch of the group's nodes: its snapshot, every event since, and the fold of both. */
class NodeWatch {
  readonly events: ApiEvent[] = [];
  snapshot: { id: string; state: NodeState; version: number }[] = [];
  snapshotSequence = 0;
  /** The fold as of the last event received, for choosing which node to crash. */
  live!: GroupFold;
  readonly versions = new Map<string, number>();
  private readonly abort = new AbortController();
  private readonly done: Promise<void>;

  private constructor(client: DroverServiceClient, ready: () => void) {
    this.done = (async () => {
      let first = true;
      try {
        for await (const message of client.watchNodes({ group: GROUP }, { signal: this.abort.signal })) {
          if (first) {
            first = false;
            this.snapshot = message.snapshot.map((node) => ({ id: node.id, state: node.state, version: node.version }));
            this.snapshotSequence = message.sequence;
            for (const node of message.snapshot) this.versions.set(node.id, node.version);
            this.live = new GroupFold(this.snapshot);
            ready();
          }
          for (const event of message.events) {
            this.events.push(event);
            this.versions.set(event.nodeId, event.version);
            this.live.apply(event);
          }
        }
      } catch (error) {
        if (!this.abort.signal.aborted) throw error;
      }
    })();
  }

  static async open(client: DroverServiceClient): Promise<NodeWatch> {
    let watch!: NodeWatch;
    await new Promise<void>((resolve) => (watch = new NodeWatch(client, resolve)));
    return watch;
  }

  async close(): Promise<void> {
    this.abort.abort();
    await this.done;
  }
}

// ---------------------------------------------------------------------------------------
// Faults

/** Wraps the driver's start and stop (as the other rollout tests do) with the scenario's faults, from the update on. */
function injectFaults(test: TestServer, scenario: Scenario): { arm: () => void } {
  const { driver } = test;
  let armed = false;
  let starts = 0;
  let stops = 0;
  const failedStarts = new Set(scenario.failedStarts);
  const slowStops = new Map(scenario.slowStops.map((stop) => [stop.call, stop.delayMs]));
  const start = driver.start.bind(driver);
  const stop = driver.stop.bind(driver);
  driver.start = async (node, signal) => {
    const call = armed ? starts++ : -1;
    if (failedStarts.has(call)) {
      await sleep(5, undefined, { signal });
      throw new Error(`injected failure of start call ${call} (node ${node.id})`);
    }
    return start(node, signal);
  };
  driver.stop = async (node, signal) => {
    const call = armed ? stops++ : -1;
    const delay = slowStops.get(call);
    if (delay !== undefined) await sleep(delay, undefined, { signal });
    return stop(node, signal);
  };
  return { arm: () => (armed = true) };
}

/** Crashes available nodes at the scenario's times; returns the nodes it killed (the driver had them running). */
async function crashNodes(test: TestServer, watch: NodeWatch, scenario: Scenario, began: number): Promise<Set<string>> {
  const killed = new Set<string>();
  for (const crash of [...scenario.crashes].sort((a, b) => a.atMs - b.atMs)) {
    const wait = began + crash.atMs - Date.now();
    if (wait > 0) await sleep(wait);
    // Only nodes past readiness: running in the stream (a node proving itself within min-ready is starting).
    const running = watch.live.running().sort();
    const fresh = running.filter((id) => watch.versions.get(id) === 2);
    const candidates = crash.preferNew && fresh.length > 0 ? fresh : running;
    if (candidates.length === 0) continue;
    const victim = candidates[crash.pick % candidates.length]!;
    if (test.driver.crash(victim, "injected crash")) killed.add(victim);
  }
  return killed;
}

// ---------------------------------------------------------------------------------------
// Settling

const UNSETTLED = new Set([GraphState.GRAPH_STATE_PENDING, GraphState.GRAPH_STATE_RUNNING, GraphState.GRAPH_STATE_PAUSED]);

/**
 * Waits until no graph of the group is pending, running or paused, and none has appeared, for
 * `quietMs` (longer than a reconcile interval and the crash-loop's longest wait, so that a heal
 * the reconciler is about to make is not missed). Returns every graph, or throws naming the
 * graphs still unsettled after `timeoutMs`.
 */
async function allGraphsSettled(client: DroverServiceClient, quietMs: number, timeoutMs: number): Promise<Graph[]> {
  const deadline = Date.now() + timeoutMs;
  let quietSince: number | undefined;
  let known = -1;
  for (;;) {
    const graphs = (await client.listGraphs({ group: GROUP, limit: 1000 })).graphs;
    const unsettled = graphs.filter((graph) => UNSETTLED.has(graph.state));
    if (unsettled.length > 0 || graphs.length !== known) quietSince = undefined;
    else quietSince ??= Date.now();
    known = graphs.length;
    if (quietSince !== undefined && Date.now() - quietSince >= quietMs) return graphs;
    if (Date.now() > deadline) {
      const names = unsettled.map((graph) => `${graph.id} (${GraphReason[graph.reason]}, ${GraphState[graph.state]})`);
      throw new Error(`graphs never settled within ${timeoutMs}ms: ${names.join(", ") || "new graphs kept coming"}`);
    }
    await sleep(50);
  }
}

// ---------------------------------------------------------------------------------------
// The checks

interface Mover {
  graphId: string;
  taskId: number;
  reason: GraphReason;
}

/**
 * Which task moved a node. Node events name no graph (they belong to the group's stream), but
 * a task's attempt commits its task event (running) and its node's event (starting or stopping)
 * together, so the node event's mover is the last task that began an attempt on that node.
 */
class Movers {
  private readonly attempts = new Map<string, (Mover & { sequence: number })[]>();

  static async read(client: DroverServiceClient, graphs: readonly Graph[]): Promise<Movers> {
    const movers = new Movers();
    for (const graph of graphs) {
      const messages = await drain(client.watchGraph({ graphId: graph.id, afterSequence: 0 }));
      for (const event of messages.flatMap((message) => message.events)) {
        if (event.type !== EventType.EVENT_TYPE_TASK || event.taskState !== TaskState.TASK_STATE_RUNNING || event.nodeId === "") continue;
        const list = movers.attempts.get(event.nodeId) ?? [];
        list.push({ graphId: graph.id, taskId: event.taskId, reason: graph.reason, sequence: event.sequence });
        movers.attempts.set(event.nodeId, list);
      }
    }
    for (const list of movers.attempts.values()) list.sort((a, b) => a.sequence - b.sequence);
    return movers;
  }

  of(event: ApiEvent): Mover | undefined {
    return this.attempts
      .get(event.nodeId)
      ?.filter((attempt) => attempt.sequence < event.sequence)
      .at(-1);
  }
}

interface BoundCheck {
  violations: string[];
  /** Events held to the bounds, and events let off because a kill's window was open. */
  checked: number;
  excused: number;
}

/**
 * The rollout bounds, checked on the stream: every event that takes an available node away
 * (running → stopping, a voluntary removal) must leave available ≥ count − max unavailable,
 * and every event that makes a node alive (→ starting; a failed node → stopping is not one: it
 * has no process, and the census the gates use does not count it) must leave alive ≤
 * count + max surge. Shutting down a node that is not running costs no availability, so only
 * running → stopping is held to the floor. The bounds are those of the spec of the graph that
 * moved the node (a rollback is held to the strategy of the revision it restores; see Movers).
 * The initial scale-up is not checked: it happens before the watch begins, and is not gated.
 * Besides the bounds, stopped is final: no event may follow a node's stopped event.
 *
 * The exception, right after an external kill: a kill (the failed event of a node this test
 * crashed while it was running) opens a window that closes at the first event after which
 * available is back to min(its level just before the kill, count). Until then the group is
 * short through no step of the server's, and what mends it (a heal, a rollback that removes the
 * dead node while it starts another) may go past the bounds by the node the kill took; a fixed
 * time would either hide later steps or cut off a slow repair. Steps after the window are held
 * to the bounds again. Each kill has its own window.
 */
function checkBounds(watch: NodeWatch, movers: Movers, specs: Map<string, ApiSpec>, killed: ReadonlySet<string>, count: number): BoundCheck {
  const fold = new GroupFold(watch.snapshot);
  const violations: string[] = [];
  let checked = 0;
  let excused = 0;
  const windows: { level: number }[] = [];
  const describe = (event: ApiEvent, before: NodeState | undefined, mover: Mover | undefined) =>
    `event ${event.sequence}: node ${event.nodeId} v${event.version} ${before === undefined ? "(new)" : NodeState[before]} → ${NodeState[event.nodeState]} by ${mover ? `task ${mover.taskId} of graph ${mover.graphId}` : "no task"}`;
  const stopped = new Set<string>();
  let previous = watch.snapshotSequence;
  for (const event of watch.events) {
    assert.ok(event.sequence > previous, `node events in sequence order (${event.sequence} after ${previous})`);
    previous = event.sequence;
    if (stopped.has(event.nodeId)) {
      // Stopped is final (domain.ts: "gone for good; never leaves"): a node that comes back is a lifecycle fault, whatever the counts say.
      violations.push(`${describe(event, NodeState.NODE_STATE_STOPPED, movers.of(event))}: the node had stopped, and stopped never leaves`);
    }
    if (event.nodeState === NodeState.NODE_STATE_STOPPED) stopped.add(event.nodeId);
    const availableBefore = fold.available;
    const before = fold.apply(event);
    const after = event.nodeState;
    if (after === NodeState.NODE_STATE_FAILED && before === NodeState.NODE_STATE_RUNNING && killed.has(event.nodeId)) {
      windows.push({ level: availableBefore });
    }
    for (let i = windows.length - 1; i >= 0; i--) {
      if (fold.available >= Math.min(windows[i]!.level, count)) windows.splice(i, 1);
    }
    const removes = after === NodeState.NODE_STATE_STOPPING && before === NodeState.NODE_STATE_RUNNING;
    const now = fold.stateOf(event.nodeId);
    const adds = now !== undefined && ALIVE.has(now) && (before === undefined || !ALIVE.has(before));
    if (!removes && !adds) continue;
    const mover = movers.of(event);
    const spec = mover && specs.get(mover.graphId);
    if (!spec) {
      violations.push(`${describe(event, before, mover)}: moved by no known graph`);
      continue;
    }
    if (windows.length > 0) {
      excused++;
      continue;
    }
    checked++;
    const floor = spec.count - spec.maxUnavailable;
    const ceiling = spec.count + spec.maxSurge;
    if (removes && fold.available < floor) {
      violations.push(`${describe(event, before, mover)} (${GraphReason[mover.reason]}): ${fold.available} available, below ${floor} (count ${spec.count} − max unavailable ${spec.maxUnavailable})`);
    }
    if (adds && fold.alive > ceiling) {
      violations.push(`${describe(event, before, mover)} (${GraphReason[mover.reason]}): ${fold.alive} alive, above ${ceiling} (count ${spec.count} + max surge ${spec.maxSurge})`);
    }
  }
  return { violations, checked, excused };
}

/** The failure policy of every failed update (the rollout, and a rollback that is itself an update). */
function policyViolations(graphs: readonly Graph[]): string[] {
  const byId = new Map(graphs.map((graph) => [graph.id, graph]));
  const violations: string[] = [];
  for (const graph of graphs) {
    if (graph.reason !== GraphReason.GRAPH_REASON_UPDATE || graph.state !== GraphState.GRAPH_STATE_FAILED) continue;
    const what = `failed update graph ${graph.id} (revision ${graph.revision}, v${graph.spec!.version}, on failure ${FailurePolicy[graph.spec!.onFailure]})`;
    if (graph.error === "") violations.push(`${what}: no error says why`);
    if (graph.spec!.onFailure === FailurePolicy.FAILURE_POLICY_ROLLBACK) {
      if (!/^(rolling back to revision|not rolling back)/.test(graph.message)) violations.push(`${what}: message ${JSON.stringify(graph.message)}`);
      if (graph.message.startsWith("rolling back to revision")) {
        const next = byId.get(graph.nextGraphId);
        if (!next) violations.push(`${what}: rolls back, but its next graph ${JSON.stringify(graph.nextGraphId)} is not one of the group's`);
        else if (UNSETTLED.has(next.state)) violations.push(`${what}: its rollback ${next.id} is ${GraphState[next.state]}`);
      }
    } else if (graph.nextGraphId !== "" || graph.message.startsWith("rolling back")) {
      violations.push(`${what}: rolls back (${JSON.stringify(graph.message)}, next ${graph.nextGraphId})`);
    }
  }
  return violations;
}

// ---------------------------------------------------------------------------------------
// One run

interface Outcome {
  violations: string[];
  /** For the diagnostics: how the update ended ("succeeded", "failed, rollback"), and what the run made and checked. */
  ending: string;
  graphs: number;
  killed: number;
  checked: number;
  excused: number;
}

const SERVER_OPTIONS = {
  parallelism: 4,
  maxAttempts: 2,
  retryBaseDelayMs: 5,
  retryMaxDelayMs: 20,
  reconcileIntervalMs: 100,
  // A step held by a bound that nothing restores fails its graph in 3 s, not 60.
  progressDeadlineMs: 3000,
  // Replacements back off, but briefly: a run's heals happen within it.
  crashLoop: { initialMs: 50, maxMs: 200, resetAfterMs: 60_000 },
};

async function waitFor(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

async function runScenario(scenario: Scenario): Promise<Outcome> {
  const test = await startTestServer({ driver: { latency: { min: 5, max: 25 }, seed: 11 }, server: SERVER_OPTIONS });
  let watch: NodeWatch | undefined;
  try {
    const { client } = test;
    const { count, initial, update } = scenario;
    const first = await client.setSpec({ count, version: 1, ...initial });
    await drain(client.watchGraph({ graphId: first.graph!.id }));
    const faults = injectFaults(test, scenario);
    watch = await NodeWatch.open(client);
    faults.arm();
    const began = Date.now();
    const rollout = (await client.setSpec({ count, version: 2, ...update })).graph!;
    const killed = await crashNodes(test, watch, scenario, began);
    const graphs = await allGraphsSettled(client, 600, 30_000);
    // The stream lingers a little behind the store: wait until the fold ends where the store is.
    const stored = async () => new Map((await client.listNodes({ group: GROUP })).nodes.map((node) => [node.id, node.state]));
    let final = await stored();
    for (let tries = 0; tries < 20 && !sameStates(watch.live.states, final); tries++) {
      await sleep(25);
      final = await stored();
    }
    await watch.close();
    const violations: string[] = [];
    if (!sameStates(watch.live.states, final)) violations.push(`the fold of the stream ${show(watch.live.states)} is not the store's ${show(final)}`);
    const specs = new Map(graphs.map((graph) => [graph.id, graph.spec!]));
    const movers = await Movers.read(client, graphs);
    const bounds = checkBounds(watch, movers, specs, killed, count);
    violations.push(...bounds.violations);
    violations.push(...policyViolations(graphs));
    if (violations.length > 0) violations.push("the run, oldest first:", ...trail(watch, movers, graphs, killed));
    const updated = graphs.find((graph) => graph.id === rollout.id)!;
    const ending = updated.state === GraphState.GRAPH_STATE_FAILED ? `failed, ${FailurePolicy[update.onFailure].replace("FAILURE_POLICY_", "").toLowerCase()}` : GraphState[updated.state].replace("GRAPH_STATE_", "").toLowerCase();
    return { violations, ending, graphs: graphs.length, killed: killed.size, checked: bounds.checked, excused: bounds.excused };
  } finally {
    await watch?.close();
    await test.stop();
  }
}

/** The run as a reader needs it to judge a violation: the graphs, then every node event with its mover and the counts after it. */
function trail(watch: NodeWatch, movers: Movers, graphs: readonly Graph[], killed: ReadonlySet<string>): string[] {
  const short = (id: string) => id.slice(-5);
  const lines = [...graphs].reverse().map((graph) => {
    const { count, version, maxSurge, maxUnavailable } = graph.spec!;
    return `graph ${short(graph.id)} ${GraphReason[graph.reason]} rev ${graph.revision} ${count}×v${version} surge ${maxSurge} unavail ${maxUnavailable}: ${GraphState[graph.state]} ${graph.error} ${graph.message}`;
  });
  const fold = new GroupFold(watch.snapshot);
  lines.push(`snapshot @${watch.snapshotSequence}: ${show(fold.states)}`);
  for (const event of watch.events) {
    const before = fold.apply(event);
    const mover = movers.of(event);
    const by = mover && event.nodeState !== NodeState.NODE_STATE_FAILED && event.nodeState !== NodeState.NODE_STATE_RUNNING ? ` by ${short(mover.graphId)}#${mover.taskId}` : "";
    const kill = killed.has(event.nodeId) && event.nodeState === NodeState.NODE_STATE_FAILED && before === NodeState.NODE_STATE_RUNNING ? " KILLED" : "";
    const from = before === undefined ? "new" : NodeState[before].replace("NODE_STATE_", "");
    lines.push(`@${event.sequence} ${short(event.nodeId)} v${event.version} ${from}→${NodeState[event.nodeState].replace("NODE_STATE_", "")}${by}${kill}: available ${fold.available}, alive ${fold.alive}`);
  }
  return lines;
}

function sameStates(a: ReadonlyMap<string, NodeState>, b: ReadonlyMap<string, NodeState>): boolean {
  return a.size === b.size && [...a].every(([id, state]) => b.get(id) === state);
}

function show(states: ReadonlyMap<string, NodeState>): string {
  return JSON.stringify([...states].map(([id, state]) => `${id.slice(-6)}:${NodeState[state].replace("NODE_STATE_", "")}`));
}

// ---------------------------------------------------------------------------------------

describe("rollouts under injected faults", { timeout: 600_000 }, () => {
  // The property's first counterexample (seed 20261010), shrunk by hand. Count 2 at v1, then v2 with
  // surge 0, unavailable 1 and min-ready 300ms: one lane, shut a → start x → shut b → start y.
  // b dies while x proves itself; a heal replaces it (the lane's pending shut-down of b is gated,
  // so b is not claimed by the rollout). Then the lane shuts b down again and starts y as well.
  it("replaces a node killed during a rolling update only once, and leaves a node a heal has stopped alone", async (t) => {
    const test = await startTestServer({ driver: { latency: { min: 5, max: 10 } }, server: SERVER_OPTIONS });
    t.after(test.stop);
    const { client } = test;
    await drain(client.watchGraph({ graphId: (await client.setSpec({ count: 2, version: 1 })).graph!.id }));
    const watch = await NodeWatch.open(client);
    t.after(() => watch.close());
    const [a, b] = watch.snapshot.map((node) => node.id).sort();
    const rollout = (await client.setSpec({ count: 2, version: 2, maxSurge: 0, maxUnavailable: 1, minReadyMs: 300 })).graph!;
    const lane = rollout.tasks.map((task) => (task.nodeId ? `shut ${task.nodeId === a ? "a" : task.nodeId === b ? "b" : task.nodeId}` : "start"));
    assert.deepEqual(lane, ["shut a", "start", "shut b", "start"]);
    await waitFor(() => [...watch.live.states].some(([id, state]) => watch.versions.get(id) === 2 && state === NodeState.NODE_STATE_STARTING), "the first v2 node proving itself");
    assert.ok(test.driver.crash(b!, "injected crash"));
    const graphs = await allGraphsSettled(client, 600, 15_000);
    // The rollout replaces b itself, ahead of its lane (GraphRun.replaceEarly): no heal makes a second replacement.
    assert.ok(!graphs.some((graph) => graph.reason === GraphReason.GRAPH_REASON_HEAL), "no heal replaced b too");
    await sleep(100);
    await watch.close();
    const movers = await Movers.read(client, graphs);
    const specs = new Map(graphs.map((graph) => [graph.id, graph.spec!]));
    const stopsOfB = watch.events.filter((event) => event.nodeId === b && event.nodeState === NodeState.NODE_STATE_STOPPED);
    const { violations } = checkBounds(watch, movers, specs, new Set([b!]), 2);
    assert.deepEqual(violations, [], trail(watch, movers, graphs, new Set([b!])).join("\n"));
    assert.equal(stopsOfB.length, 1, "b is stopped once");
  });

  // Found by the property with a crafted scenario ({count 2, v1 surge 0 unavailable 1, v2 on
  // failure rollback, its first two starts failing}): the rollback's plan removes the failed v2
  // node (ungated, phase A) and starts its v1 replacement in parallel, so while the failed node
  // is stopping the group has 3 alive against count 2 + max surge 0. No node was killed.
  it("keeps a rollback within count + max surge while it removes a node whose start failed", async (t) => {
    const test = await startTestServer({ driver: { latency: { min: 5, max: 10 } }, server: SERVER_OPTIONS });
    t.after(test.stop);
    const { client, driver } = test;
    await drain(client.watchGraph({ graphId: (await client.setSpec({ count: 2, version: 1 })).graph!.id }));
    const start = driver.start.bind(driver);
    const stop = driver.stop.bind(driver);
    driver.start = async (node, signal) => {
      if (node.version === 2) throw new Error("version 2 does not start");
      return start(node, signal);
    };
    driver.stop = async (node, signal) => {
      // The failed node's removal takes a moment, as a real stop does.
      if (node.version === 2) await sleep(100, undefined, { signal });
      return stop(node, signal);
    };
    const watch = await NodeWatch.open(client);
    t.after(() => watch.close());
    const rollout = (await client.setSpec({ count: 2, version: 2, onFailure: FailurePolicy.FAILURE_POLICY_ROLLBACK })).graph!;
    const graphs = await allGraphsSettled(client, 600, 15_000);
    const failed = graphs.find((graph) => graph.id === rollout.id)!;
    assert.equal(failed.state, GraphState.GRAPH_STATE_FAILED);
    assert.match(failed.message, /^rolling back to revision 1 \(2 × v1\)/);
    assert.equal(graphs.find((graph) => graph.id === failed.nextGraphId)?.state, GraphState.GRAPH_STATE_SUCCEEDED);
    await sleep(100);
    await watch.close();
    const movers = await Movers.read(client, graphs);
    const specs = new Map(graphs.map((graph) => [graph.id, graph.spec!]));
    const { violations } = checkBounds(watch, movers, specs, new Set(), 2);
    assert.deepEqual(violations, [], trail(watch, movers, graphs, new Set()).join("\n"));
  });

  it("keeps every rollout within its bounds except right after a kill, settles every graph, and applies the failure policy", async (t) => {
    t.diagnostic(REPLAY ? `replaying FUZZ_SCENARIO` : `seed ${SEED} (FUZZ_SEED), ${RUNS} runs (FUZZ_RUNS)`);
    const outcomes: Outcome[] = [];
    await fc.assert(
      fc.asyncProperty(REPLAY ? fc.constant(JSON.parse(REPLAY) as Scenario) : scenarioArb, async (scenario) => {
        const outcome = await runScenario(scenario);
        outcomes.push(outcome);
        assert.deepEqual(outcome.violations, [], `scenario ${JSON.stringify(scenario)}`);
      }),
      { numRuns: REPLAY ? 1 : RUNS, seed: SEED, endOnFailure: !process.env.FUZZ_SHRINK, includeErrorInReport: true },
    );
    const endings = new Map<string, number>();
    for (const outcome of outcomes) endings.set(outcome.ending, (endings.get(outcome.ending) ?? 0) + 1);
    const sum = (key: "graphs" | "killed" | "checked" | "excused") => outcomes.reduce((total, outcome) => total + outcome[key], 0);
    t.diagnostic(
      `updates: ${JSON.stringify(Object.fromEntries(endings))}; ${sum("graphs")} graphs, ${sum("killed")} kills, ` +
        `${sum("checked")} node events held to the bounds, ${sum("excused")} let off in a kill's window`,
    );
  });
});
