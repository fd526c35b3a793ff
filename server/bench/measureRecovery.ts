import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import DatabaseConstructor from "better-sqlite3";
import { ulidFactory } from "../src/ids.js";
import { plan } from "../src/planner/plan.js";
import { DATABASE_FILE, openSqliteStore } from "../src/store/SqliteStore.js";
import type { BenchConfig } from "./BenchConfig.js";
import { type Figure, figureOf } from "./Figure.js";
import type { ProfileLog } from "./profileSummary.js";
import { applyInBatches, BENCH_GROUP, halfFinishedTransitions, MIGRATIONS_DIR, seedNodes } from "./seedDataDir.js";
import { ServerProcess } from "./ServerProcess.js";

const newId = ulidFactory();

/**
 * A data dir as a server killed half-way through a rolling update leaves it: `nodes`
 * nodes (half replaced already), the update's graph with its first half of tasks
 * succeeded and the next `inFlight` running. Returns the database file and its last sequence.
 */
async function prepareCrashedDataDir(nodes: number, inFlight: number, config: BenchConfig) {
  const dataDir = mkdtempSync(join(tmpdir(), "drover-bench-recovery-"));
  const store = openSqliteStore(dataDir, MIGRATIONS_DIR);
  const live = await seedNodes(store, [
    { version: 1, count: nodes / 2 },
    { version: 2, count: nodes / 2 },
  ]);
  const spec = { count: nodes, version: 2, maxSurge: config.plan.maxSurge, maxUnavailable: config.plan.maxUnavailable };
  const tasks = plan(live, spec).tasks;
  const graphId = newId();
  await store.storeRevision({ group: BENCH_GROUP, spec, graph: { id: graphId, tasks }, now: Date.now(), liveGraphs: [] });
  // Whole replacements (two tasks each) done, so that the half is a state a run can leave.
  const finished = 2 * Math.floor(tasks.length / 4);
  await applyInBatches(store, halfFinishedTransitions(graphId, tasks, finished, inFlight, live));
  await store.close();
  const db = new DatabaseConstructor(join(dataDir, DATABASE_FILE), { readonly: true });
  const lastSequence = db.prepare(`SELECT MAX(sequence) FROM events`).pluck().get() as number;
  db.close();
  return { dataDir, lastSequence, tasks: tasks.length, finished };
}

/**
 * Figure 8: from spawning the server program on a crashed data dir to its first task
 * dispatched (the first task event it commits: a re-attempt of a task that was running),
 * read from the event log. Every run starts from a fresh copy of the same database.
 */
export async function measureRecovery(config: BenchConfig, profiles: ProfileLog): Promise<Figure[]> {
  const { nodes, inFlight, runs } = config.recovery;
  const prepared = await prepareCrashedDataDir(nodes, inFlight, config);
  const times: number[] = [];
  const readyTimes: number[] = [];
  try {
    for (let run = 0; run < runs; run++) {
      const dataDir = mkdtempSync(join(tmpdir(), "drover-bench-recovered-"));
      copyFileSync(join(prepared.dataDir, DATABASE_FILE), join(dataDir, DATABASE_FILE));
      const server = await ServerProcess.start(
        { dataDir, args: ["--parallelism", "256", "--mock-latency", "500ms..2s"], profileDir: config.profileDir },
        false,
      );
      try {
        const ready = await server.waitForLog("ready");
        readyTimes.push(ready.time - server.spawnedAt);
        const db = server.openDatabase();
        const firstTask = db.prepare(`SELECT MIN(time) FROM events WHERE sequence > ? AND type = 'task'`).pluck();
        let dispatched: number | null = null;
        for (const deadline = Date.now() + 120_000; dispatched === null && Date.now() < deadline; ) {
          dispatched = firstTask.get(prepared.lastSequence) as number | null;
          if (dispatched === null) await new Promise((resolve) => setTimeout(resolve, 20));
        }
        db.close();
        if (dispatched === null) throw new Error("the recovered server dispatched no task within 2 minutes");
        times.push(dispatched - server.spawnedAt);
        if (run === runs - 1) await profiles.stop(server, "recovery");
      } finally {
        await server.stop();
        rmSync(dataDir, { recursive: true, force: true });
      }
    }
  } finally {
    rmSync(prepared.dataDir, { recursive: true, force: true });
  }
  return [
    figureOf({
      key: "recovery.ms",
      label: `Recovery: start-up to resumed dispatch, ${nodes.toLocaleString("en-US")} nodes`,
      unit: "ms",
      runs: times,
      goal: { comparison: "at most", target: 2000 },
      note:
        `${prepared.tasks.toLocaleString("en-US")}-task graph, ${prepared.finished.toLocaleString("en-US")} done, ${inFlight} running; ` +
        `"ready" logged after ${Math.round(readyTimes.sort((a, b) => a - b)[Math.floor(readyTimes.length / 2)]!)} ms (median)`,
    }),
  ];
}
