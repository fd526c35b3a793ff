import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { GraphReason, GraphState, shortId } from "@drover/shared";
import { Status } from "nice-grpc";
import type { PlannedTask } from "../src/domain.js";
import { drain, eventually, expectStatus, openTestStore, startTestServer } from "./support.js";

/** The longest start two ids share. */
function commonPrefix(a: string, b: string): string {
  let length = 0;
  while (length < a.length && a[length] === b[length]) length++;
  return a.slice(0, length);
}

describe("graphs and nodes named by a prefix or a short form", () => {
  it("finds the one id a prefix or a short form names, of graphs and of nodes, and refuses one that names none or several", async () => {
    const { client, stop } = await startTestServer();
    try {
      const { graph } = await client.setSpec({ group: "prefixes", count: 3, version: 1 });
      await drain(client.watchGraph({ graphId: graph!.id }));
      const nodes = (await client.listNodes({ group: "prefixes" })).nodes.map((node) => node.id).sort();
      assert.equal(nodes.length, 3);

      // The only graph: any 6 characters of it are unique, in either case; so is its short form.
      for (const reference of [graph!.id.slice(0, 6), graph!.id.slice(0, 6).toLowerCase(), shortId(graph!.id), `${graph!.id.slice(0, 6)}...${graph!.id.slice(-4)}`]) {
        assert.equal((await client.getGraph({ graphId: reference })).graph!.id, graph!.id, reference);
      }
      const messages = await drain(client.watchGraph({ graphId: graph!.id.slice(0, 8) }));
      assert.equal(messages[0]!.snapshot!.id, graph!.id, "a watch takes a prefix too");

      // Nodes started together share their timestamp: a prefix of it matches them all.
      const shared = commonPrefix(nodes[0]!, nodes[2]!);
      assert.ok(shared.length >= 6, `nodes started together share at least 6 characters: ${nodes.join(", ")}`);
      await expectStatus(
        client.getNodeStats({ nodeId: shared }),
        Status.INVALID_ARGUMENT,
        new RegExp(`^node id ${shared} is ambiguous: it matches ${nodes[0]} \\(group prefixes\\), .*${nodes[2]} \\(group prefixes\\); give more of its characters$`),
      );
      // Its short form tells each apart.
      for (const id of nodes) assert.equal((await client.describeNode({ nodeId: shortId(id) })).node!.id, id);
      assert.equal((await client.killNode({ nodeId: nodes[1]!.toLowerCase() })).node!.id, nodes[1], "a whole id in either case");

      await expectStatus(client.getGraph({ graphId: "ZZZZZZ" }), Status.NOT_FOUND, /^no graph id begins with ZZZZZZ: list graphs with 'client graphs ls'$/);
      await expectStatus(client.restartNode({ nodeId: `${nodes[0]!.slice(0, 6)}…ZZZZ` }), Status.NOT_FOUND, new RegExp(`^no node id matches ${nodes[0]!.slice(0, 6)}…ZZZZ: list nodes with 'client nodes ls --all'$`));
      await expectStatus(client.getGraph({ graphId: "01A" }), Status.INVALID_ARGUMENT, /^graph id "01A" is too short: give at least its first 4 characters/);
      await expectStatus(client.cancelGraph({ graphId: "nope", group: "" }), Status.INVALID_ARGUMENT, /^graph id "nope" is invalid/);
    } finally {
      await stop();
    }
  });

  it("looks a prefix up as a range of the primary key, with the short form's end checked in the same query", async (t) => {
    const store = openTestStore(t);
    const spec = { count: 1, version: 1, maxSurge: 0, maxUnavailable: 1 };
    const tasks: PlannedTask[] = [];
    await store.storeRevision({ group: "a", spec, graph: { id: "01AAAAAAAAAAAAAAAAAAAAAAA1", tasks }, now: 1, liveGraphs: [] });
    await store.storeRevision({ group: "b", spec, graph: { id: "01AAAAAAAAAAAAAAAAAAAAAAA2", tasks }, now: 2, liveGraphs: [] });
    await store.storeRevision({ group: "b", spec, graph: { id: "01AAAB0000000000000000000Z", tasks }, now: 3, liveGraphs: [] });
    const ids = async (prefix: string, suffix = "") => (await store.idsMatching("graph", prefix, suffix, 10)).map((match) => `${match.id} ${match.group}`);
    assert.deepEqual(await ids("01AAAA"), ["01AAAAAAAAAAAAAAAAAAAAAAA1 a", "01AAAAAAAAAAAAAAAAAAAAAAA2 b"]);
    assert.deepEqual(await ids("01AAA"), ["01AAAAAAAAAAAAAAAAAAAAAAA1 a", "01AAAAAAAAAAAAAAAAAAAAAAA2 b", "01AAAB0000000000000000000Z b"]);
    assert.deepEqual(await ids("01AAAA", "A2"), ["01AAAAAAAAAAAAAAAAAAAAAAA2 b"]);
    assert.deepEqual(await ids("01AAAB", "Z"), ["01AAAB0000000000000000000Z b"]);
    assert.deepEqual(await ids("01AAAC"), []);
    assert.deepEqual(await store.idsMatching("node", "01AAAA", "", 10), [], "nodes are looked up apart from graphs");
  });
});

describe("the group's graph in progress", () => {
  it("is what pause, resume, cancel and promote act on without a graph id, over gRPC and HTTP", async () => {
    const { client, server, stop } = await startTestServer({
      driver: { latency: { min: 300, max: 400 } },
      server: { httpListen: "127.0.0.1:0" },
    });
    try {
      await expectStatus(client.pauseGraph({ graphId: "", group: "steer" }), Status.NOT_FOUND, /^group steer does not exist: list groups with 'client groups ls'$/);
      const { graph } = await client.setSpec({ group: "steer", count: 6, version: 1 });
      const paused = (await client.pauseGraph({ graphId: "", group: "steer" })).graph!;
      assert.equal(paused.id, graph!.id);
      assert.equal(paused.state, GraphState.GRAPH_STATE_PAUSED);
      assert.equal((await client.resumeGraph({ graphId: "", group: "steer" })).graph!.state, GraphState.GRAPH_STATE_RUNNING);

      const call = (path: string) =>
        fetch(`http://127.0.0.1:${server.httpPort}${path}`, { method: "POST", headers: { "content-type": "application/json" } });
      const response = await call("/v1/groups/steer/graphs/current:pause");
      assert.equal(response.status, 200, await response.clone().text());
      assert.equal(((await response.json()) as { graph: { id: string; state: string } }).graph.state, "GRAPH_STATE_PAUSED");
      assert.equal((await call(`/v1/graphs/${shortId(graph!.id)}:resume`)).status, 200, "the short form in a URL");

      const cancelled = (await client.cancelGraph({ graphId: "", group: "steer" })).graph!;
      assert.equal(cancelled.id, graph!.id);
      assert.equal(cancelled.state, GraphState.GRAPH_STATE_CANCELLED);
      await expectStatus(
        client.cancelGraph({ graphId: "", group: "steer" }),
        Status.FAILED_PRECONDITION,
        new RegExp(`^group steer has no graph in progress to cancel: its latest graph, ${graph!.id}, has been cancelled \\(list them with 'client graphs ls'\\)$`),
      );

      // A canary rollout waits at its gate; promote without an id finds it.
      const { graph: canary } = await client.setSpec({ group: "steer", count: 6, version: 2, canary: 1 });
      await eventually(async () => ((await client.getGraph({ graphId: canary!.id })).graph!.tasks.some((task) => task.waiting !== "" && task.action === 4) ? true : undefined), "the canary at its gate");
      assert.equal((await client.promoteGraph({ graphId: "", group: "steer" })).graph!.id, canary!.id);
    } finally {
      await stop();
    }
  });

  it("is the newest unsettled graph, a rollout before a heal running beside it", async (t) => {
    const store = openTestStore(t);
    const spec = { count: 1, version: 1, maxSurge: 0, maxUnavailable: 1 };
    assert.equal(await store.currentGraph("g"), undefined);
    await store.storeRevision({ group: "g", spec, graph: { id: "01AAAAAAAAAAAAAAAAAAAAAAA1", tasks: [] }, now: 1, liveGraphs: [] });
    await store.storeGraph({ group: "g", revision: 1, reason: "heal", graph: { id: "01AAAAAAAAAAAAAAAAAAAAAAA2", tasks: [] }, now: 2, liveGraphs: ["01AAAAAAAAAAAAAAAAAAAAAAA1"] });
    assert.equal((await store.currentGraph("g"))?.id, "01AAAAAAAAAAAAAAAAAAAAAAA1", "the rollout, not the newer heal");
    await store.apply([{ type: "graph", graphId: "01AAAAAAAAAAAAAAAAAAAAAAA1", group: "g", state: "failed" }], 3);
    assert.equal((await store.currentGraph("g"))?.id, "01AAAAAAAAAAAAAAAAAAAAAAA2", "the heal, once it runs alone");
    await store.apply([{ type: "graph", graphId: "01AAAAAAAAAAAAAAAAAAAAAAA2", group: "g", state: "succeeded" }], 4);
    assert.equal(await store.currentGraph("g"), undefined);
    assert.equal(GraphReason.GRAPH_REASON_HEAL, 4);
  });
});
