import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BenchConfig } from "./BenchConfig.js";
import { type Figure, figureOf, median } from "./Figure.js";
import { measureSqliteCeiling } from "./measureSqliteCeiling.js";
import type { ProfileLog } from "./profileSummary.js";
import { rawWatchGraph } from "./rawWatchGraph.js";
import { BENCH_GROUP } from "./seedDataDir.js";
import { ServerProcess } from "./ServerProcess.js";

interface DispatchRun {
  setSpecMs: number;
  tasksPerSecond: number;
  ceilingTasksPerSecond: number;
  oneWatcherEventsPerSecond: number;
  events: number;
}

const count = (n: number) => Math.round(n).toLocaleString("en-US");

/**
 * Figures 3 and 5 (one watcher). A real server (child process, fresh data dir, simulated
 * driver with zero latency) is asked over gRPC to scale a group from 0 to `tasks` nodes:
 * one start task per node and a final join. The rate is the graph's tasks over the time
 * from its `running` event to its `succeeded` event, both read from the server's own event
 * log, so the benchmark's client does nothing while it is measured. Then, on the same
 * server, one watcher reads the finished graph's whole event stream from the start
 * (after_sequence 0), and the raw SQLite ceiling is measured beside it.
 */
export async function measureDispatch(config: BenchConfig, profiles: ProfileLog): Promise<Figure[]> {
  const runs: DispatchRun[] = [];
  for (let run = 0; run < config.dispatch.runs; run++) runs.push(await dispatchOnce(config, profiles));
  const { tasks, parallelism } = config.dispatch;
  const rates = runs.map((run) => run.tasksPerSecond);
  const ceilings = runs.map((run) => run.ceilingTasksPerSecond);
  return [
    figureOf({
      key: "dispatch.tasks_per_s",
      label: `Dispatch: ${count(tasks + 1)}-task graph, parallelism ${parallelism}, durable`,
      unit: "tasks/s",
      runs: rates,
      goal: { comparison: "at least", target: 50_000 },
      note: "mock driver, zero latency; graph running → succeeded, from the event log",
    }),
    figureOf({
      key: "dispatch.set_spec_ms",
      label: `Dispatch: the SetSpec call that starts it`,
      unit: "ms",
      runs: runs.map((run) => run.setSpecMs),
      note: "plan + persist + launch, until the response arrives",
    }),
    figureOf({
      key: "dispatch.sqlite_ceiling_tasks_per_s",
      label: `Dispatch: raw SQLite ceiling, same row changes`,
      unit: "tasks/s",
      runs: ceilings,
      note: `8 row changes a task, ${2 * parallelism} transitions a transaction, WAL + synchronous=FULL; median of ${config.dispatch.ceilingRuns} loops a run`,
    }),
    figureOf({
      key: "dispatch.ceiling_ratio",
      label: `Dispatch: rate / raw SQLite ceiling`,
      unit: "×",
      runs: runs.map((run) => run.tasksPerSecond / run.ceilingTasksPerSecond),
      goal: { comparison: "at least", target: 0.5 },
    }),
    figureOf({
      key: "stream.one_watcher_events_per_s",
      label: `Streaming: one watcher of the ${count(tasks + 1)}-task graph`,
      unit: "events/s",
      runs: runs.map((run) => run.oneWatcherEventsPerSecond),
      goal: { comparison: "at least", target: 200_000 },
      note: `the graph's ${count(runs[0]!.events)} events, streamed from the log (after_sequence 0)`,
    }),
  ];
}

async function dispatchOnce(config: BenchConfig, profiles: ProfileLog): Promise<DispatchRun> {
  const { tasks, parallelism } = config.dispatch;
  const dataDir = mkdtempSync(join(tmpdir(), "drover-bench-dispatch-"));
  const server = await ServerProcess.start({
    dataDir,
    args: ["--parallelism", String(parallelism), "--mock-latency", "0"],
    profileDir: config.profileDir,
  });
  try {
    const client = server.client();
    const asked = performance.now();
    const response = await client.setSpec({ group: BENCH_GROUP, count: tasks, version: 1 });
    const setSpecMs = performance.now() - asked;
    const graphId = response.graph!.id;
    await server.waitForLog("graph settled", 3_600_000, (record) => record.graphId === graphId);

    const db = server.openDatabase();
    const timeOf = (state: string) =>
      db.prepare(`SELECT MIN(time) FROM events WHERE graph_id = ? AND type = 'graph' AND state = ?`).pluck().get(graphId, state) as number;
    const running = timeOf("running");
    const succeeded = timeOf("succeeded");
    if (succeeded === null) throw new Error(`graph ${graphId} did not succeed`);
    const graphEvents = db.prepare(`SELECT COUNT(*) FROM events WHERE graph_id = ?`).pluck().get(graphId) as number;
    db.close();
    const tasksPerSecond = response.graph!.tasks.length / (Math.max(1, succeeded - running) / 1000);

    const watchFrom = performance.now();
    const outcome = await rawWatchGraph(server.rawClient(), { graphId, group: BENCH_GROUP, afterSequence: 0 });
    const streamSeconds = (performance.now() - watchFrom) / 1000;
    if (outcome.events !== graphEvents) throw new Error(`the watcher got ${outcome.events} of the graph's ${graphEvents} events`);

    await profiles.stop(server, "dispatch + one watcher");
    // The ceiling swings with the disk's flush times: the median of a few loops.
    const ceilings: number[] = [];
    for (let loop = 0; loop < config.dispatch.ceilingRuns; loop++) ceilings.push((await measureSqliteCeiling(tasks, parallelism)).tasksPerSecond);
    return {
      setSpecMs,
      tasksPerSecond,
      ceilingTasksPerSecond: median(ceilings),
      oneWatcherEventsPerSecond: outcome.events / streamSeconds,
      events: graphEvents,
    };
  } finally {
    await server.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
