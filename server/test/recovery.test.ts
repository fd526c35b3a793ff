/**
 * Calls that arrive while a restarted server is still recovering (issue 11, review finding):
 * the API serves before recovery has resumed every group, so an update, a cancel or a pause
 * can reach a group whose unsettled graph recovery is about to resume. Each must find the
 * group as recovery leaves it, never the other way round: one graph runs per group, at the
 * newest revision, and a graph that was superseded or cancelled never runs again. And a
 * SIGTERM while recovery is held up stops the server as cleanly as at any other time.
 *
 * Recovery is held up for real with the delay point `recovery.before-resume` (see
 * failpoints.ts): the server runs as a child process, on a real SQLite file.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, it } from "node:test";
import Database from "better-sqlite3";
import { type DroverServiceClient, GraphState, NodeState, isSettled } from "@drover/shared";
import { freePort, startServer, waitUntilServing } from "./processes.js";
import { drain, eventually, expectConsistentLog, temporaryDataDir } from "./support.js";

/** Starts and stops slow enough that a graph of 6 starts is still running a moment after its first nodes are up. */
const FLAGS = ["--mock-latency", "150ms..250ms", "--parallelism", "2", "--retry-backoff", "5ms..20ms", "--log-level", "warn"];
/** How long recovery waits before it resumes the graph: long enough for a call to arrive inside it. */
const RECOVERY_DELAY_MS = 3000;
const TIMEOUT = { timeout: 120_000 };

/**
 * Runs a server that starts a rollout to 6 × v1 and is stopped (SIGTERM) while it runs, so the
 * graph is left unsettled for the next start. Returns the server's arguments and the graph.
 */
async function leaveGraphUnsettled(dataDir: string): Promise<{ args: string[]; graphId: string }> {
  const args = ["--data-dir", dataDir, "--listen", `127.0.0.1:${await freePort()}`, ...FLAGS];
  const first = startServer(args);
  try {
    const client = await waitUntilServing(portOf(args), dataDir);
    const { graph } = await client.setSpec({ count: 6, version: 1 });
    await eventually(async () => {
      const running = (await client.listNodes({})).nodes.filter((node) => node.state === NodeState.NODE_STATE_RUNNING);
      return running.length >= 2 ? true : undefined;
    }, "two nodes are up");
    first.child.kill("SIGTERM");
    const exited = await first.exited;
    assert.equal(exited.code, 0, exited.stderr);
    return { args, graphId: graph!.id };
  } finally {
    first.child.kill("SIGKILL");
  }
}

function portOf(args: string[]): number {
  return Number(args[args.indexOf("--listen") + 1]!.split(":")[1]);
}

/** A server on the data dir whose recovery waits RECOVERY_DELAY_MS before it resumes a group's graph. */
function startHeldUp(args: string[]) {
  return startServer(args, { DROVER_FAILPOINT: `recovery.before-resume=sleep(${RECOVERY_DELAY_MS})` });
}

/** Resolves once a server spawned at `spawned` is past its held-up recovery, its pass, and the first tasks a run resumed by mistake would start. */
function pastRecovery(spawned: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, spawned + RECOVERY_DELAY_MS + 1500 - Date.now()));
}

/** The group's graphs that are not settled, as the API lists them. */
async function unsettledGraphs(client: DroverServiceClient) {
  return (await client.listGraphs({ limit: 1000 })).graphs.filter((graph) => !isSettled(graph.state));
}

/** The ids of the unsettled graphs, sampled every 20 ms until `until` settles (one last sample after). */
async function sampleUnsettled(client: DroverServiceClient, until: Promise<unknown>): Promise<string[][]> {
  let done = false;
  void until.finally(() => (done = true));
  const samples: string[][] = [];
  for (;;) {
    const last = done;
    samples.push((await unsettledGraphs(client)).map((graph) => graph.id).sort());
    if (last) return samples;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * Reads the database directly: the tasks of `graphId` that first started after `laterGraphId`
 * was stored. (A start under way when a server stopped is finished by the next, superseded
 * or not, so that no node is left half-started: its second attempt is not a new start.)
 */
function tasksStartedAfter(dataDir: string, graphId: string, laterGraphId: string) {
  const db = new Database(join(dataDir, "drover.db"), { readonly: true });
  try {
    return db
      .prepare(`SELECT task_id, attempt FROM events WHERE graph_id = ? AND type = 'task' AND state = 'running' AND attempt = 1
        AND sequence > (SELECT MIN(sequence) FROM events WHERE graph_id = ?)`)
      .all(graphId, laterGraphId);
  } finally {
    db.close();
  }
}

/** Reads the database directly: the graph's state, and its events after the one that settled it. */
function afterSettling(dataDir: string, graphId: string) {
  const db = new Database(join(dataDir, "drover.db"), { readonly: true });
  try {
    const state = db.prepare("SELECT state FROM graphs WHERE id = ?").pluck().get(graphId) as string;
    const settledAt = db
      .prepare(`SELECT MIN(sequence) FROM events WHERE graph_id = ? AND type = 'graph' AND state IN ('succeeded', 'failed', 'cancelled', 'superseded')`)
      .pluck()
      .get(graphId) as number | null;
    const later = db.prepare("SELECT type, task_id, state FROM events WHERE graph_id = ? AND sequence > ? ORDER BY sequence").all(graphId, settledAt ?? Infinity);
    return { state, later };
  } finally {
    db.close();
  }
}

/** Reads the database directly: nodes of `version` made after the group's `revision` was stored. */
function nodesStartedSince(dataDir: string, revision: number, version: number) {
  const db = new Database(join(dataDir, "drover.db"), { readonly: true });
  try {
    return db
      .prepare(`SELECT id, state FROM nodes WHERE version = ? AND created_at >= (SELECT created_at FROM spec_revisions WHERE group_name = 'default' AND revision = ?)`)
      .all(version, revision);
  } finally {
    db.close();
  }
}

/** Stops the server with SIGTERM and expects a clean exit (a test that failed before kills it in its `finally`). */
async function stopCleanly(server: ReturnType<typeof startServer>, what: string) {
  server.child.kill("SIGTERM");
  const exited = await server.exited;
  assert.equal(exited.code, 0, `${what}: the server shut down cleanly (${exited.stderr.trim()})`);
}

describe("calls that arrive while the server recovers", () => {
  it("an update sent during recovery waits for the group's recovery, then supersedes the resumed graph: one graph runs, at the newest revision", TIMEOUT, async (t) => {
    const dataDir = temporaryDataDir(t);
    const { args, graphId: resumed } = await leaveGraphUnsettled(dataDir);
    const spawned = Date.now();
    const server = startHeldUp(args);
    let newest = "";
    try {
      // Reads and watches answer during recovery (waitUntilServing's own read is the first).
      const client = await waitUntilServing(portOf(args), dataDir);
      assert.ok(!isSettled((await client.getGraph({ graphId: resumed })).graph!.state), "the graph left behind is unsettled while recovery is held up");
      for await (const message of client.watchGraph({ graphId: resumed })) {
        assert.equal(message.snapshot?.id, resumed, "a watch gets its snapshot during recovery");
        break;
      }
      const sent = Date.now();
      let answeredAt: number | undefined;
      const update = client.setSpec({ count: 4, version: 2, maxSurge: 1, maxUnavailable: 1 }).finally(() => (answeredAt = Date.now()));
      await client.listNodes({});
      const readWhileWaiting = answeredAt === undefined;
      const answered = await update;
      assert.equal(answered.revision, 2);
      newest = answered.graph!.id;

      const settled = drain(client.watchGraph({ graphId: newest }, { signal: AbortSignal.timeout(60_000) }));
      // Watched past recovery's end, when a graph resumed behind the update's back would show.
      const samples = await sampleUnsettled(client, Promise.all([settled, pastRecovery(spawned)]));
      // The superseded graph may still be settling (its starts under way being abandoned) beside the new one.
      for (const sample of samples) assert.ok(sample.every((id) => id === resumed || id === newest), `only the two graphs: ${sample.join(", ")}`);
      const gone = samples.findIndex((sample) => !sample.includes(resumed));
      assert.ok(gone >= 0 && samples.slice(gone).every((sample) => !sample.includes(resumed)), "the superseded graph, once settled, never runs again");
      assert.deepEqual(samples.at(-1), [], "nothing runs at the end");
      const graph = (await client.getGraph({ graphId: newest })).graph!;
      assert.equal(graph.state, GraphState.GRAPH_STATE_SUCCEEDED);
      assert.equal(graph.revision, 2);
      await eventually(async () => {
        const nodes = (await client.listNodes({})).nodes;
        const converged = nodes.length === 4 && nodes.every((node) => node.state === NodeState.NODE_STATE_RUNNING && node.version === 2);
        return converged && (await unsettledGraphs(client)).length === 0 ? true : undefined;
      }, "the group is 4 × v2 with nothing running");
      assert.equal(answered.supersededGraphId, resumed, "the update superseded the graph recovery resumed");
      assert.ok(answeredAt! - sent >= RECOVERY_DELAY_MS / 3, `the update waited for the group's recovery (answered after ${answeredAt! - sent} ms)`);
      assert.ok(readWhileWaiting, "a read answered while the update waited");
      await stopCleanly(server, "held-up server");
    } finally {
      server.child.kill("SIGKILL");
    }
    const left = afterSettling(dataDir, resumed);
    assert.deepEqual(nodesStartedSince(dataDir, 2, 1), [], "no v1 node was started once revision 2 was stored");
    assert.deepEqual(left.later, [], "nothing of the superseded graph ran after it was superseded");
    assert.deepEqual(tasksStartedAfter(dataDir, resumed, newest), [], "no task of the superseded graph started once the update's graph was stored");
    assert.equal(left.state, "superseded", "the resumed graph stays superseded");
    expectConsistentLog(dataDir, "update during recovery");
  });

  it("a cancel sent during recovery is not undone: the graph stays cancelled and none of its tasks runs again", TIMEOUT, async (t) => {
    const dataDir = temporaryDataDir(t);
    const { args, graphId } = await leaveGraphUnsettled(dataDir);
    const spawned = Date.now();
    const server = startHeldUp(args);
    try {
      const client = await waitUntilServing(portOf(args), dataDir);
      const { graph } = await client.cancelGraph({ graphId });
      assert.equal(graph!.state, GraphState.GRAPH_STATE_CANCELLED);
      await pastRecovery(spawned);
      assert.deepEqual(await unsettledGraphs(client), [], "no graph runs: a cancelled rollout stays where it is");
      await stopCleanly(server, "held-up server");
    } finally {
      server.child.kill("SIGKILL");
    }
    const left = afterSettling(dataDir, graphId);
    assert.equal(left.state, "cancelled");
    assert.deepEqual(left.later, [], "nothing of the cancelled graph ran after it was cancelled");
    expectConsistentLog(dataDir, "cancel during recovery");
  });

  it("a pause sent during recovery pauses the graph recovery resumes, instead of saying it is not running", TIMEOUT, async (t) => {
    const dataDir = temporaryDataDir(t);
    const { args, graphId } = await leaveGraphUnsettled(dataDir);
    const server = startHeldUp(args);
    try {
      const client = await waitUntilServing(portOf(args), dataDir);
      const { graph } = await client.pauseGraph({ graphId });
      assert.equal(graph!.state, GraphState.GRAPH_STATE_PAUSED);
      await client.resumeGraph({ graphId });
      await drain(client.watchGraph({ graphId }, { signal: AbortSignal.timeout(60_000) }));
      assert.equal((await client.getGraph({ graphId })).graph!.state, GraphState.GRAPH_STATE_SUCCEEDED);
      await stopCleanly(server, "held-up server");
    } finally {
      server.child.kill("SIGKILL");
    }
    expectConsistentLog(dataDir, "pause during recovery");
  });

  it("SIGTERM while recovery is held up shuts the server down cleanly (exit 0), and the next start finishes the graph", TIMEOUT, async (t) => {
    const dataDir = temporaryDataDir(t);
    const { args, graphId } = await leaveGraphUnsettled(dataDir);
    const held = startServer(args, { DROVER_FAILPOINT: "recovery.before-resume=sleep(600000)" });
    try {
      await waitUntilServing(portOf(args), dataDir);
      const stopping = Date.now();
      held.child.kill("SIGTERM");
      const exited = await held.exited;
      assert.equal(exited.code, 0, `exit 0, as a SIGTERM at any other time (${exited.stderr.trim()})`);
      assert.equal(exited.stderr, "", "nothing on stderr");
      assert.ok(Date.now() - stopping < 10_000, "without waiting for recovery's delay");
    } finally {
      held.child.kill("SIGKILL");
    }
    const next = startServer(args);
    try {
      const client = await waitUntilServing(portOf(args), dataDir);
      await drain(client.watchGraph({ graphId }, { signal: AbortSignal.timeout(60_000) }));
      assert.equal((await client.getGraph({ graphId })).graph!.state, GraphState.GRAPH_STATE_SUCCEEDED, "the graph resumed and finished");
      const nodes = (await client.listNodes({})).nodes;
      assert.equal(nodes.filter((node) => node.state === NodeState.NODE_STATE_RUNNING && node.version === 1).length, 6);
      await stopCleanly(next, "next server");
    } finally {
      next.child.kill("SIGKILL");
    }
    expectConsistentLog(dataDir, "SIGTERM during recovery");
  });
});
