import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Node, PlannedTask } from "../src/domain.js";
import type { SqliteStore } from "../src/store/SqliteStore.js";
import { openTestStore, RecordingDriver, temporaryDataDir, testScheduler } from "./support.js";

const spec = { count: 1, version: 1, maxSurge: 0, maxUnavailable: 1 };

async function storeGraph(store: SqliteStore, graphId: string, tasks: PlannedTask[], group = "g") {
  const stored = await store.storeRevision({ group, spec, graph: { id: graphId, tasks }, now: Date.now(), liveGraphs: [] });
  return stored.graph!;
}

const starts = (n: number, after: number[] = []): PlannedTask[] =>
  Array.from({ length: n }, (_, id) => ({ id, prerequisites: after, action: "start_node" as const, version: 1 }));

describe("scheduler", () => {
  it("never runs more tasks at once than its parallelism, and runs them all", async (t) => {
    const store = openTestStore(t);
    const driver = new RecordingDriver(3);
    const { scheduler } = testScheduler(store, driver, { parallelism: 3 });
    const tasks = [...starts(20), { id: 20, prerequisites: starts(20).map((task) => task.id), action: "do_nothing" as const }];
    const run = scheduler.run(await storeGraph(store, "01ARZ3NDEKTSV4RRFFQ69G5FA1", tasks), new Map());
    assert.equal(await run.settled, "succeeded");
    assert.equal(driver.maxInFlight, 3);
    assert.equal(driver.calls.length, 20);
    assert.equal(new Set(driver.calls.map((call) => call.nodeId)).size, 20, "each start made its own node");
    assert.equal((await store.listNodes("g", { all: false })).filter((node) => node.state === "running").length, 20);
  });

  it("starts no task before all its prerequisites have succeeded", async (t) => {
    const store = openTestStore(t);
    const driver = new RecordingDriver(2);
    const { scheduler } = testScheduler(store, driver, { parallelism: 8 });
    // A diamond and a chain: 0 → {1, 2} → 3 → 4.
    const tasks: PlannedTask[] = [
      { id: 0, prerequisites: [], action: "start_node", version: 1 },
      { id: 1, prerequisites: [0], action: "start_node", version: 1 },
      { id: 2, prerequisites: [0], action: "start_node", version: 1 },
      { id: 3, prerequisites: [1, 2], action: "do_nothing" },
      { id: 4, prerequisites: [3], action: "start_node", version: 1 },
    ];
    const graphId = "01ARZ3NDEKTSV4RRFFQ69G5FA2";
    const run = scheduler.run(await storeGraph(store, graphId, tasks), new Map());
    assert.equal(await run.settled, "succeeded");
    const events = await store.graphEvents(graphId, 0, 1000);
    const position = (taskId: number, state: string) =>
      events.findIndex((event) => event.type === "task" && event.taskId === taskId && event.state === state);
    for (const task of tasks) {
      const began = task.action === "do_nothing" ? position(task.id, "succeeded") : position(task.id, "running");
      assert.ok(began >= 0);
      for (const prerequisite of task.prerequisites) {
        assert.ok(position(prerequisite, "succeeded") < began, `task ${task.id} began before task ${prerequisite} succeeded`);
      }
    }
  });

  it("retries a failed attempt with the same node and succeeds", async (t) => {
    const store = openTestStore(t);
    const driver = new RecordingDriver(1);
    const { scheduler } = testScheduler(store, driver, { maxAttempts: 3 });
    const graphId = "01ARZ3NDEKTSV4RRFFQ69G5FA3";
    const graph = await storeGraph(store, graphId, starts(1));
    driver.failNextCalls = 2;
    const run = scheduler.run(graph, new Map());
    assert.equal(await run.settled, "succeeded");
    const snapshot = (await store.snapshotGraph(graphId))!;
    assert.equal(snapshot.tasks[0]!.attempts, 3);
    assert.equal(snapshot.graph.retries, 2);
    assert.equal(new Set(driver.calls.map((call) => call.nodeId)).size, 1, "every attempt used the same node");
    const nodes = await store.listNodes("g", { all: true });
    assert.deepEqual(nodes.map((node) => node.state), ["running"]);
    const retries = (await store.graphEvents(graphId, 0, 100)).filter((event) => event.type === "task_retry");
    assert.equal(retries.length, 2);
    assert.match(retries[0]!.error!, /planned failure/);
  });

  it("fails the graph when a task uses up its attempts, skipping what it did not reach", async (t) => {
    const store = openTestStore(t);
    const driver = new RecordingDriver(1);
    driver.failEveryStart = true;
    const { scheduler } = testScheduler(store, driver, { maxAttempts: 2, parallelism: 1 });
    const graphId = "01ARZ3NDEKTSV4RRFFQ69G5FA4";
    const tasks: PlannedTask[] = [
      { id: 0, prerequisites: [], action: "start_node", version: 1 },
      { id: 1, prerequisites: [0], action: "start_node", version: 1 },
      { id: 2, prerequisites: [1], action: "do_nothing" },
    ];
    const run = scheduler.run(await storeGraph(store, graphId, tasks), new Map());
    assert.equal(await run.settled, "failed");
    const snapshot = (await store.snapshotGraph(graphId))!;
    assert.equal(snapshot.graph.state, "failed");
    assert.match(snapshot.graph.error!, /^task 0 \(start_node version=1\) failed after 2 attempts: planned failure/);
    assert.deepEqual(snapshot.tasks.map((task) => task.state), ["failed", "skipped", "skipped"]);
    assert.equal(snapshot.tasks[0]!.attempts, 2);
    assert.ok(snapshot.graph.finishedAt !== undefined);
    assert.deepEqual((await store.listNodes("g", { all: true })).map((node) => node.state), ["failed"]);
  });

  it("shuts nodes down and marks them stopped", async (t) => {
    const store = openTestStore(t);
    const driver = new RecordingDriver(1);
    const { scheduler, journal } = testScheduler(store, driver);
    await journal.record([{ type: "node", nodeId: "OLD1", group: "g", state: "running", version: 1, host: "h" }]);
    const nodes = new Map<string, Node>((await store.listNodes("g", { all: true })).map((node) => [node.id, node]));
    const graphId = "01ARZ3NDEKTSV4RRFFQ69G5FA5";
    const run = scheduler.run(
      await storeGraph(store, graphId, [{ id: 0, prerequisites: [], action: "shut_down_node", nodeId: "OLD1" }]),
      nodes,
    );
    assert.equal(await run.settled, "succeeded");
    assert.deepEqual((await store.listNodes("g", { all: true })).map((node) => node.state), ["stopped"]);
    assert.deepEqual(driver.calls, [{ op: "stop", nodeId: "OLD1" }]);
  });

  it("cancels the tasks not started, lets running ones finish, and settles as cancelled", async (t) => {
    const store = openTestStore(t);
    const driver = new RecordingDriver(30);
    const { scheduler } = testScheduler(store, driver, { parallelism: 1 });
    const graphId = "01ARZ3NDEKTSV4RRFFQ69G5FA6";
    const run = scheduler.run(await storeGraph(store, graphId, starts(4)), new Map());
    await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(await scheduler.halt(graphId, "cancelled", "cancelled by a user"), "cancelled");
    assert.equal(await run.settled, "cancelled");
    const snapshot = (await store.snapshotGraph(graphId))!;
    assert.equal(snapshot.graph.state, "cancelled");
    assert.deepEqual(snapshot.tasks.map((task) => task.state), ["succeeded", "cancelled", "cancelled", "cancelled"]);
    assert.equal(driver.calls.length, 1);
  });

  it("ends a task waiting to retry with its last error when the graph halts, and fails the node it was stopping", async (t) => {
    const store = openTestStore(t);
    const driver = new RecordingDriver(1);
    driver.failures.set("OLD1", "always");
    const { scheduler, journal } = testScheduler(store, driver, { maxAttempts: 3, retryBaseDelayMs: 10_000 });
    await journal.record([{ type: "node", nodeId: "OLD1", group: "g", state: "running", version: 1, host: "h" }]);
    const nodes = new Map<string, Node>((await store.listNodes("g", { all: true })).map((node) => [node.id, node]));
    const graphId = "01ARZ3NDEKTSV4RRFFQ69G5FA8";
    const run = scheduler.run(
      await storeGraph(store, graphId, [
        { id: 0, prerequisites: [], action: "shut_down_node", nodeId: "OLD1" },
        { id: 1, prerequisites: [0], action: "start_node", version: 2 },
      ]),
      nodes,
    );
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(await scheduler.halt(graphId, "cancelled", "cancelled by a user"), "cancelled");
    assert.equal(await run.settled, "cancelled");
    const snapshot = (await store.snapshotGraph(graphId))!;
    assert.deepEqual(snapshot.tasks.map((task) => [task.state, task.attempts]), [["cancelled", 1], ["cancelled", 0]]);
    assert.match(snapshot.tasks[0]!.error!, /^planned failure of stop OLD1; not retried: the graph was cancelled$/);
    const [node] = await store.listNodes("g", { all: true });
    assert.equal(node!.state, "failed", "a node whose stop failed is not left stopping");
  });

  it("resumes an interrupted graph without starting any node twice", async (t) => {
    const dir = temporaryDataDir(t);
    const store = openTestStore(t, dir);
    const driver = new RecordingDriver(20);
    const first = testScheduler(store, driver, { parallelism: 2 });
    const graphId = "01ARZ3NDEKTSV4RRFFQ69G5FA7";
    const graph = await storeGraph(store, graphId, starts(6));
    const run = first.scheduler.run(graph, new Map());
    await new Promise((resolve) => setTimeout(resolve, 30));
    await first.scheduler.interruptAll();
    assert.equal(await run.settled, "interrupted");
    const stored = (await store.unsettledGraphs())[0]!;
    assert.equal(stored.id, graphId);
    const second = testScheduler(store, driver, { parallelism: 2 });
    const nodes = new Map((await store.listNodes("g", { all: true })).map((node) => [node.id, node]));
    assert.equal(await second.scheduler.run(stored, nodes).settled, "succeeded");
    const live = await store.listNodes("g", { all: true });
    assert.equal(live.length, 6, "exactly one node per start task");
    assert.ok(live.every((node) => node.state === "running"));
    const taskNodes = (await store.snapshotGraph(graphId))!.tasks.map((task) => task.nodeId);
    assert.equal(new Set(taskNodes).size, 6);
  });
});
