import assert from "node:assert/strict";
import { join } from "node:path";
import Database from "better-sqlite3";
import { describe, it } from "node:test";
import { type DroverServiceClient, GraphState, HealthCheckType, NodeState, isSettled } from "@drover/shared";
import { FAILPOINTS } from "../src/failpoints.js";
import { seededRandom } from "../src/clock.js";
import { findProcessesByEnvironment } from "../src/drivers/procfs.js";
import { CHAT_EXAMPLE } from "../src/templates.js";
import { freePort, freePortWindow, startServer, waitUntilServing } from "./processes.js";
import { drain, eventually, expectConsistentLog, temporaryDataDir, unlessNotFound } from "./support.js";

/**
 * Crash safety: a server killed at any instant (a named failpoint, or SIGKILL at a random
 * moment of a rolling update, a rollback, a cancel, or a rollout of real processes) and
 * started again on the same data dir finishes every unfinished graph and converges to the
 * group's last spec, with no node started twice, none lost, none left starting or stopping,
 * an event log without gaps or duplicates, and (real processes) exactly one live process
 * per live node and no other.
 *
 * Every random choice comes from one seed: DROVER_CRASH_SEED, or a new one printed at the
 * start, so that a failure can be replayed with `make crash-test DROVER_CRASH_SEED=<seed>`.
 * DROVER_CRASH_ITERATIONS is how many random kills of each kind run (`make test`: 2).
 */

const SEED = crashSeed(process.env.DROVER_CRASH_SEED);
const ITERATIONS = Number(process.env.DROVER_CRASH_ITERATIONS ?? 2);
process.stdout.write(`crash test seed ${SEED} (replay: make crash-test DROVER_CRASH_SEED=${SEED})\n`);

function crashSeed(setting: string | undefined): number {
  if (setting === undefined || setting === "") return Math.floor(Math.random() * 2 ** 32);
  const seed = Number(setting);
  if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`DROVER_CRASH_SEED ${JSON.stringify(setting)} must be a non-negative integer`);
  return seed;
}

/** The specs a scenario goes through: scale up, a rolling replacement with surge, a scale down. */
const SCENARIO = [
  { count: 4, version: 1 },
  { count: 4, version: 2, maxSurge: 1, maxUnavailable: 1 },
  { count: 2, version: 2 },
];

const MOCK_FLAGS = ["--mock-latency", "5ms..20ms", "--parallelism", "3", "--retry-backoff", "5ms..20ms", "--log-level", "error"];
/** Slower starts and stops, so that a rollback or a cancel takes long enough (about 300 ms) to be killed in. */
const SLOW_MOCK_FLAGS = ["--mock-latency", "20ms..60ms", "--parallelism", "3", "--retry-backoff", "5ms..20ms", "--log-level", "error"];
const WATCH_TIMEOUT_MS = 30_000;

async function settle(client: DroverServiceClient, graphId: string | undefined): Promise<void> {
  if (graphId) await drain(client.watchGraph({ graphId }, { signal: AbortSignal.timeout(WATCH_TIMEOUT_MS) }));
}

async function update(client: DroverServiceClient, spec: { count: number; version: number; maxSurge?: number; maxUnavailable?: number }) {
  const { graph } = await client.setSpec(spec, { signal: AbortSignal.timeout(10_000) });
  await settle(client, graph?.id);
}

/** Applies each spec of the scenario and waits for its graph; stops at the first error (the server died). */
async function runScenario(client: DroverServiceClient): Promise<void> {
  for (const spec of SCENARIO) await update(client, spec);
}

/** What one kind of crash does: what happens before the kill (not killed), and what the kill interrupts. */
interface CrashKind {
  /** Flags of both server starts, beyond the data dir and the address. */
  flags: (dataDir: string) => Promise<string[]>;
  /** Done before the kill is armed. */
  prepare?: (client: DroverServiceClient, dataDir: string) => Promise<void>;
  /** Interrupted by the kill. */
  act: (client: DroverServiceClient) => Promise<void>;
  /** Invariants beyond the nodes and the log, checked after the group converged. */
  check?: (client: DroverServiceClient, dataDir: string, what: string) => Promise<void>;
  /** Before the revived server stops (with real processes: scale to zero, so none is left behind). */
  finish?: (client: DroverServiceClient) => Promise<void>;
  /** Node processes still alive once the revived server stopped; killed after the test, whatever happened. */
  leftovers?: (dataDir: string) => number[];
}

const rollingUpdate: CrashKind = {
  flags: async () => MOCK_FLAGS,
  act: runScenario,
  // The server still does every kind of step after a crash.
  finish: async (client) => {
    await runScenario(client);
    await expectConverged(client, "after the scenario ran again");
  },
};

/** Revisions 1 (4 × v1) and 2 (4 × v2) reached, then a rollback to revision 1 is killed. */
const rollback: CrashKind = {
  flags: async () => SLOW_MOCK_FLAGS,
  prepare: async (client) => {
    await update(client, { count: 4, version: 1 });
    await update(client, { count: 4, version: 2, maxSurge: 1, maxUnavailable: 1 });
  },
  act: async (client) => {
    const { update: stored } = await client.rollback({ revision: 0 }, { signal: AbortSignal.timeout(10_000) });
    await settle(client, stored?.graph?.id);
  },
};

/** 3 × v1 reached, then a rolling update to 6 × v2 that is cancelled part-way, around the kill. */
function cancel(cancelAfterMs: number): CrashKind {
  return {
    flags: async () => SLOW_MOCK_FLAGS,
    prepare: async (client) => update(client, { count: 3, version: 1 }),
    act: async (client) => {
      const { graph } = await client.setSpec({ count: 6, version: 2, maxSurge: 1, maxUnavailable: 0 }, { signal: AbortSignal.timeout(10_000) });
      await new Promise((resolve) => setTimeout(resolve, cancelAfterMs));
      await client.cancelGraph({ graphId: graph!.id }, { signal: AbortSignal.timeout(10_000) });
    },
  };
}

/** The environment variable that marks this test's node processes: its value is the data dir. */
const PROCESS_MARK = "DROVER_CRASH_TEST_DATA_DIR";

/** Real processes (the chat example, checked every 100 ms): 2 × v1 reached, then a rollout to 3 × v2 is killed. */
const processes: CrashKind = {
  flags: async () => {
    const ports = await freePortWindow(12);
    return ["--driver", "process", "--port-range", `${ports.first}..${ports.last}`, "--min-ready", "0", "--parallelism", "3", "--log-level", "error"];
  },
  prepare: async (client, dataDir) => {
    await client.setTemplate({
      template: {
        command: process.execPath,
        args: [CHAT_EXAMPLE],
        env: { [PROCESS_MARK]: dataDir },
        healthCheck: { type: HealthCheckType.HEALTH_CHECK_TYPE_HTTP, path: "/healthz", intervalMs: 100, timeoutMs: 1000, failureThreshold: 3, startTimeoutMs: 10_000 },
        stopGraceMs: 2000,
      },
    });
    await update(client, { count: 2, version: 1 });
  },
  act: (client) => update(client, { count: 3, version: 2, maxSurge: 1, maxUnavailable: 0 }),
  check: async (client, dataDir, what) => {
    const nodes = (await client.listNodes({ wide: true })).nodes;
    const nodePids = nodes.map((node) => node.stats?.pid ?? 0).sort();
    const processPids = findProcessesByEnvironment(PROCESS_MARK, dataDir).map((stat) => stat.pid).sort();
    assert.deepEqual(processPids, nodePids, `${what}: the live OS processes are exactly the live nodes' (none lost, none orphaned)`);
  },
  finish: (client) => update(client, { count: 0, version: 2 }),
  leftovers: (dataDir) => findProcessesByEnvironment(PROCESS_MARK, dataDir).map((stat) => stat.pid),
};

/**
 * Waits until no graph of the group is unsettled; then, unless the latest graph succeeded
 * (a cancelled one leaves its nodes as they are, as a paused rollout would), applies the
 * group's stored spec again as an operator would; and checks that the live nodes are then
 * exactly the spec's.
 */
async function expectConverged(client: DroverServiceClient, what: string, dataDir?: string) {
  await eventually(async () => {
    const graphs = (await unlessNotFound(client.listGraphs({ limit: 1000 })))?.graphs ?? [];
    return graphs.every((graph) => isSettled(graph.state)) ? true : undefined;
  }, `every graph settled (${what})`, WATCH_TIMEOUT_MS);
  const listed = await unlessNotFound(client.listNodes({}));
  if (!listed?.spec) {
    // No revision was stored: the group does not exist, and no node of it may either.
    if (dataDir) assert.equal(countNodeRows(dataDir), 0, `${what}: nodes exist although no revision was stored`);
    return;
  }
  const spec = listed.spec;
  const latest = (await client.listGraphs({ limit: 1 })).graphs[0];
  if (latest && latest.state !== GraphState.GRAPH_STATE_SUCCEEDED) {
    assert.ok([GraphState.GRAPH_STATE_CANCELLED, GraphState.GRAPH_STATE_SUPERSEDED].includes(latest.state), `${what}: latest graph ${latest.state}`);
    await update(client, { count: spec.count, version: spec.version, maxSurge: spec.maxSurge, maxUnavailable: spec.maxUnavailable });
  }
  const live = (await client.listNodes({})).nodes;
  assert.deepEqual(
    live.map((node) => [node.state, node.version]),
    Array.from({ length: spec.count }, () => [NodeState.NODE_STATE_RUNNING, spec.version]),
    `${what}: the live nodes are exactly the spec's`,
  );
  assert.equal(new Set(live.map((node) => node.id)).size, live.length, `${what}: no node is listed twice`);
}

/** How many node rows the database holds, read directly. */
function countNodeRows(dataDir: string): number {
  const db = new Database(join(dataDir, "drover.db"), { readonly: true });
  try {
    return db.prepare("SELECT COUNT(*) FROM nodes").pluck().get() as number;
  } finally {
    db.close();
  }
}

/** Runs a kind of crash on a server that dies (by `kill` or a failpoint), restarts it, and checks everything. */
async function crashAndRecover(what: string, dataDir: string, kind: CrashKind, death: { failpoint?: string; killAfterMs?: number }) {
  const port = await freePort();
  const args = ["--data-dir", dataDir, "--listen", `127.0.0.1:${port}`, ...(await kind.flags(dataDir))];
  try {
    const doomed = startServer(args, death.failpoint ? { DROVER_FAILPOINT: death.failpoint } : {});
    try {
      const client = await waitUntilServing(port, dataDir);
      await kind.prepare?.(client, dataDir);
      if (death.killAfterMs !== undefined) setTimeout(() => doomed.child.kill("SIGKILL"), death.killAfterMs);
      await kind.act(client).catch(() => undefined);
      if (death.failpoint) {
        const exited = await doomed.exited;
        assert.equal(exited.signal, "SIGKILL", `${what}: the failpoint was reached (${exited.stderr.trim()})`);
      }
    } finally {
      doomed.child.kill("SIGKILL");
      await doomed.exited;
    }

    const revived = startServer(args);
    try {
      const again = await waitUntilServing(port, dataDir);
      await expectConverged(again, `${what}, after the restart`, dataDir);
      await kind.check?.(again, dataDir, `${what}, after the restart`);
      await kind.finish?.(again);
    } finally {
      revived.child.kill("SIGTERM");
      assert.equal((await revived.exited).code, 0, `${what}: the revived server shut down cleanly`);
    }
    expectConsistentLog(dataDir, what);
    assert.deepEqual(kind.leftovers?.(dataDir) ?? [], [], `${what}: no node process outlived the group's scale to zero`);
  } finally {
    for (const pid of kind.leftovers?.(dataDir) ?? []) process.kill(pid, "SIGKILL");
  }
}

/** Per case: a process-driver case takes about 10 s on 2 busy cores. */
const CASE_TIMEOUT = { timeout: 120_000 };

describe(`crash safety (seed ${SEED})`, () => {
  for (const failpoint of FAILPOINTS) {
    for (const hit of [1, 3]) {
      it(`recovers from a crash at ${failpoint} (hit ${hit})`, CASE_TIMEOUT, async (t) => {
        await crashAndRecover(`${failpoint}:${hit}`, temporaryDataDir(t), rollingUpdate, { failpoint: `${failpoint}:${hit}` });
      });
    }
  }

  // Drawn in this order from the seed, so that a seed names the same cases every time.
  const random = seededRandom(SEED);
  const within = (maxMs: number) => Math.floor(random() * maxMs);
  for (let i = 1; i <= ITERATIONS; i++) {
    const of = `${i} of ${ITERATIONS}`;
    const rolloutKill = within(400);
    it(`recovers from SIGKILL ${rolloutKill}ms into a rolling update (${of})`, CASE_TIMEOUT, async (t) => {
      await crashAndRecover(`SIGKILL ${rolloutKill}ms into a rolling update`, temporaryDataDir(t), rollingUpdate, { killAfterMs: rolloutKill });
    });
    const rollbackKill = within(400);
    it(`recovers from SIGKILL ${rollbackKill}ms into a rollback (${of})`, CASE_TIMEOUT, async (t) => {
      await crashAndRecover(`SIGKILL ${rollbackKill}ms into a rollback`, temporaryDataDir(t), rollback, { killAfterMs: rollbackKill });
    });
    // Cancelled part-way, and killed from 50 ms before the cancel is sent to 150 ms after.
    const cancelAfter = 50 + within(200);
    const cancelKill = cancelAfter - 50 + within(200);
    it(`recovers from SIGKILL ${cancelKill}ms into an update cancelled after ${cancelAfter}ms (${of})`, CASE_TIMEOUT, async (t) => {
      const what = `SIGKILL ${cancelKill}ms into an update cancelled after ${cancelAfter}ms`;
      await crashAndRecover(what, temporaryDataDir(t), cancel(cancelAfter), { killAfterMs: cancelKill });
    });
    const processKill = within(800);
    it(`recovers from SIGKILL ${processKill}ms into a rollout of real processes (${of})`, CASE_TIMEOUT, async (t) => {
      await crashAndRecover(`SIGKILL ${processKill}ms into a rollout of real processes`, temporaryDataDir(t), processes, { killAfterMs: processKill });
    });
  }
});
