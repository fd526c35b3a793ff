import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { GraphReason, RevisionReason } from "@drover/shared";
import { drain, openTestStore, startTestServer } from "./support.js";
import { REVISION_GRAPHS_LISTED } from "../src/store/SqliteStore.js";

describe("why revisions and graphs were made", () => {
  it("lists each revision with its newest graphs, newest first, and how many it has", async (t) => {
    const store = openTestStore(t);
    const spec = { count: 1, version: 1, maxSurge: 0, maxUnavailable: 1 };
    const id = (n: number) => `01AAAAAAAAAAAAAAAAAAAAA${String(n).padStart(3, "0")}`;
    await store.storeRevision({ group: "g", spec, graph: { id: id(0), tasks: [] }, now: 1, liveGraphs: [] });
    // A crash loop: many heals under one revision.
    for (let n = 1; n <= 25; n++) {
      await store.storeGraph({ group: "g", revision: 1, reason: "heal", graph: { id: id(n), tasks: [] }, now: 1 + n, liveGraphs: [id(0), id(n - 1)] });
    }
    await store.storeRevision({ group: "g", spec: { ...spec, count: 2 }, reason: "scale", graph: { id: id(100), tasks: [] }, now: 50, liveGraphs: [] });
    await store.storeRevision({ group: "other", spec, graph: { id: id(200), tasks: [] }, now: 60, liveGraphs: [] });

    const [second, first] = await store.listRevisions("g", 10);
    assert.deepEqual([second!.revision, second!.reason, second!.graphCount, second!.graphs!.map((graph) => graph.id)], [2, "scale", 1, [id(100)]]);
    assert.equal(first!.graphCount, 26);
    assert.equal(first!.graphs!.length, REVISION_GRAPHS_LISTED);
    assert.deepEqual(first!.graphs!.slice(0, 2).map((graph) => [graph.id, graph.reason]), [[id(25), "heal"], [id(24), "heal"]], "newest first");
    assert.equal(first!.graphId, id(0), "the revision's graph is still its rollout, not its newest heal");
    assert.deepEqual((await store.listRevisions("g", 1)).map((revision) => revision.graphCount), [1], "only the revisions listed are read");
  });

  it("says a graph's revision's reason with the graph, and the reason of a stop, a clone and a scale", async () => {
    const { client, stop } = await startTestServer();
    try {
      const settled = async (graphId: string | undefined) => void (graphId && (await drain(client.watchGraph({ graphId }))));
      await settled((await client.setSpec({ group: "words", count: 2, version: 1 })).graph?.id);
      const scaled = await client.setSpec({ group: "words", count: 3, version: 1 });
      await settled(scaled.graph?.id);
      const [node] = (await client.listNodes({ group: "words" })).nodes;
      const stopped = await client.stopNode({ nodeId: node!.id });
      await settled(stopped.update?.graph?.id);
      const [another] = (await client.listNodes({ group: "words" })).nodes.filter((each) => each.id !== node!.id);
      const cloned = await client.cloneNode({ nodeId: another!.id });
      await settled(cloned.update?.graph?.id);
      const rolledBack = await client.rollback({ group: "words", revision: 1, withCount: true });
      const reasons = new Map((await client.listRevisions({ group: "words" })).revisions.map((revision) => [revision.revision, [revision.reason, revision.restores]]));
      assert.deepEqual(Object.fromEntries(reasons), {
        1: [RevisionReason.REVISION_REASON_UPDATE, 0],
        2: [RevisionReason.REVISION_REASON_SCALE, 0],
        3: [RevisionReason.REVISION_REASON_STOP, 0],
        4: [RevisionReason.REVISION_REASON_CLONE, 0],
        5: [RevisionReason.REVISION_REASON_ROLLBACK, 1],
      });
      const graphs = new Map((await client.listGraphs({ group: "words" })).graphs.map((graph) => [graph.id, [graph.reason, graph.revisionReason, graph.restores]]));
      assert.deepEqual(graphs.get(scaled.graph!.id), [GraphReason.GRAPH_REASON_UPDATE, RevisionReason.REVISION_REASON_SCALE, 0]);
      assert.deepEqual(graphs.get(stopped.update!.graph!.id), [GraphReason.GRAPH_REASON_UPDATE, RevisionReason.REVISION_REASON_STOP, 0]);
      assert.deepEqual(graphs.get(cloned.update!.graph!.id), [GraphReason.GRAPH_REASON_UPDATE, RevisionReason.REVISION_REASON_CLONE, 0]);
      assert.deepEqual(graphs.get(rolledBack.update!.graph!.id), [GraphReason.GRAPH_REASON_UPDATE, RevisionReason.REVISION_REASON_ROLLBACK, 1]);
      const shown = await client.getGraph({ graphId: scaled.graph!.id });
      assert.equal(shown.graph!.revisionReason, RevisionReason.REVISION_REASON_SCALE, "a graph read alone says it too");
    } finally {
      await stop();
    }
  });
});
