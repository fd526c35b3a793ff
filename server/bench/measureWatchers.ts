import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import type { BenchConfig } from "./BenchConfig.js";
import { type Figure, LatencyHistogram } from "./Figure.js";
import type { ProfileLog } from "./profileSummary.js";
import { rawWatchGraph, type WatchOutcome } from "./rawWatchGraph.js";
import { BENCH_GROUP } from "./seedDataDir.js";
import { ServerProcess } from "./ServerProcess.js";

/**
 * Figure 5, many watchers: `watchers` clients, each on its own connection, watch one graph
 * (a scale-up of `tasks` nodes with the simulated driver's latency). The graph is paused as
 * soon as it is stored, every watcher takes its snapshot, and then the graph resumes, so
 * every event after that is delivered live. Each watcher must get every event of the graph
 * after its snapshot (checked against the server's event log); the lag of each delivery is
 * the time it was received minus the time the server committed the event.
 */
export async function measureWatchers(config: BenchConfig, profiles: ProfileLog): Promise<Figure[]> {
  const { watchers, tasks, latency, parallelism } = config.watchers;
  const dataDir = mkdtempSync(join(tmpdir(), "drover-bench-watchers-"));
  const server = await ServerProcess.start({
    dataDir,
    args: ["--parallelism", String(parallelism), "--mock-latency", `${latency.min}ms..${latency.max}ms`],
    profileDir: config.profileDir,
  });
  try {
    const client = server.client();
    const graphId = (await client.setSpec({ group: BENCH_GROUP, count: tasks, version: 1 })).graph!.id;
    await client.pauseGraph({ graphId });
    // Running tasks finish; then the graph is quiet until it resumes.
    while ((await client.getGraph({ graphId })).graph!.counts!.running > 0) await new Promise((resolve) => setTimeout(resolve, 50));

    const lag = new LatencyHistogram();
    const snapshotSequences: number[] = new Array<number>(watchers).fill(-1);
    let snapshots = 0;
    let allSnapshots!: () => void;
    const snapshotsTaken = new Promise<void>((resolve) => (allSnapshots = resolve));
    const streams: Promise<WatchOutcome | Error>[] = [];
    for (let watcher = 0; watcher < watchers; watcher++) {
      const stream = rawWatchGraph(
        server.rawClient(),
        { graphId, group: BENCH_GROUP },
        {
          decodeEvents: true,
          onSnapshot: (sequence) => {
            snapshotSequences[watcher] = sequence;
            if (++snapshots === watchers) allSnapshots();
          },
          onEvents: (_count, events, receivedAt) => {
            for (const event of events) lag.add(receivedAt - event.time);
          },
        },
      );
      streams.push(stream.catch((error: Error) => error));
    }
    await snapshotsTaken;

    const clientDelay = monitorEventLoopDelay({ resolution: 10 });
    clientDelay.enable();
    const serverCpu = server.cpuSeconds();
    const benchCpu = process.cpuUsage();
    const resumed = performance.now();
    await client.resumeGraph({ graphId });
    const outcomes = await Promise.all(streams);
    const seconds = (performance.now() - resumed) / 1000;
    clientDelay.disable();
    const serverBusy = (server.cpuSeconds() - serverCpu) / seconds;
    const benchUsage = process.cpuUsage(benchCpu);
    const benchBusy = (benchUsage.user + benchUsage.system) / 1e6 / seconds;

    const db = server.openDatabase();
    const eventsAfter = db.prepare(`SELECT COUNT(*) FROM events WHERE graph_id = ? AND sequence > ?`).pluck();
    let complete = 0;
    let delivered = 0;
    outcomes.forEach((outcome, watcher) => {
      if (outcome instanceof Error) return;
      delivered += outcome.events;
      if (outcome.events === (eventsAfter.get(graphId, snapshotSequences[watcher]) as number)) complete++;
    });
    db.close();
    await profiles.stop(server, `${watchers} watchers`);

    const failed = outcomes.filter((outcome) => outcome instanceof Error) as Error[];
    const failures = failed.length > 0 ? `; ${failed.length} streams failed, first: ${failed[0]!.message}` : "";
    const shared = `${tasks.toLocaleString("en-US")}-task graph, latency ${latency.min}–${latency.max} ms, parallelism ${parallelism}`;
    return [
      {
        key: "stream.watchers_complete",
        label: `Streaming: ${watchers.toLocaleString("en-US")} watchers that got every event`,
        unit: "watchers",
        value: complete,
        runs: [complete],
        goal: { comparison: "at least", target: watchers },
        note: `${shared}; ${Math.round(delivered / seconds).toLocaleString("en-US")} deliveries/s over ${seconds.toFixed(1)} s${failures}`,
      },
      {
        key: "stream.lag_p50_ms",
        label: `Streaming: ${watchers.toLocaleString("en-US")} watchers, commit → delivery p50`,
        unit: "ms",
        value: lag.quantile(0.5),
        runs: [lag.quantile(0.5)],
        note: `${lag.count.toLocaleString("en-US")} deliveries`,
      },
      {
        key: "stream.lag_p99_ms",
        label: `Streaming: ${watchers.toLocaleString("en-US")} watchers, commit → delivery p99`,
        unit: "ms",
        value: lag.quantile(0.99),
        runs: [lag.quantile(0.99)],
        goal: { comparison: "at most", target: 100 },
        note:
          `server CPU ${(100 * serverBusy).toFixed(0)}% of a core, the watchers' process ${(100 * benchBusy).toFixed(0)}%; ` +
          `its event-loop delay p99 ${(clientDelay.percentile(99) / 1e6).toFixed(0)} ms (included)`,
      },
    ];
  } finally {
    await server.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
