import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { SetSpecRequest } from "@drover/shared";
import { openSqliteStore } from "../src/store/SqliteStore.js";
import type { BenchConfig } from "./BenchConfig.js";
import { type Figure, figureOf, median } from "./Figure.js";
import type { ProfileLog } from "./profileSummary.js";
import { BENCH_GROUP, MIGRATIONS_DIR, seedNodes, seedSpec } from "./seedDataDir.js";
import { ServerProcess } from "./ServerProcess.js";

const CLIENT = fileURLToPath(new URL("../../../bin/client", import.meta.url));
const USAGE_PRELOAD = fileURLToPath(new URL("./clientUsage.js", import.meta.url));

interface ClientRun {
  /** From spawning the client to its exit, as the operator waits for it. */
  wallMs: number;
  peakMb: number;
  stdoutBytes: number;
}

/**
 * Runs the real client (bin/client, the program an operator runs) against the server, its
 * output read through a pipe as a terminal or `| less` would, and measures the whole run.
 */
async function runClient(server: ServerProcess, args: string[]): Promise<ClientRun> {
  const dir = mkdtempSync(join(tmpdir(), "drover-bench-client-"));
  try {
    const usageFile = join(dir, "usage.json");
    const started = performance.now();
    const child = spawn(CLIENT, ["--server", server.address, "--token-file", join(server.options.dataDir, "token"), ...args], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, NODE_OPTIONS: `--import=${USAGE_PRELOAD}`, DROVER_BENCH_USAGE_FILE: usageFile, XDG_CONFIG_HOME: dir },
    });
    let stdoutBytes = 0;
    let stderr = "";
    child.stdout!.on("data", (chunk: Buffer) => (stdoutBytes += chunk.length));
    child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    const [code] = (await once(child, "close")) as [number | null];
    const wallMs = performance.now() - started;
    if (code !== 0) throw new Error(`client ${args.join(" ")} exited ${code}: ${stderr.trim()}`);
    const usage = JSON.parse(readFileSync(usageFile, "utf8")) as { maxRssKib: number };
    return { wallMs, peakMb: usage.maxRssKib / 1024, stdoutBytes };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Each of `runs` runs of the client, in turn. */
async function runsOf(server: ServerProcess, args: string[], runs: number): Promise<ClientRun[]> {
  const results: ClientRun[] = [];
  for (let i = 0; i < runs; i++) results.push(await runClient(server, args));
  return results;
}

/** How long the server takes to answer the dry run alone (a bare client that does not decode it), for the notes. */
async function serverMs(server: ServerProcess, request: SetSpecRequest): Promise<number> {
  const connection = server.rawClient();
  const bytes = SetSpecRequest.encode(request).finish();
  const times: number[] = [];
  for (let i = 0; i < 3; i++) {
    const started = performance.now();
    await server.rawUnary(connection, "SetSpec", bytes);
    times.push(performance.now() - started);
  }
  return median(times);
}

const mb = (runs: ClientRun[]) => runs.map((run) => run.peakMb);
const ms = (runs: ClientRun[]) => runs.map((run) => run.wallMs);
const count = (value: number) => value.toLocaleString("en-US");

/**
 * Issue 12's figure: the client's own cost of showing a large plan. `update N 2 --dry-run` on
 * an empty group (N starts and a join, N + 1 tasks: what once ran out of heap) prints a
 * summary; with --full, every task. The same for a rolling update of a group of N nodes
 * (surge and unavailability as the plan figure's: 2N + 1 tasks in lanes). Wall time of the
 * whole client process (Node's start, the call, decoding, printing into a pipe) and its peak
 * resident memory; the linearity check is --full's time at N against N / 10.
 */
export async function measureClient(config: BenchConfig, profiles: ProfileLog): Promise<Figure[]> {
  const { nodes, smallNodes, runs } = config.client;
  const { maxSurge, maxUnavailable } = config.plan;
  const dataDir = mkdtempSync(join(tmpdir(), "drover-bench-client-"));
  const store = openSqliteStore(dataDir, MIGRATIONS_DIR);
  await seedNodes(store, [{ version: 1, count: nodes }]);
  await seedSpec(store, { count: nodes, version: 1, maxSurge, maxUnavailable });
  await store.close();
  const server = await ServerProcess.start({ dataDir, args: [], profileDir: config.profileDir });
  try {
    const scaleUp = (count: number, ...flags: string[]) => ["--group", "empty", "update", String(count), "2", "--dry-run", ...flags];
    const rolling = (...flags: string[]) => ["--group", BENCH_GROUP, "update", String(nodes), "2", "--max-surge", String(maxSurge), "--max-unavailable", String(maxUnavailable), "--dry-run", ...flags];
    // First, and so also the server's warm-up: its first dry runs are slower (code not yet compiled).
    const scaleUpServer = await serverMs(server, SetSpecRequest.fromPartial({ group: "empty", count: nodes, version: 2, dryRun: true }));
    const rollingServer = await serverMs(server, SetSpecRequest.fromPartial({ group: BENCH_GROUP, count: nodes, version: 2, maxSurge, maxUnavailable, dryRun: true }));
    const summary = await runsOf(server, scaleUp(nodes), runs);
    const full = await runsOf(server, scaleUp(nodes, "--full"), runs);
    const smallFull = await runsOf(server, scaleUp(smallNodes, "--full"), runs);
    const rollingSummary = await runsOf(server, rolling(), runs);
    const rollingFull = await runsOf(server, rolling("--full"), runs);
    await profiles.stop(server, "client");

    const tasks = `${count(nodes + 1)} tasks`;
    const rollingTasks = `${count(2 * nodes + 1)} tasks`;
    const printed = (runs: ClientRun[]) => `${count(runs[0]!.stdoutBytes)} bytes printed`;
    const answered = (serverMsValue: number) => `the server answers in ${serverMsValue.toFixed(0)} ms of it`;
    const fullRatio = median(ms(full)) / median(ms(smallFull));
    return [
      figureOf({ key: "client.summary_ms", label: `Client: update ${count(nodes)} 2 --dry-run, summary (${tasks})`, unit: "ms", goal: { comparison: "at most", target: 2_000 }, runs: ms(summary), note: `${printed(summary)}; ${answered(scaleUpServer)}` }),
      figureOf({ key: "client.summary_peak_mb", label: `Client: its peak memory`, unit: "MB", goal: { comparison: "at most", target: 200 }, runs: mb(summary) }),
      figureOf({ key: "client.full_ms", label: `Client: the same with --full, every task`, unit: "ms", runs: ms(full), note: printed(full) }),
      figureOf({ key: "client.full_peak_mb", label: `Client: its peak memory`, unit: "MB", runs: mb(full) }),
      {
        key: "client.full_ratio",
        label: `Client: --full of ${tasks} / of ${count(smallNodes + 1)} tasks, time ratio`,
        unit: "×",
        value: fullRatio,
        goal: { comparison: "at most", target: (nodes / smallNodes) * 1.2 },
        runs: [fullRatio],
        note: `linear would be at most ${count(nodes / smallNodes)} (each run starts Node, about 0.2 s, whatever its size)`,
      },
      figureOf({ key: "client.rolling_summary_ms", label: `Client: rolling update of ${count(nodes)} nodes --dry-run, summary (${rollingTasks})`, unit: "ms", runs: ms(rollingSummary), note: `${printed(rollingSummary)}; ${answered(rollingServer)}` }),
      figureOf({ key: "client.rolling_summary_peak_mb", label: `Client: its peak memory`, unit: "MB", runs: mb(rollingSummary) }),
      figureOf({ key: "client.rolling_full_ms", label: `Client: the same with --full`, unit: "ms", runs: ms(rollingFull), note: printed(rollingFull) }),
      figureOf({ key: "client.rolling_full_peak_mb", label: `Client: its peak memory`, unit: "MB", runs: mb(rollingFull) }),
    ];
  } finally {
    await server.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
