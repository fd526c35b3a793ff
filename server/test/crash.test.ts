import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, it } from "node:test";
import Database from "better-sqlite3";
import { type DroverServiceClient, GraphState, NodeState, isSettled } from "@drover/shared";
import { FAILPOINTS } from "../src/failpoints.js";
import { seededRandom } from "../src/clock.js";
import { freePort, startServer, waitUntilServing } from "./processes.js";
import { drain, eventually, temporaryDataDir } from "./support.js";

/**
 * Crash safety: a server killed at any instant (a named failpoint, or SIGKILL at a random
 * moment) and started again on the same data dir finishes every unfinished graph, with no
 * node started twice, none lost, none left starting or stopping, and an event log without
 * gaps or duplicates.
 */

/** The specs a scenario goes through: scale up, a rolling replacement with surge, a scale down. */
const SCENARIO = [
  { count: 4, version: 1 },
  { count: 4, version: 2, maxSurge: 1, maxUnavailable: 1 },
  { count: 2, version: 2 },
];

const SERVER_FLAGS = ["--mock-latency", "5ms..20ms", "--parallelism", "3", "--retry-backoff", "5ms..20ms", "--log-level", "error"];

/** Applies each spec of the scenario and waits for its graph; stops at the first error (the server died). */
async function runScenario(client: DroverServiceClient): Promise<void> {
  for (const spec of SCENARIO) {
    const response = await client.setSpec(spec, { signal: AbortSignal.timeout(10_000) });
    if (response.graph) await drain(client.watchGraph({ graphId: response.graph.id }, { signal: AbortSignal.timeout(20_000) }));
  }
}

/** Waits until no graph of the group is unsettled, then checks the nodes match the stored spec exactly. */
async function expectConverged(client: DroverServiceClient, what: string) {
  await eventually(async () => {
    const graphs = (await client.listGraphs({ limit: 1000 })).graphs;
    return graphs.every((graph) => isSettled(graph.state)) ? true : undefined;
  }, `every graph settled (${what})`);
  const { nodes, spec } = await client.listNodes({});
  if (!spec) {
    assert.equal(nodes.length, 0, `${what}: nodes exist although no revision was stored`);
    return;
  }
  const latest = (await client.listGraphs({ limit: 1 })).graphs[0];
  if (latest && latest.state !== GraphState.GRAPH_STATE_SUCCEEDED) {
    // A cancelled graph leaves its nodes as they are; the next pass (or update) takes it from there.
    assert.ok([GraphState.GRAPH_STATE_CANCELLED, GraphState.GRAPH_STATE_SUPERSEDED].includes(latest.state), `${what}: latest graph ${latest.state}`);
    return;
  }
  assert.deepEqual(
    nodes.map((node) => [node.state, node.version]),
    Array.from({ length: spec.count }, () => [NodeState.NODE_STATE_RUNNING, spec.version]),
    `${what}: the live nodes are exactly the spec's`,
  );
}

/** Reads the database directly: the event log has no gaps and no repeated task transition; no node was started twice. */
function expectConsistentLog(dataDir: string, what: string) {
  const db = new Database(join(dataDir, "drover.db"), { readonly: true });
  try {
    const sequences = db.prepare("SELECT sequence FROM events ORDER BY sequence").pluck().all() as number[];
    assert.deepEqual(sequences, sequences.map((_, i) => i + 1), `${what}: event sequence numbers have no gaps`);
    const repeated = db
      .prepare(`SELECT graph_id, task_id, state, attempt, COUNT(*) AS n FROM events WHERE type = 'task'
        GROUP BY graph_id, task_id, state, attempt HAVING n > 1`)
      .all();
    assert.deepEqual(repeated, [], `${what}: no task transition is logged twice`);
    const sharedNodes = db
      .prepare(`SELECT node_id, COUNT(*) AS n FROM tasks WHERE action = 'start_node' AND node_id IS NOT NULL GROUP BY node_id HAVING n > 1`)
      .all();
    assert.deepEqual(sharedNodes, [], `${what}: no node was made by two start tasks`);
    const orphans = db.prepare(`SELECT id FROM nodes WHERE id NOT IN (SELECT node_id FROM tasks WHERE action = 'start_node' AND node_id IS NOT NULL)`).all();
    assert.deepEqual(orphans, [], `${what}: every node was made by a start task that still names it`);
    const stuck = db.prepare(`SELECT id, state FROM nodes WHERE state IN ('starting', 'stopping')`).all();
    assert.deepEqual(stuck, [], `${what}: no node is left starting or stopping`);
  } finally {
    db.close();
  }
}

/** Runs the scenario on a server that dies (by `kill` or a failpoint), restarts it, and checks everything. */
async function crashAndRecover(what: string, dataDir: string, options: { failpoint?: string; killAfterMs?: number }) {
  const port = await freePort();
  const args = ["--data-dir", dataDir, "--listen", `127.0.0.1:${port}`, ...SERVER_FLAGS];
  const doomed = startServer(args, options.failpoint ? { DROVER_FAILPOINT: options.failpoint } : {});
  const client = await waitUntilServing(port, dataDir);
  if (options.killAfterMs !== undefined) setTimeout(() => doomed.child.kill("SIGKILL"), options.killAfterMs);
  await runScenario(client).catch(() => undefined);
  if (options.failpoint) {
    const exited = await doomed.exited;
    assert.equal(exited.signal, "SIGKILL", `${what}: the failpoint was reached (${exited.stderr.trim()})`);
  } else {
    doomed.child.kill("SIGKILL");
    await doomed.exited;
  }

  const revived = startServer(args);
  try {
    const again = await waitUntilServing(port, dataDir);
    await expectConverged(again, `${what}, after the restart`);
    await runScenario(again);
    await expectConverged(again, `${what}, after the scenario ran again`);
    const { nodes } = await again.listNodes({});
    assert.equal(new Set(nodes.map((node) => node.id)).size, nodes.length);
  } finally {
    revived.child.kill("SIGTERM");
    assert.equal((await revived.exited).code, 0, `${what}: the revived server shut down cleanly`);
  }
  expectConsistentLog(dataDir, what);
}

describe("crash safety", { timeout: 300_000 }, () => {
  for (const failpoint of FAILPOINTS) {
    for (const hit of [1, 3]) {
      it(`recovers from a crash at ${failpoint} (hit ${hit})`, async (t) => {
        await crashAndRecover(`${failpoint}:${hit}`, temporaryDataDir(t), { failpoint: `${failpoint}:${hit}` });
      });
    }
  }

  const iterations = Number(process.env.DROVER_CRASH_ITERATIONS ?? 4);
  const random = seededRandom(Number(process.env.DROVER_CRASH_SEED ?? 20261122));
  for (let i = 0; i < iterations; i++) {
    const killAfterMs = Math.floor(random() * 400);
    it(`recovers from SIGKILL ${killAfterMs}ms into the scenario (${i + 1} of ${iterations})`, async (t) => {
      await crashAndRecover(`SIGKILL after ${killAfterMs}ms`, temporaryDataDir(t), { killAfterMs });
    });
  }
});
