import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type DroverServiceClient, type Event as ApiEvent, EventType, GraphState, NodeState, TaskState } from "@drover/shared";
import { Status } from "nice-grpc";
import { drain as collect, expectStatus, startTestServer, type TestServer } from "./support.js";

describe("the gRPC API of a real server", () => {
  let server: TestServer;
  let client: DroverServiceClient;

  before(async () => {
    server = await startTestServer({ driver: { latency: { min: 5, max: 25 } }, server: { parallelism: 3 } });
    client = server.client;
  });

  after(async () => {
    await server.stop();
  });

  it("plans, stores, runs and streams an update, with every task's events exactly once", async () => {
    const response = await client.setSpec({ group: "stream", count: 4, version: 1 });
    assert.equal(response.revision, 1);
    assert.equal(response.nothingToDo, false);
    const graph = response.graph!;
    assert.equal(graph.tasks.length, 5);
    const messages = await collect(client.watchGraph({ graphId: graph.id }));
    const snapshot = messages[0]!.snapshot!;
    assert.equal(snapshot.id, graph.id);
    const events = messages.slice(1).flatMap((message) => message.events);
    // Replay the events on the snapshot: the result must be the stored final state.
    const states = new Map(snapshot.tasks.map((task) => [task.id, task.state]));
    let last = snapshot.sequence;
    for (const event of events) {
      assert.ok(event.sequence > last, "events arrive in increasing sequence order, none repeated");
      last = event.sequence;
      if (event.type === EventType.EVENT_TYPE_TASK) states.set(event.taskId, event.taskState);
    }
    assert.equal(events.at(-1)!.type, EventType.EVENT_TYPE_GRAPH);
    assert.equal(events.at(-1)!.graphState, GraphState.GRAPH_STATE_SUCCEEDED);
    const final = (await client.getGraph({ graphId: graph.id })).graph!;
    assert.deepEqual(states, new Map(final.tasks.map((task) => [task.id, task.state])));
    assert.ok(final.tasks.every((task) => task.state === TaskState.TASK_STATE_SUCCEEDED));
    const nodes = (await client.listNodes({ group: "stream" })).nodes;
    assert.equal(nodes.length, 4);
    assert.ok(nodes.every((node) => node.state === NodeState.NODE_STATE_RUNNING && node.version === 1));
  });

  it("resumes a watch after a sequence number with exactly the events that followed it", async () => {
    const { graph } = await client.setSpec({ group: "resume", count: 3, version: 1 });
    const all = (await collect(client.watchGraph({ graphId: graph!.id, afterSequence: 0 }))).flatMap((m) => m.events);
    assert.ok(all.length > 4);
    const cut = all[2]!.sequence;
    const rest = (await collect(client.watchGraph({ graphId: graph!.id, afterSequence: cut }))).flatMap((m) => m.events);
    assert.deepEqual(rest.map((event: ApiEvent) => event.sequence), all.slice(3).map((event) => event.sequence));
    assert.deepEqual(await collect(client.watchGraph({ graphId: graph!.id, afterSequence: all.at(-1)!.sequence })), [], "a watcher that saw the end gets nothing more");
  });

  it("sends the snapshot and ends at once for a graph that has settled", async () => {
    const { graph } = await client.setSpec({ group: "settled", count: 1, version: 1 });
    await collect(client.watchGraph({ graphId: graph!.id }));
    const messages = await collect(client.watchGraph({ graphId: graph!.id }));
    assert.equal(messages.length, 1);
    assert.equal(messages[0]!.snapshot!.state, GraphState.GRAPH_STATE_SUCCEEDED);
  });

  it("reports nothing to do for a group that matches, and stores no new revision for the same spec", async () => {
    const first = await client.setSpec({ group: "same", count: 2, version: 3 });
    await collect(client.watchGraph({ graphId: first.graph!.id }));
    const again = await client.setSpec({ group: "same", count: 2, version: 3 });
    assert.equal(again.nothingToDo, true);
    assert.equal(again.revision, first.revision);
    assert.equal(again.graph, undefined);
    const dryRun = await client.setSpec({ group: "same", count: 3, version: 3, dryRun: true });
    assert.equal(dryRun.revision, first.revision, "a dry run shows the revision its plan is based on");
    assert.equal(dryRun.graph!.id, "");
    assert.equal((await client.listGraphs({ group: "same" })).graphs.length, 1, "a dry run stores nothing");
  });

  it("supersedes a running graph, and rapid updates end in the last spec with every graph settled", async () => {
    const ids: string[] = [];
    const updates = [5, 2, 6, 1, 4, 3, 0, 2, 5, 3].map((count, i) =>
      client.setSpec({ group: "rapid", count, version: 1 + (i % 3), maxSurge: 1, maxUnavailable: 1 }),
    );
    for (const response of await Promise.all(updates)) if (response.graph) ids.push(response.graph.id);
    const lastGraph = ids.at(-1)!;
    await collect(client.watchGraph({ graphId: lastGraph }));
    const graphs = (await client.listGraphs({ group: "rapid", limit: 100 })).graphs;
    assert.equal(graphs.length, ids.length);
    assert.equal(graphs[0]!.id, lastGraph);
    assert.equal(graphs[0]!.state, GraphState.GRAPH_STATE_SUCCEEDED);
    for (const graph of graphs.slice(1)) {
      assert.ok(
        [GraphState.GRAPH_STATE_SUPERSEDED, GraphState.GRAPH_STATE_SUCCEEDED].includes(graph.state),
        `graph ${graph.id} settled as ${graph.state}`,
      );
    }
    const nodes = (await client.listNodes({ group: "rapid" })).nodes;
    assert.equal(nodes.length, 3);
    assert.ok(nodes.every((node) => node.version === 1 + (9 % 3) && node.state === NodeState.NODE_STATE_RUNNING));
  });

  it("cancels a running graph and refuses to cancel a settled one", async () => {
    const { graph } = await client.setSpec({ group: "cancel", count: 30, version: 1 });
    const cancelled = (await client.cancelGraph({ graphId: graph!.id })).graph!;
    assert.equal(cancelled.state, GraphState.GRAPH_STATE_CANCELLED);
    assert.ok(cancelled.counts!.cancelled > 0);
    await expectStatus(client.cancelGraph({ graphId: graph!.id }), Status.FAILED_PRECONDITION, /already been cancelled/);
  });

  it("answers bad requests with INVALID_ARGUMENT or NOT_FOUND, never UNKNOWN", async () => {
    await expectStatus(client.setSpec({ count: 100_001, version: 1 }), Status.INVALID_ARGUMENT, /count 100001 is invalid/);
    await expectStatus(client.setSpec({ count: 1, version: 0 }), Status.INVALID_ARGUMENT, /version 0 is invalid/);
    await expectStatus(client.setSpec({ count: 1, version: 1, maxSurge: 0, maxUnavailable: 0 }), Status.INVALID_ARGUMENT, /both 0/);
    await expectStatus(client.setSpec({ group: "Not_A_Name", count: 1, version: 1 }), Status.INVALID_ARGUMENT, /group "Not_A_Name" is invalid/);
    await expectStatus(client.getGraph({ graphId: "nope" }), Status.INVALID_ARGUMENT, /graph id "nope" is invalid/);
    await expectStatus(client.getGraph({ graphId: "01ARZ3NDEKTSV4RRFFQ69G5FAV" }), Status.NOT_FOUND, /not found/);
    await expectStatus(collect(client.watchGraph({ group: "never-used" })), Status.NOT_FOUND, /^group never-used does not exist: list groups with 'client groups ls'$/);
    await expectStatus(client.listGraphs({ limit: 5000 }), Status.INVALID_ARGUMENT, /limit 5000/);
  });

  it("streams a group's node events after a snapshot", async () => {
    const abort = new AbortController();
    const stream = client.watchNodes({ group: "watched" }, { signal: abort.signal });
    const iterator = stream[Symbol.asyncIterator]();
    const first = await iterator.next();
    assert.deepEqual(first.value?.snapshot, []);
    await client.setSpec({ group: "watched", count: 1, version: 1 });
    const states: NodeState[] = [];
    while (!states.includes(NodeState.NODE_STATE_RUNNING)) {
      const next = await iterator.next();
      states.push(...next.value!.events.map((event: ApiEvent) => event.nodeState));
    }
    assert.deepEqual(states, [NodeState.NODE_STATE_STARTING, NodeState.NODE_STATE_RUNNING]);
    abort.abort();
    await iterator.next().catch(() => undefined);
  });
});
