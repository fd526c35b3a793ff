import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { pino } from "pino";
import { systemClock } from "../src/clock.js";
import { ulidFactory } from "../src/ids.js";
import type { PlannedTask } from "../src/domain.js";
import { Retention } from "../src/store/Retention.js";
import { DATABASE_FILE, openSqliteStore, type SqliteStore } from "../src/store/SqliteStore.js";
import type { Transition } from "../src/store/Store.js";
import type { BenchConfig } from "./BenchConfig.js";
import { type Figure, figureOf } from "./Figure.js";
import { applyInBatches, BENCH_GROUP, BENCH_HOST, MIGRATIONS_DIR } from "./seedDataDir.js";

const newId = ulidFactory();
const DAY = 86_400_000;

/**
 * A week-and-a-day-old past: `graphs` settled graphs of `tasks` start tasks each, every task
 * with its running and succeeded events and its node's starting and running events (4 events a
 * task). Half are updates, each its revision's rollout graph (kept, with its tasks); half are
 * heals (expire whole). Returns how many events it wrote.
 */
async function seedSettledPast(store: SqliteStore, graphs: number, tasks: number, then: number): Promise<number> {
  const spec = { count: tasks, version: 1, maxSurge: 0, maxUnavailable: 1 };
  const startTasks: PlannedTask[] = Array.from({ length: tasks }, (_, id) => ({ id, prerequisites: [], action: "start_node", version: 1 }));
  let events = 0;
  for (let i = 0; i < graphs; i++) {
    const graphId = newId();
    if (i % 2 === 0) await store.storeRevision({ group: BENCH_GROUP, spec, graph: { id: graphId, tasks: startTasks }, now: then, liveGraphs: [] });
    else {
      const revision = (await store.getGroupSpec(BENCH_GROUP))!.revision;
      await store.storeGraph({ group: BENCH_GROUP, revision, reason: "heal", graph: { id: graphId, tasks: startTasks }, now: then, liveGraphs: [] });
    }
    const transitions: Transition[] = [{ type: "graph", graphId, group: BENCH_GROUP, state: "running" }];
    for (const task of startTasks) {
      const nodeId = newId();
      const common = { graphId, group: BENCH_GROUP, taskId: task.id, action: "start_node" as const };
      transitions.push(
        { type: "task", ...common, state: "running", attempt: 1, nodeId },
        { type: "node", nodeId, group: BENCH_GROUP, state: "starting", version: 1, host: BENCH_HOST },
        { type: "node", nodeId, group: BENCH_GROUP, state: "running", version: 1, host: BENCH_HOST },
        { type: "task", ...common, state: "succeeded", nodeId },
      );
    }
    transitions.push({ type: "graph", graphId, group: BENCH_GROUP, state: "succeeded" });
    for (let at = 0; at < transitions.length; at += 20_000) await store.apply(transitions.slice(at, at + 20_000), then);
    events += transitions.length + 1;
  }
  return events;
}

/**
 * Retention over a million events: how long one run takes to delete them (and the expired
 * graphs' tasks) with the server's default step, and the longest step, which is the longest
 * the event loop is held (also read from the event loop's own delay monitor).
 */
export async function measureRetention(config: BenchConfig): Promise<Figure[]> {
  const { graphs, tasksPerGraph } = config.retention;
  const dataDir = mkdtempSync(join(tmpdir(), "drover-bench-retention-"));
  try {
    const store = openSqliteStore(dataDir, MIGRATIONS_DIR);
    const now = Date.now();
    const events = await seedSettledPast(store, graphs, tasksPerGraph, now - 8 * DAY);
    // The present, which stays: one node event of now.
    await applyInBatches(store, [{ type: "node", nodeId: newId(), group: BENCH_GROUP, state: "running", version: 1, host: BENCH_HOST }]);
    const sizeBefore = statSync(join(dataDir, DATABASE_FILE)).size;
    const retention = new Retention({ store, clock: { ...systemClock, now: () => now }, logger: pino({ level: "silent" }), retentionMs: 7 * DAY });
    const delay = monitorEventLoopDelay({ resolution: 1 });
    delay.enable();
    const report = await retention.run();
    delay.disable();
    await store.close();
    const sizeAfter = statSync(join(dataDir, DATABASE_FILE)).size;
    const sizes = `${events.toLocaleString("en")} events, ${report.tasks.toLocaleString("en")} tasks of ${report.graphs} expired graphs; file ${(sizeBefore / 1048576).toFixed(0)} → ${(sizeAfter / 1048576).toFixed(0)} MiB`;
    return [
      figureOf({ key: "retention.run_ms", label: "retention: one run over a week-old past", unit: "ms", runs: [report.tookMs], note: `${sizes}, ${report.steps} steps` }),
      figureOf({
        key: "retention.longest_step_ms",
        label: "retention: longest step (event loop held)",
        unit: "ms",
        runs: [report.longestStepMs],
        note: `event loop delay max ${(delay.max / 1e6).toFixed(1)} ms, p99 ${(delay.percentile(99) / 1e6).toFixed(1)} ms`,
      }),
    ];
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}
