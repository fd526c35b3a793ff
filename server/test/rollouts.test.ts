import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  EventType,
  FailurePolicy,
  GraphReason,
  GraphState,
  NodeState,
  RevisionReason,
  TaskState,
  type Event as ApiEvent,
} from "@drover/shared";
import { Status } from "nice-grpc";
import { drain, eventually, expectStatus, startTestServer } from "./support.js";

const runningAt = (nodes: { state: NodeState; version: number }[], version: number) =>
  nodes.filter((node) => node.state === NodeState.NODE_STATE_RUNNING && node.version === version).length;

describe("rollouts", { timeout: 60_000 }, () => {
  it("refuses an update whose expected revision is not the group's current one", async (t) => {
    const { client, stop } = await startTestServer();
    t.after(stop);
    await expectStatus(client.setSpec({ count: 1, version: 1, expectRevision: 3 }), Status.FAILED_PRECONDITION, /is at revision 0, not the expected 3/);
    const first = await client.setSpec({ count: 1, version: 1, expectRevision: 0 });
    assert.equal(first.revision, 1);
    await expectStatus(client.setSpec({ count: 2, version: 1, expectRevision: 0 }), Status.FAILED_PRECONDITION, /is at revision 1, not the expected 0/);
    assert.equal((await client.setSpec({ count: 2, version: 1, expectRevision: 1 })).revision, 2);
    assert.equal((await client.setSpec({ count: 3, version: 1, dryRun: true })).revision, 2, "a dry run shows the revision it is based on");
  });

  it("changes nothing when it refuses a stale update: the running graph goes on", async (t) => {
    const { client, stop } = await startTestServer({ driver: { latency: { min: 20, max: 30 } }, server: { parallelism: 1 } });
    t.after(stop);
    const { graph } = await client.setSpec({ count: 5, version: 1 });
    await expectStatus(client.setSpec({ count: 1, version: 1, expectRevision: 7 }), Status.FAILED_PRECONDITION, /not the expected 7/);
    assert.notEqual((await client.getGraph({ graphId: graph!.id })).graph!.state, GraphState.GRAPH_STATE_SUPERSEDED);
    await drain(client.watchGraph({ graphId: graph!.id }));
    assert.equal((await client.getGraph({ graphId: graph!.id })).graph!.state, GraphState.GRAPH_STATE_SUCCEEDED);
  });

  it("lists every revision with its graph and outcome, and rolls back to the previous spec with its count", async (t) => {
    const { client, stop } = await startTestServer();
    t.after(stop);
    const first = await client.setSpec({ count: 2, version: 1 });
    await drain(client.watchGraph({ graphId: first.graph!.id }));
    const second = await client.setSpec({ count: 3, version: 2, maxSurge: 1 });
    await drain(client.watchGraph({ graphId: second.graph!.id }));
    const history = (await client.listRevisions({})).revisions;
    assert.deepEqual(history.map((revision) => [revision.revision, revision.spec!.count, revision.spec!.version]), [[2, 3, 2], [1, 2, 1]]);
    assert.equal(history[0]!.graphId, second.graph!.id);
    assert.equal(history[0]!.graphState, GraphState.GRAPH_STATE_SUCCEEDED);
    assert.equal(history[0]!.spec!.maxSurge, 1);

    const { update, restores } = await client.rollback({ withCount: true });
    assert.equal(restores, 1);
    assert.equal(update!.revision, 3);
    assert.deepEqual([update!.spec!.count, update!.spec!.version, update!.spec!.maxSurge], [2, 1, 0]);
    await drain(client.watchGraph({ graphId: update!.graph!.id }));
    const nodes = (await client.listNodes({})).nodes;
    assert.equal(runningAt(nodes, 1), 2);
    assert.equal(nodes.length, 2);
    const latest = (await client.listRevisions({ limit: 1 })).revisions[0]!;
    assert.equal(latest.reason, RevisionReason.REVISION_REASON_ROLLBACK);
    assert.equal(latest.restores, 1);
    await expectStatus(client.rollback({ revision: 9 }), Status.NOT_FOUND, /revision 9 of group default not found/);
    await expectStatus(client.rollback({ group: "empty" }), Status.NOT_FOUND, /group empty does not exist/);
  });

  it("pauses a graph so that no task starts, and resumes it to the end", async (t) => {
    const { client, stop } = await startTestServer({ driver: { latency: { min: 30, max: 40 } }, server: { parallelism: 1 } });
    t.after(stop);
    const { graph } = await client.setSpec({ count: 6, version: 1 });
    const paused = (await client.pauseGraph({ graphId: graph!.id })).graph!;
    assert.equal(paused.state, GraphState.GRAPH_STATE_PAUSED);
    // Whatever was running when the pause came finishes; then nothing moves.
    const settledCount = await eventually(async () => {
      const current = (await client.getGraph({ graphId: graph!.id })).graph!;
      return current.counts!.running === 0 ? current.counts!.succeeded : undefined;
    }, "the running task finished");
    await new Promise((resolve) => setTimeout(resolve, 150));
    const still = (await client.getGraph({ graphId: graph!.id })).graph!;
    assert.equal(still.state, GraphState.GRAPH_STATE_PAUSED);
    assert.equal(still.counts!.succeeded, settledCount, "no task started while paused");
    assert.equal((await client.resumeGraph({ graphId: graph!.id })).graph!.state, GraphState.GRAPH_STATE_RUNNING);
    await drain(client.watchGraph({ graphId: graph!.id }));
    assert.equal((await client.getGraph({ graphId: graph!.id })).graph!.state, GraphState.GRAPH_STATE_SUCCEEDED);
    await expectStatus(client.pauseGraph({ graphId: graph!.id }), Status.FAILED_PRECONDITION, /has already succeeded/);
  });

  it("cancels a graph and leaves its nodes as they are, for the next pass to take from there", async (t) => {
    const { client, stop } = await startTestServer({ driver: { latency: { min: 20, max: 30 } }, server: { parallelism: 1 } });
    t.after(stop);
    const { graph } = await client.setSpec({ count: 5, version: 1 });
    await eventually(async () => ((await client.listNodes({})).nodes.some((node) => node.state === NodeState.NODE_STATE_RUNNING) ? true : undefined), "a node runs");
    const cancelled = (await client.cancelGraph({ graphId: graph!.id })).graph!;
    assert.equal(cancelled.state, GraphState.GRAPH_STATE_CANCELLED);
    const nodes = (await client.listNodes({})).nodes;
    assert.ok(nodes.length >= 1 && nodes.length < 5);
    assert.ok(nodes.every((node) => node.state === NodeState.NODE_STATE_RUNNING), "no node left half-started");
  });

  it("fails a graph whose task attempt outlives its timeout, naming the task", async (t) => {
    const { client, stop } = await startTestServer({ driver: { latency: { min: 200, max: 200 } }, server: { maxAttempts: 2 } });
    t.after(stop);
    const { graph } = await client.setSpec({ count: 1, version: 1, taskTimeoutMs: 20 });
    const events = (await drain(client.watchGraph({ graphId: graph!.id }))).flatMap((message) => message.events);
    const final = (await client.getGraph({ graphId: graph!.id })).graph!;
    assert.equal(final.state, GraphState.GRAPH_STATE_FAILED);
    assert.match(final.error, /^task 0 \(start_node version=1\) failed after 2 attempts: attempt timed out after 20ms/);
    assert.ok(events.some((event: ApiEvent) => event.type === EventType.EVENT_TYPE_TASK_RETRY));
  });

  it("fails a graph that makes no progress for its deadline, naming the stuck task", async (t) => {
    const { client, stop } = await startTestServer({ driver: { latency: { min: 400, max: 400 } } });
    t.after(stop);
    const { graph } = await client.setSpec({ count: 1, version: 1, progressDeadlineMs: 50 });
    await drain(client.watchGraph({ graphId: graph!.id }));
    const final = (await client.getGraph({ graphId: graph!.id })).graph!;
    assert.equal(final.state, GraphState.GRAPH_STATE_FAILED);
    assert.match(final.error, /^no task finished for 50ms: task 0 \(start_node version=1\) has been running for \d+ms/);
    assert.equal(final.tasks[0]!.state, TaskState.TASK_STATE_FAILED);
  });

  it("rolls back automatically when a graph fails under a rollback policy, and the events say so", async (t) => {
    const { client, driver, stop } = await startTestServer({ server: { maxAttempts: 1 } });
    t.after(stop);
    const good = await client.setSpec({ count: 2, version: 1 });
    await drain(client.watchGraph({ graphId: good.graph!.id }));
    // Every start of version 2 fails, as a broken release would.
    const start = driver.start.bind(driver);
    driver.start = async (node, signal) => {
      if (node.version === 2) throw new Error("version 2 crashes at start");
      return start(node, signal);
    };
    const bad = await client.setSpec({ count: 2, version: 2, onFailure: FailurePolicy.FAILURE_POLICY_ROLLBACK });
    const messages = await drain(client.watchGraph({ graphId: bad.graph!.id }));
    const events = messages.flatMap((message) => message.events);
    const end = events.at(-1)!;
    assert.equal(end.graphState, GraphState.GRAPH_STATE_FAILED);
    assert.equal(end.message, "rolling back to revision 1 (2 × v1)");
    assert.notEqual(end.nextGraphId, "");
    // Every task ended before the graph's final event, so a watcher sees each one end.
    const states = new Map(messages[0]!.snapshot!.tasks.map((task) => [task.id, task.state]));
    for (const event of events) if (event.type === EventType.EVENT_TYPE_TASK) states.set(event.taskId, event.taskState);
    assert.ok(![...states.values()].includes(TaskState.TASK_STATE_PENDING), `tasks still pending at the end: ${[...states.entries()]}`);
    const settled = (await client.getGraph({ graphId: bad.graph!.id })).graph!;
    assert.equal(settled.message, end.message, "the graph keeps the decision");
    assert.equal(settled.nextGraphId, end.nextGraphId);
    await drain(client.watchGraph({ graphId: end.nextGraphId }));
    assert.equal((await client.getGraph({ graphId: end.nextGraphId })).graph!.state, GraphState.GRAPH_STATE_SUCCEEDED);
    const history = (await client.listRevisions({})).revisions;
    assert.equal(history[0]!.reason, RevisionReason.REVISION_REASON_AUTO_ROLLBACK);
    assert.equal(history[0]!.restores, 1);
    const nodes = (await client.listNodes({})).nodes;
    assert.equal(runningAt(nodes, 1), 2);
    assert.equal(nodes.filter((node) => node.state !== NodeState.NODE_STATE_STOPPED).length, 2);
  });

  it("repairs a group whose node crashed, with a repair graph under the same revision", async (t) => {
    const { client, driver, stop } = await startTestServer();
    t.after(stop);
    const { graph, revision } = await client.setSpec({ count: 3, version: 1 });
    await drain(client.watchGraph({ graphId: graph!.id }));
    const victim = (await client.listNodes({})).nodes[0]!;
    assert.ok(driver.crash(victim.id, "simulated crash"));
    const repair = await eventually(async () => {
      const graphs = (await client.listGraphs({})).graphs;
      return graphs[0]!.reason === GraphReason.GRAPH_REASON_REPAIR ? graphs[0] : undefined;
    }, "a repair graph exists");
    assert.equal(repair.revision, revision);
    await drain(client.watchGraph({ graphId: repair.id }));
    const nodes = (await client.listNodes({ all: true })).nodes;
    assert.equal(runningAt(nodes, 1), 3);
    assert.equal(nodes.find((node) => node.id === victim.id)!.state, NodeState.NODE_STATE_STOPPED);
  });

  it("keeps a group at its spec while simulated nodes crash at random", async (t) => {
    const { client, driver, stop } = await startTestServer({ driver: { crashRate: 0.3, seed: 11 }, server: { reconcileIntervalMs: 100 } });
    t.after(stop);
    const { graph } = await client.setSpec({ count: 4, version: 1 });
    await eventually(async () => ((await client.listGraphs({})).graphs.length >= 3 ? true : undefined), "two crashes were repaired", 20_000);
    driver.close(); // no more crashes: the group must now settle at its spec
    await eventually(async () => {
      const latest = (await client.listGraphs({ limit: 1 })).graphs[0]!;
      const nodes = (await client.listNodes({})).nodes;
      const atSpec = latest.state === GraphState.GRAPH_STATE_SUCCEEDED && nodes.length === 4 && runningAt(nodes, 1) === 4;
      return atSpec ? true : undefined;
    }, "the group is back at 4 running nodes", 20_000);
    for (const listed of (await client.listGraphs({ limit: 100 })).graphs) {
      if (listed.id !== graph!.id) assert.equal(listed.reason, GraphReason.GRAPH_REASON_REPAIR);
    }
  });
});
