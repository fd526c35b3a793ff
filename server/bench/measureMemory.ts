import { setMaxListeners } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openSqliteStore } from "../src/store/SqliteStore.js";
import type { BenchConfig } from "./BenchConfig.js";
import type { Figure } from "./Figure.js";
import type { ProfileLog } from "./profileSummary.js";
import { rawWatchGraph } from "./rawWatchGraph.js";
import { BENCH_GROUP, MIGRATIONS_DIR, seedNodes } from "./seedDataDir.js";
import { ServerProcess } from "./ServerProcess.js";

const MB = 1024 * 1024;

/**
 * Figure 7: the server's peak resident memory (VmHWM) holding a group of `nodes` nodes —
 * half at version 1, half at version 2 — while a rolling update to version 2 (one task per
 * node still to replace, plus the join: `nodes` + 1 tasks) runs with the simulated
 * driver's default latency and `watchers` clients follow it, each from a full snapshot.
 * The peak covers everything since start-up: planning, storing and launching the graph,
 * serving the snapshots, and `holdMs` of running.
 */
export async function measureMemory(config: BenchConfig, profiles: ProfileLog): Promise<Figure[]> {
  const { nodes, watchers, holdMs } = config.memory;
  const dataDir = mkdtempSync(join(tmpdir(), "drover-bench-memory-"));
  const store = openSqliteStore(dataDir, MIGRATIONS_DIR);
  await seedNodes(store, [
    { version: 1, count: nodes / 2 },
    { version: 2, count: nodes / 2 },
  ]);
  await store.close();
  const server = await ServerProcess.start({
    dataDir,
    args: ["--parallelism", "256", "--mock-latency", "500ms..2s"],
    profileDir: config.profileDir,
  });
  const stopWatching = new AbortController();
  // Every watcher listens to it.
  setMaxListeners(0, stopWatching.signal);
  try {
    const client = server.client();
    const { maxSurge, maxUnavailable } = config.plan;
    const graph = (await client.setSpec({ group: BENCH_GROUP, count: nodes, version: 2, maxSurge, maxUnavailable })).graph!;
    // A watcher has its whole snapshot (every page) once its first events arrive: they follow it.
    let caughtUp = 0;
    let allCaughtUp!: () => void;
    const snapshotsTaken = new Promise<void>((resolve) => (allCaughtUp = resolve));
    if (watchers === 0) allCaughtUp();
    const streams = Array.from({ length: watchers }, () => {
      let following = false;
      return rawWatchGraph(
        server.rawClient(),
        { graphId: graph.id, group: BENCH_GROUP },
        {
          onEvents: (count) => {
            if (following || count === 0) return;
            following = true;
            if (++caughtUp === watchers) allCaughtUp();
          },
        },
        stopWatching.signal,
      ).catch(() => undefined);
    });
    await snapshotsTaken;
    let peakSampled = 0;
    for (const until = Date.now() + holdMs; Date.now() < until; ) {
      peakSampled = Math.max(peakSampled, server.residentBytes());
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const held = server.residentBytes();
    const peak = server.peakResidentBytes();
    const progress = (await client.listGraphs({ group: BENCH_GROUP, limit: 1 })).graphs[0]!;
    if (progress.id !== graph.id || progress.counts!.succeeded >= graph.tasks.length) throw new Error("the graph was not running throughout");
    stopWatching.abort();
    await Promise.all(streams);
    await profiles.stop(server, "memory");
    return [
      {
        key: "memory.peak_mb",
        label: `Memory: peak RSS, ${nodes.toLocaleString("en-US")} nodes, running ${graph.tasks.length.toLocaleString("en-US")}-task graph, ${watchers} watchers`,
        unit: "MB",
        value: peak / MB,
        runs: [peak / MB],
        goal: { comparison: "at most", target: 300 },
        note: `VmHWM; RSS after ${holdMs / 1000} s running: ${(held / MB).toFixed(0)} MB; every watcher took a full snapshot and caught up first`,
      },
    ];
  } finally {
    stopWatching.abort();
    await server.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
