import assert from "node:assert/strict";
import { getEventListeners } from "node:events";
import { describe, it } from "node:test";
import {
  Event as ApiEvent,
  type Graph as ApiGraph,
  GraphState,
  SnapshotAssembler,
  TaskState,
  WatchGraphResponse,
  WatchNodesResponse,
} from "@drover/shared";
import { GraphSnapshots, SNAPSHOT_PAGE_TASKS } from "../src/api/GraphSnapshots.js";
import { liveApiEvent, sharedMessage, wireDefinition } from "../src/api/wire.js";
import type { Event } from "../src/domain.js";
import { EventBus } from "../src/events/EventBus.js";
import { drain, eventually, openTestStore, startTestServer } from "./support.js";

/** The whole snapshot a watch started with, put back together from its pages. */
function assembled(messages: WatchGraphResponse[]): { graph: ApiGraph; rest: WatchGraphResponse[] } {
  const pages = new SnapshotAssembler();
  for (const [index, message] of messages.entries()) {
    const graph = pages.add(message);
    if (graph) return { graph, rest: messages.slice(index + 1) };
  }
  throw new Error("the stream ended before its snapshot was whole");
}

describe("graphs larger than one message", () => {
  it("sends a large graph's snapshot in pages that put it back together whole, and the HTTP API sends it whole", async (t) => {
    const { client, server, stop } = await startTestServer({
      driver: { latency: { min: 0, max: 0 } },
      server: { parallelism: 64, httpListen: "127.0.0.1:0" },
    });
    t.after(stop);
    const count = 2 * SNAPSHOT_PAGE_TASKS + 1_000;
    const { graph } = await client.setSpec({ group: "large", count, version: 1 });
    await drain(client.watchGraph({ graphId: graph!.id }));

    const messages = await drain(client.watchGraph({ graphId: graph!.id }));
    assert.equal(messages[0]!.snapshot!.tasks.length, SNAPSHOT_PAGE_TASKS, "the first message holds one page of tasks");
    assert.ok(messages.length >= 3, `a graph of ${count + 1} tasks comes in three pages`);
    assert.ok(messages.slice(1).every((message) => message.snapshot === undefined && message.events.length === 0));
    const { graph: snapshot, rest } = assembled(messages);
    assert.equal(rest.length, 0, "a settled graph's watch ends with its snapshot");
    assert.equal(snapshot.state, GraphState.GRAPH_STATE_SUCCEEDED);
    const stored = (await client.getGraph({ graphId: graph!.id })).graph!;
    assert.equal(snapshot.tasks.length, count + 1);
    assert.deepEqual(snapshot.tasks, stored.tasks, "the pages hold every task once, in id order");

    const response = await fetch(`http://127.0.0.1:${server.httpPort}/v1/graphs/${graph!.id}/events`, { headers: { accept: "application/x-ndjson" } });
    assert.equal(response.status, 200);
    const lines = (await response.text()).trim().split("\n").map((line) => JSON.parse(line) as Record<string, any>);
    assert.equal(lines.length, 1, "one snapshot line for a settled graph");
    assert.equal(lines[0]!.snapshot.tasks.length, count + 1);
  });

  it("gives watchers that start together one snapshot, and each still gets every event after it exactly once", async (t) => {
    const { client, stop } = await startTestServer({ driver: { latency: { min: 2, max: 10 } }, server: { parallelism: 8 } });
    t.after(stop);
    const { graph } = await client.setSpec({ group: "shared", count: 300, version: 1 });
    const graphId = graph!.id;
    // Let it get going, so that the snapshots are taken while events are being committed.
    await eventually(async () => ((await client.getGraph({ graphId })).graph!.counts!.succeeded > 20 ? true : undefined), "tasks succeeding");
    const watches = await Promise.all(Array.from({ length: 20 }, () => drain(client.watchGraph({ graphId }))));
    const log = (await drain(client.watchGraph({ graphId, afterSequence: 0 }))).flatMap((message) => message.events);
    const final = (await client.getGraph({ graphId })).graph!;
    assert.equal(final.state, GraphState.GRAPH_STATE_SUCCEEDED);
    for (const messages of watches) {
      const { graph: snapshot, rest } = assembled(messages);
      const events = rest.flatMap((message) => message.events);
      assert.deepEqual(
        events.map((event) => event.sequence),
        log.filter((event) => event.sequence > snapshot.sequence).map((event) => event.sequence),
        "every event after the snapshot, once, in order",
      );
      // The snapshot plus the events is the graph's final state.
      const states = new Map(snapshot.tasks.map((task) => [task.id, task.state]));
      for (const event of events) if (event.taskState !== TaskState.TASK_STATE_UNSPECIFIED) states.set(event.taskId, event.taskState);
      assert.deepEqual(states, new Map(final.tasks.map((task) => [task.id, task.state])));
    }
  });
});

describe("resumed watches", () => {
  it("end with the graph's final event however the graph's end falls during the catch-up", async (t) => {
    const { client, stop } = await startTestServer({ driver: { latency: { min: 1, max: 6 } }, server: { parallelism: 8 } });
    t.after(stop);
    const { graph } = await client.setSpec({ group: "resumed", count: 400, version: 1 });
    const graphId = graph!.id;
    // Resumed from the start at moments spread over the run, and one after it settled.
    const watches: Promise<WatchGraphResponse[]>[] = [];
    for (let n = 0; n < 12; n++) {
      watches.push(drain(client.watchGraph({ graphId, afterSequence: 0 })));
      await new Promise((resolve) => setTimeout(resolve, 15));
    }
    await eventually(async () => ((await client.getGraph({ graphId })).graph!.state === GraphState.GRAPH_STATE_SUCCEEDED ? true : undefined), "the graph settling");
    watches.push(drain(client.watchGraph({ graphId, afterSequence: 0 })));
    const log = (await drain(client.watchGraph({ graphId, afterSequence: 0 }))).flatMap((message) => message.events);
    for (const messages of await Promise.all(watches)) {
      const events = messages.flatMap((message) => message.events);
      assert.deepEqual(events.map((event) => event.sequence), log.map((event) => event.sequence), "every event once, the last being the end");
      assert.equal(events.at(-1)!.graphState, GraphState.GRAPH_STATE_SUCCEEDED);
    }
  });
});

describe("a subscription", () => {
  it("lets go of its signal when closed, so a watch that ended leaves nothing listening", async () => {
    const bus = new EventBus();
    const subscription = bus.subscribe(() => true);
    // What a watch waits on: a signal combined from the call's and the server's, never aborted.
    const signal = AbortSignal.any([new AbortController().signal, new AbortController().signal]);
    const taken = subscription.take(signal);
    assert.equal(getEventListeners(signal, "abort").length, 1);
    bus.publish([{ sequence: 1, time: 0, type: "graph", group: "g", graphId: "x", state: "running" }]);
    assert.equal((await taken).length, 1);
    subscription.close();
    assert.equal(getEventListeners(signal, "abort").length, 0);
    assert.equal(bus.subscriberCount, 0);
  });
});

describe("GraphSnapshots", () => {
  it("shares a snapshot within its window, and takes a new one after the graph changes state", async (t) => {
    const store = openTestStore(t);
    const bus = new EventBus();
    let now = 1_000;
    const snapshots = new GraphSnapshots(store, bus, () => now, 500, 2);
    const graphId = "01JDX6AAAAAAAAAAAAAAAAAAAA";
    await store.storeRevision({
      group: "g",
      spec: { count: 5, version: 1, maxSurge: 0, maxUnavailable: 1 },
      graph: { id: graphId, tasks: Array.from({ length: 5 }, (_, id) => ({ id, prerequisites: [], action: "start_node" as const, version: 1 })) },
      now,
      liveGraphs: [],
    });
    const first = (await snapshots.get(graphId))!;
    assert.deepEqual(first.pages.map((page) => (page.snapshot?.tasks ?? page.snapshotTasks).length), [2, 2, 1], "pages of at most 2 tasks");
    now += 400;
    assert.equal(await snapshots.get(graphId), first, "shared within the window");
    now += 200;
    const second = (await snapshots.get(graphId))!;
    assert.notEqual(second, first, "a new one after the window");
    bus.publish([{ sequence: 9, time: now, type: "graph", group: "g", graphId, state: "running" }]);
    assert.notEqual(await snapshots.get(graphId), second, "a new one after the graph changed state");
    assert.equal(await snapshots.get("01JDX6BBBBBBBBBBBBBBBBBBBB"), undefined);
  });
});

describe("the watch streams' encoders", () => {
  const encode = (message: WatchGraphResponse) => wireDefinition.methods.watchGraph.responseType.encode(message).finish();
  const event: Event = { sequence: 42, time: 1_700_000_000_123, type: "task", group: "g", graphId: "01JDX6AAAAAAAAAAAAAAAAAAAA", taskId: 7, action: "start_node", state: "running", attempt: 2, nodeId: "01JDX6CCCCCCCCCCCCCCCCCCCC", version: 3 };

  it("encode what the generated encoders encode, once for a message many streams send", () => {
    const live = liveApiEvent(event);
    assert.equal(liveApiEvent(event), live, "one API object per committed event");
    const message: WatchGraphResponse = { snapshot: undefined, events: [live, ApiEvent.fromPartial({ sequence: 43, group: "g" })], snapshotTasks: [] };
    assert.deepEqual(WatchGraphResponse.decode(encode(message)), message);
    assert.deepEqual(Buffer.from(encode(message)), Buffer.from(WatchGraphResponse.encode(message).finish()));

    // A live message, every event already encoded: one exact buffer, the same bytes.
    const many = Array.from({ length: 300 }, (_, n) => liveApiEvent({ ...event, sequence: 1_000 + n, error: "e".repeat(n) }));
    const liveOnly: WatchGraphResponse = { snapshot: undefined, events: many, snapshotTasks: [] };
    assert.deepEqual(Buffer.from(encode(liveOnly)), Buffer.from(WatchGraphResponse.encode(liveOnly).finish()));
    const nodes: WatchNodesResponse = { snapshot: [], sequence: 0, events: many };
    assert.deepEqual(
      Buffer.from(wireDefinition.methods.watchNodes.responseType.encode(nodes).finish()),
      Buffer.from(WatchNodesResponse.encode(nodes).finish()),
    );

    const page = sharedMessage<WatchGraphResponse>({
      snapshot: undefined,
      events: [],
      snapshotTasks: [{ id: 1, prerequisites: [0], action: 1, nodeId: "n", version: 2, state: 3, attempts: 1, error: "", startedAt: new Date(5), finishedAt: undefined, waiting: "", revision: 0 }],
    });
    const once = encode(page);
    page.snapshotTasks[0]!.attempts = 9;
    assert.deepEqual(encode(page), once, "a shared message is encoded the first time it is sent");
    assert.equal(WatchGraphResponse.decode(once).snapshotTasks[0]!.attempts, 1);
  });
});
