import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import Database from "better-sqlite3";
import { durationText, type DroverServiceClient, GraphReason, GraphState, NodeState } from "@drover/shared";
import { Status } from "nice-grpc";
import { type Clock, systemClock } from "../src/clock.js";
import { parseDuration } from "../src/config.js";
import { requireTemplate } from "../src/api/validate.js";
import type { PlannedTask } from "../src/domain.js";
import { ProcessDriver } from "../src/drivers/ProcessDriver.js";
import { Retention } from "../src/store/Retention.js";
import { DATABASE_FILE } from "../src/store/SqliteStore.js";
import type { Transition } from "../src/store/Store.js";
import { freePort, freePortWindow, nodeScript, startServer } from "./processes.js";
import { drain, eventually, expectStatus, openTestStore, silentLogger, startTestServer, temporaryDataDir } from "./support.js";

const HOUR = 3_600_000;
const WEEK = 7 * 24 * HOUR;

/** The system clock, moved forward by `advance` (the server's whole notion of now: events, settling, retention). */
function movableClock(): Clock & { advance: (milliseconds: number) => void } {
  let offset = 0;
  return { ...systemClock, now: () => Date.now() + offset, advance: (milliseconds) => (offset += milliseconds) };
}

/** Reads the server's database beside it (WAL lets a reader in while the server writes). */
function readDatabase<T>(dataDir: string, read: (db: Database.Database) => T): T {
  const db = new Database(join(dataDir, DATABASE_FILE), { readonly: true });
  try {
    return read(db);
  } finally {
    db.close();
  }
}

const eventCount = (dataDir: string, graphId: string) =>
  readDatabase(dataDir, (db) => db.prepare("SELECT COUNT(*) FROM events WHERE graph_id = ?").pluck().get(graphId) as number);

/** The sequence number a fresh node watch's snapshot reflects. */
async function nodeSnapshotSequence(client: DroverServiceClient): Promise<number> {
  const controller = new AbortController();
  const messages = client.watchNodes({}, { signal: controller.signal })[Symbol.asyncIterator]();
  const { value } = await messages.next();
  controller.abort();
  await messages.return?.(undefined).catch(() => undefined);
  return value!.sequence;
}

async function settle(client: DroverServiceClient, graphId: string) {
  await drain(client.watchGraph({ graphId }));
  return (await client.getGraph({ graphId })).graph!;
}

/**
 * A group with a week-old past and a present: revision 1 (2 × v1) with a restart of one node
 * (an operation graph), revision 2 (2 × v2), then eight days later revision 3 (3 × v2). The
 * server keeps things a week and looks for expired ones every 20 ms.
 */
async function groupWithAPast(t: { after: (fn: () => Promise<void>) => void }) {
  const clock = movableClock();
  const { client, dataDir, stop } = await startTestServer({ server: { clock, retention: { retentionMs: WEEK, intervalMs: 20 } } });
  t.after(stop);
  const first = (await client.setSpec({ count: 2, version: 1 })).graph!;
  await settle(client, first.id);
  const earlyNodeSequence = await nodeSnapshotSequence(client);
  const [restarted] = (await client.listNodes({})).nodes;
  const operation = (await client.restartNode({ nodeId: restarted!.id })).graph!;
  await settle(client, operation.id);
  const second = (await client.setSpec({ count: 2, version: 2, maxSurge: 1, maxUnavailable: 0 })).graph!;
  await settle(client, second.id);
  clock.advance(8 * 24 * HOUR);
  const current = (await client.setSpec({ count: 3, version: 2, maxSurge: 1, maxUnavailable: 0 })).graph!;
  await settle(client, current.id);
  // Retention has run over all of it once the operation graph (the one past graph that expires whole) is gone.
  await eventually(
    async () => ((await client.listGraphs({})).graphs.some((graph) => graph.id === operation.id) ? undefined : true),
    "retention deleted the week-old operation graph",
  );
  return { client, dataDir, first, operation, second, current, restarted: restarted!, earlyNodeSequence };
}

describe("retention", { timeout: 60_000 }, () => {
  it("deletes the events of graphs settled longer ago than the retention and keeps the current graph's", async (t) => {
    const { dataDir, first, second, current } = await groupWithAPast(t);
    assert.equal(eventCount(dataDir, first.id), 0, "revision 1's graph lost its events");
    assert.equal(eventCount(dataDir, second.id), 0, "revision 2's graph lost its events");
    const kept = readDatabase(dataDir, (db) =>
      db.prepare("SELECT type, task_id AS task, state FROM events WHERE graph_id = ? ORDER BY sequence").all(current.id),
    ) as { type: string; task: number | null; state: string }[];
    assert.deepEqual([kept[0], kept.at(-1)], [{ type: "graph", task: null, state: "pending" }, { type: "graph", task: null, state: "succeeded" }]);
    const settledTasks = kept.filter((event) => event.type === "task" && event.state === "succeeded").map((event) => event.task);
    assert.deepEqual(settledTasks.sort(), current.tasks.map((task) => task.id).sort(), "the current graph keeps every event");
    const oldNodeEvents = readDatabase(dataDir, (db) =>
      db.prepare("SELECT COUNT(*) FROM events WHERE type = 'node' AND time < (SELECT MIN(created_at) FROM graphs WHERE id = ?)").pluck().get(current.id),
    );
    assert.equal(oldNodeEvents, 0, "node events older than the retention are gone");
  });

  it("keeps each revision's rollout graph with its tasks, so history and graphs show still answer", async (t) => {
    const { client, first, operation, second, current } = await groupWithAPast(t);
    const { revisions } = await client.listRevisions({});
    assert.deepEqual(
      revisions.map((revision) => [revision.revision, revision.graphId, revision.graphState]),
      [
        [3, current.id, GraphState.GRAPH_STATE_SUCCEEDED],
        [2, second.id, GraphState.GRAPH_STATE_SUCCEEDED],
        [1, first.id, GraphState.GRAPH_STATE_SUCCEEDED],
      ],
    );
    const shown = (await client.getGraph({ graphId: first.id })).graph!;
    assert.equal(shown.state, GraphState.GRAPH_STATE_SUCCEEDED);
    assert.equal(shown.tasks.length, first.tasks.length, "a kept graph keeps its tasks");
    assert.ok(shown.tasks.every((task) => task.finishedAt !== undefined));
    const listed = (await client.listGraphs({})).graphs;
    assert.deepEqual(listed.map((graph) => graph.id), [current.id, second.id, first.id], "graphs ls: the operation graph expired whole");
    assert.ok(listed.every((graph) => graph.reason === GraphReason.GRAPH_REASON_UPDATE));
    await expectStatus(client.getGraph({ graphId: operation.id }), Status.NOT_FOUND);
    // A watch of a kept graph from a snapshot still works: the snapshot, settled, and the end.
    const [snapshot, ...rest] = await drain(client.watchGraph({ graphId: second.id }));
    assert.equal(snapshot!.snapshot!.state, GraphState.GRAPH_STATE_SUCCEEDED);
    assert.equal(snapshot!.snapshot!.tasks.length, second.tasks.length);
    assert.deepEqual(rest, []);
  });

  it("refuses a watch resuming into deleted events with OUT_OF_RANGE, and resumes one after them", async (t) => {
    const { client, first, current, earlyNodeSequence } = await groupWithAPast(t);
    await expectStatus(
      drain(client.watchGraph({ graphId: first.id, afterSequence: 0 })),
      Status.OUT_OF_RANGE,
      new RegExp(`events of graph ${first.id} after sequence 0: the server's retention deleted them up to sequence \\d+; watch again without a resume point`),
    );
    await expectStatus(
      drain(client.watchNodes({ afterSequence: earlyNodeSequence }, { signal: AbortSignal.timeout(5000) })),
      Status.OUT_OF_RANGE,
      /node events of group default after sequence \d+: the server's retention deleted them up to sequence \d+/,
    );
    // The current graph's events are all there, in order, from its start.
    const resumed = (await drain(client.watchGraph({ graphId: current.id, afterSequence: 0 }))).flatMap((message) => message.events);
    assert.equal(resumed[0]!.graphState, GraphState.GRAPH_STATE_PENDING);
    assert.equal(resumed.at(-1)!.graphState, GraphState.GRAPH_STATE_SUCCEEDED);
    // A node watch resuming after what was deleted is complete, and follows on.
    const sequence = await nodeSnapshotSequence(client);
    const controller = new AbortController();
    const nodes = client.watchNodes({ afterSequence: sequence }, { signal: controller.signal })[Symbol.asyncIterator]();
    const pending = nodes.next();
    await client.setSpec({ count: 2, version: 2, maxSurge: 1, maxUnavailable: 0 });
    const { value } = await pending;
    assert.ok(value!.events.length > 0 && value!.events[0]!.sequence > sequence);
    controller.abort();
    await nodes.return?.(undefined).catch(() => undefined);
  });

  it("deletes stopped nodes stopped longer ago than the retention, never live ones", async (t) => {
    const { client, restarted } = await groupWithAPast(t);
    const nodes = (await client.listNodes({ all: true })).nodes;
    assert.deepEqual(
      nodes.map((node) => [node.state, node.version]),
      [
        [NodeState.NODE_STATE_RUNNING, 2],
        [NodeState.NODE_STATE_RUNNING, 2],
        [NodeState.NODE_STATE_RUNNING, 2],
      ],
      "only the three live nodes: the v1 nodes (stopped a week before) are gone",
    );
    assert.ok(!nodes.some((node) => node.id === restarted.id));
  });
});

describe("retention of the process driver's files", { timeout: 90_000 }, () => {
  /** Each node writes about 4 KiB as it starts; its log rotates at 1 KiB and keeps 3 files. */
  const chatty = requireTemplate(nodeScript(`for (let n = 0; n < 60; n++) console.log("line " + n + " " + "x".repeat(60));`));

  /**
   * Real node processes on a data dir of the test's: each server the test starts on it has a
   * process driver (running `chatty` whatever the group's template) and the movable clock, keeps
   * things a week and runs retention every 20 ms. Ends every node process and removes the dir.
   */
  async function processServers(t: { after: (fn: () => Promise<void>) => void }) {
    const dataDir = mkdtempSync(join(tmpdir(), "drover-retention-"));
    const ports = await freePortWindow(4);
    const clock = movableClock();
    const drivers: ProcessDriver[] = [];
    const stops: (() => Promise<void>)[] = [];
    t.after(async () => {
      for (const stop of stops) await stop();
      for (const driver of drivers) await driver.sweep((await driver.strays(new Set())).map((stray) => stray.id));
      rmSync(dataDir, { recursive: true, force: true });
    });
    const start = async (retentionMs = WEEK) => {
      const driver = new ProcessDriver({ dataDir, ports, logLimits: { maxBytes: 1024, maxFiles: 3 }, templateOf: async () => chatty, clock, logger: silentLogger });
      drivers.push(driver);
      const server = await startTestServer({ dataDir, server: { driver, clock, retention: { retentionMs, intervalMs: 20 } } });
      stops.push(server.stop);
      return server;
    };
    /** The node's files: its logs in the log dir, and its record, pipe and dir (or what is left of it) under nodes/. */
    const filesOf = (nodeId: string) =>
      [...readdirSync(join(dataDir, "logs")), ...readdirSync(join(dataDir, "nodes"))].filter((name) => name.startsWith(nodeId)).sort();
    return { dataDir, clock, start, filesOf };
  }

  /** Three nodes of `chatty`, scaled down to one: two stopped nodes that keep their logs, and a live one. */
  async function scaledDown(client: DroverServiceClient, filesOf: (nodeId: string) => string[]) {
    await settle(client, (await client.setSpec({ count: 3, version: 1 })).graph!.id);
    const started = (await client.listNodes({})).nodes.map((node) => node.id);
    await eventually(async () => (started.every((id) => filesOf(id).includes(`${id}.log.2`)) ? true : undefined), "every node's log has rotated twice");
    await settle(client, (await client.setSpec({ count: 1, version: 1 })).graph!.id);
    const live = (await client.listNodes({})).nodes.map((node) => node.id);
    assert.equal(live.length, 1);
    const stopped = started.filter((id) => !live.includes(id));
    const logs = (id: string) => [`${id}.log`, `${id}.log.1`, `${id}.log.2`];
    await eventually(async () => (stopped.every((id) => filesOf(id).join() === logs(id).join()) ? true : undefined), "the stopped nodes' dirs went with their processes");
    return { live: live[0]!, stopped, logs };
  }

  it("removes a stopped node's logs, rotated ones too, and what is left of its dir once retention deletes it, and nothing of a live node", async (t) => {
    const { dataDir, clock, start, filesOf } = await processServers(t);
    const { client } = await start();
    const { live, stopped, logs } = await scaledDown(client, filesOf);
    // A dir whose removal a crash cut short (the driver renames a node's dir, then removes it).
    mkdirSync(join(dataDir, "nodes", `${stopped[0]}.removing-1`));
    writeFileSync(join(dataDir, "nodes", `${stopped[0]}.removing-1`, "scratch"), "left behind");
    await sleep(200);
    assert.deepEqual(stopped.map(filesOf), [[...logs(stopped[0]!), `${stopped[0]}.removing-1`], logs(stopped[1]!)], "within the retention, a stopped node keeps its logs");

    clock.advance(8 * 24 * HOUR);
    await eventually(async () => (stopped.every((id) => filesOf(id).length === 0) ? true : undefined), "the stopped nodes' files are gone");
    assert.deepEqual((await client.listNodes({ all: true })).nodes.map((node) => node.id), [live], "their rows went first");
    await sleep(200);
    assert.deepEqual(filesOf(live), [live, `${live}.json`, ...logs(live), `${live}.out`].sort(), "the live node keeps its dir, record, pipe and every log");
    assert.deepEqual((await client.listNodes({})).nodes.map((node) => [node.id, node.state]), [[live, NodeState.NODE_STATE_RUNNING]]);
  });

  it("removes on its first run after a restart the files of nodes deleted before, and never a known node's or another program's", async (t) => {
    const { dataDir, start, filesOf } = await processServers(t);
    const first = await start(0);
    const { live, stopped, logs } = await scaledDown(first.client, filesOf);
    await first.stop();
    // As a version that kept files did: the row of one stopped node deleted, its logs left.
    const [forgotten, known] = stopped as [string, string];
    const db = new Database(join(dataDir, DATABASE_FILE));
    db.prepare("DELETE FROM nodes WHERE id = ?").run(forgotten);
    db.close();
    const others = ["other-program.log", `${forgotten}.txt`];
    for (const name of others) writeFileSync(join(dataDir, "logs", name), "not a node's log");

    const { client } = await start();
    await eventually(async () => (filesOf(forgotten).filter((name) => !others.includes(name)).length === 0 ? true : undefined), "the forgotten node's logs are gone");
    await sleep(200);
    assert.deepEqual(filesOf(known), logs(known), "a stopped node the database knows keeps its logs");
    assert.deepEqual(filesOf(live), [live, `${live}.json`, ...logs(live), `${live}.out`].sort(), "the live node keeps everything");
    assert.ok(others.every((name) => existsSync(join(dataDir, "logs", name))), "files not named like a node's log stay");
    assert.deepEqual(
      (await client.listNodes({})).nodes.map((node) => [node.id, node.state]),
      [[live, NodeState.NODE_STATE_RUNNING]],
      "the restarted server adopted the live node",
    );
  });
});

describe("retention in the store", () => {
  const spec = { count: 1, version: 1, maxSurge: 0, maxUnavailable: 1 };
  const startTasks = (count: number): PlannedTask[] =>
    Array.from({ length: count }, (_, id) => ({ id, prerequisites: [], action: "start_node" as const, version: 1 }));
  const settled = (graphId: string, group: string): Transition => ({ type: "graph", graphId, group, state: "succeeded" });
  const retention = (store: ReturnType<typeof openTestStore>, now: number, batchRows: number) =>
    new Retention({ store, clock: { ...systemClock, now: () => now }, logger: silentLogger, retentionMs: WEEK, batchRows });

  it("never deletes the log's newest event, so sequence numbers keep increasing after a deletion", async (t) => {
    const store = openTestStore(t);
    const old = await store.storeRevision({ group: "g", spec, graph: { id: "01AAAAAAAAAAAAAAAAAAAAAAAA", tasks: [] }, now: 1, liveGraphs: [] });
    const [last] = await store.apply([settled(old.graph!.id, "g")], 2);
    // A second revision (never expires: its group's newest) whose graph is written next.
    await store.storeRevision({ group: "g", spec: { ...spec, count: 0 }, now: 3, liveGraphs: [] });
    const report = await retention(store, 2 + WEEK + 1, 100).run();
    assert.equal(report.events, 1, "the graph's first event went, its last (the log's newest) stayed");
    const [next] = await store.apply([{ type: "node", nodeId: "N", group: "g", state: "stopped", version: 1, host: "h" }], 2 + WEEK + 2);
    assert.equal(next!.sequence, last!.sequence + 1, "a new event is numbered after every one handed out");
  });

  it("goes on past an event stamped in the future (a clock once set ahead) to the old ones after it", async (t) => {
    const store = openTestStore(t);
    await store.storeRevision({ group: "g", spec, now: 1, liveGraphs: [] });
    const node = (time: number) => store.apply([{ type: "node", nodeId: "N", group: "g", state: "running", version: 1, host: "h" }], time);
    await node(1);
    await node(100 * 365 * 24 * HOUR);
    const [stale] = await node(2);
    await node(3 + WEEK);
    await retention(store, 3 + WEEK, 100).run();
    assert.deepEqual((await store.nodeEvents("g", 0, 100)).map((event) => event.time), [100 * 365 * 24 * HOUR, 3 + WEEK]);
    assert.equal(await store.nodeEventsCompactedThrough("g"), stale!.sequence);
  });

  it("expires a graph larger than a step over several steps, each deleting at most a step's rows", async (t) => {
    const store = openTestStore(t);
    const big = "01BBBBBBBBBBBBBBBBBBBBBBBB";
    // The revision's rollout graph (kept), an operation graph of as many tasks (expires), and a newer one.
    await store.storeRevision({ group: "g", spec, graph: { id: big, tasks: startTasks(95) }, now: 1, liveGraphs: [] });
    const operation = "01CCCCCCCCCCCCCCCCCCCCCCCC";
    await store.storeGraph({ group: "g", revision: 1, reason: "operation", graph: { id: operation, tasks: startTasks(95) }, now: 1, liveGraphs: [big] });
    await store.storeGraph({ group: "g", revision: 1, reason: "operation", graph: { id: "01DDDDDDDDDDDDDDDDDDDDDDDD", tasks: [] }, now: 5, liveGraphs: [big, operation] });
    await store.apply([settled(big, "g"), settled(operation, "g")], 2);
    const steps: number[] = [];
    let after = "";
    for (;;) {
      const step = await store.expireGraphs(2 + WEEK + 1, after, 10);
      steps.push(step.tasks);
      if (step.next === undefined) break;
      after = step.next;
    }
    assert.ok(steps.every((tasks) => tasks <= 10), `every step deleted at most 10 tasks (${steps.join(", ")})`);
    assert.equal(steps.reduce((a, b) => a + b, 0), 95, "the operation's 95 tasks, and nothing of the revision's rollout graph");
    assert.equal(await store.getGraph(operation), undefined);
    assert.equal((await store.getGraph(big))!.counts.total, 95);
  });

  it("keeps everything of an unsettled graph however old, and the stopped nodes it names", async (t) => {
    const store = openTestStore(t);
    const running = "01EEEEEEEEEEEEEEEEEEEEEEEE";
    await store.storeRevision({
      group: "g",
      spec,
      graph: { id: running, tasks: [{ id: 0, prerequisites: [], action: "shut_down_node", nodeId: "N1" }] },
      now: 1,
      liveGraphs: [],
    });
    await store.apply(
      [
        { type: "node", nodeId: "N1", group: "g", state: "stopped", version: 1, host: "h" },
        { type: "node", nodeId: "N2", group: "g", state: "stopped", version: 1, host: "h" },
        { type: "graph", graphId: running, group: "g", state: "running" },
      ],
      2,
    );
    await store.apply([{ type: "node", nodeId: "N3", group: "g", state: "running", version: 1, host: "h" }], 3);
    const report = await retention(store, 3 + WEEK + 1, 100).run();
    assert.deepEqual([report.graphs, report.tasks, report.nodes], [0, 0, 1], "only N2 went: N1 is named by the running graph");
    assert.equal((await store.graphEvents(running, 0, 100)).length, 2, "the running graph's events stay");
    assert.equal(await store.graphEventsCompactedThrough(running), 0);
    assert.deepEqual((await store.listNodes("g", { all: true })).map((node) => node.id), ["N1", "N3"]);
    assert.ok((await store.nodeEventsCompactedThrough("g")) > 0, "the old node events went, and say so");
  });

  it("gives the pages it freed back to the file system on a new database", async (t) => {
    const dir = temporaryDataDir(t);
    const store = openTestStore(t, dir);
    const transitions: Transition[] = Array.from({ length: 20_000 }, (_, i) => ({
      type: "node",
      nodeId: `N${i % 100}`,
      group: "g",
      state: "running",
      version: 1,
      host: "h".repeat(200),
      error: "x".repeat(200),
    }));
    await store.storeRevision({ group: "g", spec, now: 1, liveGraphs: [] });
    await store.apply(transitions, 1);
    await store.apply([{ type: "node", nodeId: "N0", group: "g", state: "running", version: 1, host: "h" }], 2 + WEEK);
    const pagesBefore = readDatabase(dir, (db) => db.pragma("page_count", { simple: true }) as number);
    const report = await retention(store, 2 + WEEK, 5_000).run();
    assert.equal(report.events, 20_000);
    assert.ok(report.releasedPages > 0, "free pages were given back");
    const pagesAfter = readDatabase(dir, (db) => db.pragma("page_count", { simple: true }) as number);
    assert.ok(pagesAfter < pagesBefore / 2, `the database shrank from ${pagesBefore} to ${pagesAfter} pages`);
  });
});

describe("the --event-retention flag", { timeout: 30_000 }, () => {
  it("reads hours and days", () => {
    assert.equal(parseDuration("168h"), WEEK);
    assert.equal(parseDuration("7d"), WEEK);
    assert.equal(durationText(WEEK), "7d");
  });

  it("refuses a duration it cannot read with one line and exit code 2", async () => {
    const { exited } = startServer(["--event-retention", "1w", "--listen", `127.0.0.1:${await freePort()}`]);
    const { code, stderr } = await exited;
    assert.equal(code, 2);
    assert.equal(stderr.trim().split("\n").length, 1, stderr);
    assert.match(stderr, /--event-retention.*"1w" is not a duration: write it like 500ms, 90s, 1h30m or 7d/);
  });
});
