import { NodeCensus } from "../src/scheduler/NodeCensus.js";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { ulidFactory } from "../src/ids.js";
import { systemClock } from "../src/clock.js";
import type { Node, Spec, Task } from "../src/domain.js";
import type { Driver, NodeHandle } from "../src/drivers/Driver.js";
import { MockDriver } from "../src/drivers/MockDriver.js";
import { EventBus } from "../src/events/EventBus.js";
import { Journal } from "../src/events/Journal.js";
import { noFailpoints } from "../src/failpoints.js";
import { plan } from "../src/planner/plan.js";
import { Scheduler } from "../src/scheduler/Scheduler.js";
import { openSqliteStore } from "../src/store/SqliteStore.js";
import type { BenchConfig } from "./BenchConfig.js";
import { type Figure, figureOf } from "./Figure.js";
import { BENCH_GROUP, MIGRATIONS_DIR, seedNodes } from "./seedDataDir.js";

/** The simulated driver, timing every call it passes on: the work each task really took. */
class TimedDriver implements Driver {
  readonly name = "timed-mock";
  readonly host: string;
  /** Milliseconds each call took, by "start:<node id>" or "stop:<node id>". */
  readonly took = new Map<string, number>();

  constructor(private readonly inner: MockDriver) {
    this.host = inner.host;
  }

  async start(node: NodeHandle, signal: AbortSignal) {
    const started = performance.now();
    await this.inner.start(node, signal);
    this.took.set(`start:${node.id}`, performance.now() - started);
  }

  async stop(node: NodeHandle, signal: AbortSignal) {
    const started = performance.now();
    await this.inner.stop(node, signal);
    this.took.set(`stop:${node.id}`, performance.now() - started);
  }

  inspect(node: NodeHandle) {
    return this.inner.inspect(node);
  }
  onNodeFailure() {}
  strays(keep: ReadonlySet<string>) {
    return this.inner.strays(keep);
  }
  sweep(nodeIds: readonly string[]) {
    return this.inner.sweep(nodeIds);
  }
  nodesWithFiles() {
    return this.inner.nodesWithFiles();
  }
  removeNodeFiles(nodeIds: readonly string[]) {
    return this.inner.removeNodeFiles(nodeIds);
  }
  close() {
    this.inner.close();
  }
  kill(node: NodeHandle) {
    return this.inner.kill(node);
  }
  stats() {
    return undefined;
  }
  logFile() {
    return undefined;
  }
}

/** The lower bound no schedule can beat: the longest path (by the work each task took) and total work over parallelism. */
export function idealMakespan(tasks: readonly Task[], workOf: (task: Task) => number, parallelism: number) {
  const finish = new Float64Array(tasks.length);
  let criticalPath = 0;
  let totalWork = 0;
  // Prerequisites have lower ids than their task, so id order is a topological order.
  for (const task of tasks) {
    const work = workOf(task);
    totalWork += work;
    let ready = 0;
    for (const prerequisite of task.prerequisites) ready = Math.max(ready, finish[prerequisite]!);
    finish[task.id] = ready + work;
    criticalPath = Math.max(criticalPath, finish[task.id]!);
  }
  return { criticalPath, workOverParallelism: totalWork / parallelism, ideal: Math.max(criticalPath, totalWork / parallelism) };
}

interface Shape {
  key: string;
  label: string;
  /** The group's nodes before the graph, and the spec the graph reaches. */
  before: { version: number; count: number }[];
  spec: Spec;
}

/** One run: a stored graph, walked by the real scheduler with a real store and the simulated driver. */
async function runOnce(config: BenchConfig, shape: Shape, seed: number) {
  const { latency, parallelism } = config.efficiency;
  const dataDir = mkdtempSync(join(tmpdir(), "drover-bench-efficiency-"));
  const store = openSqliteStore(dataDir, MIGRATIONS_DIR);
  try {
    const nodes: Node[] = await seedNodes(store, shape.before);
    const newId = ulidFactory();
    const driver = new TimedDriver(new MockDriver({ latency, failureRate: 0, seed, clock: systemClock }));
    const bus = new EventBus();
    const journal = new Journal({ store, bus, now: () => Date.now() });
    const census = new NodeCensus((group) => store.snapshotNodes(group));
    bus.listen(census.observe);
    const scheduler = new Scheduler({
      census,
      journal,
      driver,
      clock: systemClock,
      newId: () => newId(),
      logger: pino({ level: "silent" }),
      failpoint: noFailpoints,
      parallelism,
      maxAttempts: 3,
      retryBaseDelayMs: 10,
      retryMaxDelayMs: 100,
      taskTimeoutMs: 60_000,
      progressDeadlineMs: 60_000,
    });
    const stored = await store.storeRevision({
      group: BENCH_GROUP,
      spec: shape.spec,
      graph: { id: newId(), tasks: plan(nodes, shape.spec).tasks },
      now: Date.now(),
      liveGraphs: [],
    });
    const graph = stored.graph!;
    const started = performance.now();
    const outcome = await scheduler.run(graph, new Map(nodes.map((node) => [node.id, { ...node }]))).settled;
    const makespan = performance.now() - started;
    if (outcome !== "succeeded") throw new Error(`the graph ended ${outcome}`);
    const finished = (await store.snapshotGraph(graph.id))!.tasks;
    const workOf = (task: Task) =>
      task.action === "do_nothing" ? 0 : driver.took.get(`${task.action === "start_node" ? "start" : "stop"}:${task.nodeId}`)!;
    const bound = idealMakespan(finished, workOf, parallelism);
    return { makespan, ...bound, tasks: finished.length };
  } finally {
    await store.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/**
 * Figure 4: how close the scheduler comes to the best any schedule could do. Two graphs of
 * `tasks` tasks with the simulated driver's latency: every task independent (a scale-up,
 * bounded by total work / parallelism), and a rolling version change with as many lanes as
 * slots (bounded by its lanes, the critical path). Efficiency = ideal bound / makespan,
 * where the bound uses the time each driver call really took, so that timer lateness
 * counts as work and the figure isolates the scheduler's own overhead.
 */
export async function measureEfficiency(config: BenchConfig): Promise<Figure[]> {
  const { tasks, parallelism, latency, runs } = config.efficiency;
  const half = Math.floor(parallelism / 2);
  const shapes: Shape[] = [
    {
      key: "efficiency.independent",
      label: `Scheduling: ${tasks.toLocaleString("en-US")} independent tasks`,
      before: [],
      spec: { count: tasks, version: 1, maxSurge: 0, maxUnavailable: 1 },
    },
    {
      key: "efficiency.rolling",
      label: `Scheduling: ${tasks.toLocaleString("en-US")}-task rolling change, ${parallelism} lanes`,
      before: [{ version: 1, count: tasks / 2 }],
      spec: { count: tasks / 2, version: 2, maxSurge: half, maxUnavailable: parallelism - half },
    },
  ];
  const figures: Figure[] = [];
  for (const shape of shapes) {
    const results = [];
    for (let run = 0; run < runs; run++) results.push(await runOnce(config, shape, 7 + run));
    const last = results.at(-1)!;
    figures.push(
      figureOf({
        key: shape.key,
        label: shape.label,
        unit: "of ideal",
        runs: results.map((result) => result.ideal / result.makespan),
        goal: { comparison: "at least", target: 0.95 },
        note:
          `latency ${latency.min}–${latency.max} ms, parallelism ${parallelism}; last run: makespan ${Math.round(last.makespan)} ms, ` +
          `critical path ${Math.round(last.criticalPath)} ms, work/parallelism ${Math.round(last.workOverParallelism)} ms`,
      }),
    );
  }
  return figures;
}
