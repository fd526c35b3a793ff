/**
 * Groups as a whole (issue 12, item 3): ListGroups and GetGroup, a read of a group that does
 * not exist refused NOT_FOUND, and DeleteGroup, which scales a group to 0 and then forgets it.
 * A real server on a free port over a real SQLite file, and the store on its own where a
 * transaction's edge is the point.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  GraphState,
  RevisionReason,
  TaskAction,
  TaskState,
  type DroverServiceClient,
  type WatchGraphResponse,
} from "@drover/shared";
import { Status } from "nice-grpc";
import { openSqliteStore } from "../src/store/SqliteStore.js";
import { drain, eventually, expectStatus, MIGRATIONS_DIR, openTestStore, startTestServer, temporaryDataDir } from "./support.js";

const NOT_FOUND = (group: string) => new RegExp(`^group ${group} does not exist: list groups with 'client groups ls'$`);

/** Sets a spec and follows its graph to its end; returns the graph's id. */
async function update(client: DroverServiceClient, group: string, count: number, version: number, more: Record<string, unknown> = {}): Promise<string> {
  const response = await client.setSpec({ group, count, version, ...more });
  if (response.graph) await drain(client.watchGraph({ graphId: response.graph.id }));
  return response.graph?.id ?? "";
}

describe("listing groups and reading one", () => {
  it("lists every group by name: its spec, its nodes up to date, available and up, its revision, and its newest graph with its state", async (t) => {
    const { client, stop } = await startTestServer();
    t.after(stop);
    await update(client, "zeta", 3, 1);
    // A rollout waiting at its canary's promote gate: one node at v2, one at v1.
    await update(client, "alpha", 2, 1);
    const canary = (await client.setSpec({ group: "alpha", count: 2, version: 2, canary: 1 })).graph!.id;
    await eventually(async () => {
      const gate = (await client.getGraph({ graphId: canary })).graph!.tasks.find((task) => task.action === TaskAction.TASK_ACTION_AWAIT_PROMOTION);
      return gate?.waiting ? true : undefined;
    }, "the canary waits at its gate");
    // Every attempt outlives a 1ms timeout: the graph fails.
    const failed = await update(client, "mid", 2, 1, { taskTimeoutMs: 1 });

    const { groups } = await client.listGroups({});
    assert.deepEqual(groups.map((group) => group.group), ["alpha", "mid", "zeta"]);
    const [alpha, mid, zeta] = groups;

    assert.equal(zeta!.revision, 1);
    assert.deepEqual([zeta!.spec!.count, zeta!.spec!.version], [3, 1]);
    assert.deepEqual([zeta!.total, zeta!.upToDate, zeta!.available, zeta!.failed, zeta!.waitingTasks], [3, 3, 3, 0, 0]);
    assert.equal(zeta!.graph!.state, GraphState.GRAPH_STATE_SUCCEEDED);
    assert.deepEqual([zeta!.graph!.counts!.succeeded, zeta!.graph!.counts!.total], [4, 4]);
    assert.equal(zeta!.graph!.tasks.length, 0, "a list carries no tasks");
    assert.equal(zeta!.deleting, false);

    assert.equal(alpha!.revision, 2);
    assert.deepEqual([alpha!.spec!.count, alpha!.spec!.version, alpha!.spec!.canary], [2, 2, 1]);
    assert.deepEqual([alpha!.total, alpha!.upToDate, alpha!.available], [2, 1, 2], "the canary is up to date, the other node not yet");
    assert.equal(alpha!.graph!.id, canary);
    assert.equal(alpha!.graph!.state, GraphState.GRAPH_STATE_RUNNING);
    assert.equal(alpha!.waitingTasks, 1, "the promote gate waits");
    assert.ok(alpha!.createdAt!.getTime() <= alpha!.updatedAt!.getTime(), "created with revision 1, updated with revision 2");

    assert.equal(mid!.graph!.id, failed);
    assert.equal(mid!.graph!.state, GraphState.GRAPH_STATE_FAILED);
    assert.deepEqual([mid!.upToDate, mid!.available], [0, 0]);

    // One group alone, with the tasks that wait and why.
    const one = await client.getGroup({ group: "alpha" });
    assert.deepEqual({ ...one.group, crashLoop: undefined }, { ...alpha, crashLoop: undefined });
    assert.equal(one.waiting.length, 1);
    assert.equal(one.waiting[0]!.action, TaskAction.TASK_ACTION_AWAIT_PROMOTION);
    assert.equal(one.waiting[0]!.state, TaskState.TASK_STATE_PENDING);
    assert.match(one.waiting[0]!.waiting, /promot/);
    assert.deepEqual((await client.getGroup({ group: "zeta" })).waiting, []);
    await client.promoteGraph({ graphId: canary });
  });

  it("refuses NOT_FOUND every read of a group that does not exist, naming how to list groups; its template and a watch of its nodes still answer", async (t) => {
    const { client, stop } = await startTestServer();
    t.after(stop);
    await expectStatus(client.listNodes({ group: "nope" }), Status.NOT_FOUND, NOT_FOUND("nope"));
    await expectStatus(client.listGraphs({ group: "nope" }), Status.NOT_FOUND, NOT_FOUND("nope"));
    await expectStatus(client.listRevisions({ group: "nope" }), Status.NOT_FOUND, NOT_FOUND("nope"));
    await expectStatus(client.getGroup({ group: "nope" }), Status.NOT_FOUND, NOT_FOUND("nope"));
    await expectStatus(client.deleteGroup({ group: "nope" }), Status.NOT_FOUND, NOT_FOUND("nope"));
    await expectStatus(client.rollback({ group: "nope" }), Status.NOT_FOUND, NOT_FOUND("nope"));
    await expectStatus(drain(client.watchGraph({ group: "nope" })), Status.NOT_FOUND, NOT_FOUND("nope"));
    await expectStatus(client.getGroup({ group: "Nope" }), Status.INVALID_ARGUMENT, /group "Nope" is invalid/);
    // What its first update would start from.
    assert.equal((await client.getTemplate({ group: "nope" })).isDefault, true);
    // A watch may begin before the group's first update: its snapshot is empty, and what follows comes.
    const abort = new AbortController();
    const watch = client.watchNodes({ group: "nope" }, { signal: abort.signal })[Symbol.asyncIterator]();
    assert.deepEqual((await watch.next()).value?.snapshot, []);
    await update(client, "nope", 1, 1);
    const next = await watch.next();
    assert.ok(next.value!.events.length > 0);
    abort.abort();
    await watch.return?.().catch(() => undefined);
    assert.equal((await client.listNodes({ group: "nope" })).nodes.length, 1);
    // A group at count 0 exists: it has a spec.
    await update(client, "idle", 0, 1);
    assert.deepEqual((await client.listNodes({ group: "idle" })).nodes, []);
    await expectStatus(drain(client.watchGraph({ group: "idle" })), Status.NOT_FOUND, /group idle has no graphs yet/);
    await expectStatus(client.pauseGraph({ graphId: "", group: "idle" }), Status.NOT_FOUND, /group idle has no graphs yet/);
    await expectStatus(client.pauseGraph({ graphId: "", group: "never" }), Status.NOT_FOUND, /group never does not exist/);
  });

  it("says that an update makes a new group, and a dry run that it would", async (t) => {
    const { client, stop } = await startTestServer();
    t.after(stop);
    assert.equal((await client.setSpec({ group: "web", count: 1, version: 1, dryRun: true })).created, true);
    assert.equal((await client.setSpec({ group: "web", count: 1, version: 1 })).created, true);
    assert.equal((await client.setSpec({ group: "web", count: 1, version: 1 })).created, false, "nothing to do on a group that exists");
    assert.equal((await client.setSpec({ group: "web", count: 2, version: 1, dryRun: true })).created, false);
  });
});

describe("deleting a group", () => {
  it("scales the group to 0 and, once that succeeds, forgets it in the same transaction: its name starts again at revision 1", async (t) => {
    const { client, driver, stop } = await startTestServer();
    t.after(stop);
    await update(client, "gone", 3, 1);
    const nodes = (await client.listNodes({ group: "gone" })).nodes;
    const { update: deletion, deleted } = await client.deleteGroup({ group: "gone" });
    assert.equal(deleted, false);
    assert.equal(deletion!.revision, 2);
    assert.deepEqual([deletion!.spec!.count, deletion!.spec!.version], [0, 1]);
    const graph = deletion!.graph!;
    assert.deepEqual(
      graph.tasks.filter((task) => task.action === TaskAction.TASK_ACTION_SHUT_DOWN_NODE).map((task) => task.nodeId).sort(),
      nodes.map((node) => node.id).sort(),
    );
    const messages = (await drain(client.watchGraph({ graphId: graph.id }))) as WatchGraphResponse[];
    const end = messages.flatMap((message) => message.events).at(-1)!;
    assert.equal(end.graphState, GraphState.GRAPH_STATE_SUCCEEDED);
    assert.equal(end.message, "group gone deleted: its spec, revisions, graphs and nodes are forgotten");

    assert.deepEqual((await client.listGroups({})).groups, []);
    await expectStatus(client.getGroup({ group: "gone" }), Status.NOT_FOUND, NOT_FOUND("gone"));
    await expectStatus(client.listRevisions({ group: "gone" }), Status.NOT_FOUND, NOT_FOUND("gone"));
    await expectStatus(client.getGraph({ graphId: graph.id }), Status.NOT_FOUND);
    await expectStatus(client.describeNode({ nodeId: nodes[0]!.id }), Status.NOT_FOUND);
    assert.deepEqual((await driver.strays(new Set())).filter((stray) => stray.group === "gone"), [], "no node of it runs");

    const again = await client.setSpec({ group: "gone", count: 1, version: 1 });
    assert.deepEqual([again.revision, again.created], [1, true]);
  });

  it("forgets at once a group with no node left", async (t) => {
    const { client, stop } = await startTestServer();
    t.after(stop);
    await update(client, "empty", 0, 1);
    await update(client, "kept", 1, 1);
    assert.deepEqual(await client.deleteGroup({ group: "empty" }), { update: undefined, deleted: true });
    assert.deepEqual((await client.listGroups({})).groups.map((group) => group.group), ["kept"]);
  });

  it("is cancelled by an update before its graph succeeds, as any rollout is superseded; the revision stays in the history as a deletion", async (t) => {
    const { client, stop } = await startTestServer({ driver: { latency: { min: 300, max: 300 } } });
    t.after(stop);
    await update(client, "web", 2, 1);
    const deletion = (await client.deleteGroup({ group: "web" })).update!;
    assert.equal((await client.getGroup({ group: "web" })).group!.deleting, true);
    const after = await update(client, "web", 2, 1);
    assert.equal((await client.getGraph({ graphId: deletion.graph!.id })).graph!.state, GraphState.GRAPH_STATE_SUPERSEDED);
    const status = (await client.getGroup({ group: "web" })).group!;
    assert.deepEqual([status.revision, status.deleting, status.graph!.id], [3, false, after]);
    const history = (await client.listRevisions({ group: "web" })).revisions;
    // The update back to 2 nodes changes only the deletion's count: a scale.
    assert.deepEqual(history.map((revision) => revision.reason), [RevisionReason.REVISION_REASON_SCALE, RevisionReason.REVISION_REASON_DELETE, RevisionReason.REVISION_REASON_UPDATE]);
    await eventually(async () => ((await client.listNodes({ group: "web" })).nodes.length === 2 ? true : undefined), "the group is back at 2 nodes");
  });

  it("is finished by the next start when the server stops in the middle of it", async (t) => {
    const dataDir = temporaryDataDir(t);
    const first = await startTestServer({ dataDir, driver: { latency: { min: 300, max: 300 } } });
    await update(first.client, "web", 2, 1);
    const deletion = (await first.client.deleteGroup({ group: "web" })).update!;
    assert.ok(deletion.graph);
    await first.stop();
    // Stopped halfway: the group is still there, deleting.
    const between = openSqliteStore(dataDir, MIGRATIONS_DIR);
    assert.equal((await between.getGroupSpec("web"))?.deleting, true);
    await between.close();
    const second = await startTestServer({ dataDir });
    t.after(second.stop);
    await eventually(async () => ((await second.client.listGroups({})).groups.length === 0 ? true : undefined), "the group is forgotten");
    await expectStatus(second.client.getGroup({ group: "web" }), Status.NOT_FOUND, NOT_FOUND("web"));
  });
});

describe("the store's forgetting of a group", () => {
  it("forgets only a group still at the revision and with every node stopped, and keeps the events, so that no sequence number is handed out twice", async (t) => {
    const store = openTestStore(t);
    const spec = { count: 1, version: 1, maxSurge: 0, maxUnavailable: 1 };
    const graphId = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
    await store.storeRevision({ group: "g", spec, graph: { id: graphId, tasks: [{ id: 0, prerequisites: [], action: "start_node", version: 1 }] }, now: 1, liveGraphs: [] });
    const node = { type: "node" as const, nodeId: "01ARZ3NDEKTSV4RRFFQ69G5FAW", group: "g", version: 1, host: "h", revision: 1 };
    await store.apply([{ ...node, state: "running" }], 2);
    assert.equal((await store.forgetGroup({ group: "g", revision: 1, settle: [], now: 3 })).forgotten, false, "a node still runs");
    await store.apply([{ ...node, state: "stopped" }], 4);
    assert.equal((await store.forgetGroup({ group: "g", revision: 2, settle: [], now: 5 })).forgotten, false, "another revision");
    assert.equal((await store.getGroupStatus("g"))?.revision, 1);

    const settled = await store.forgetGroup({ group: "g", revision: 1, settle: [{ type: "graph", graphId, group: "g", state: "succeeded" }], now: 6 });
    assert.equal(settled.forgotten, true);
    assert.equal(settled.events.length, 1, "the settling transition is committed with it");
    assert.equal(await store.getGroupSpec("g"), undefined);
    assert.deepEqual(await store.listGroupStatuses(), []);
    assert.deepEqual(await store.listNodes("g", { all: true }), []);
    assert.equal(await store.getGraph(graphId), undefined);
    assert.deepEqual(await store.listRevisions("g", 10), []);
    // The log keeps them until retention: the next event is numbered after the last.
    const kept = await store.graphEvents(graphId, 0, 100);
    assert.ok(kept.length > 0);
    const next = await store.storeRevision({ group: "g", spec, now: 7, liveGraphs: [] });
    assert.equal(next.revision, 1);
    const later = await store.apply([{ ...node, nodeId: "01ARZ3NDEKTSV4RRFFQ69G5FAX", state: "starting" }], 8);
    assert.ok(later[0]!.sequence > settled.events[0]!.sequence);
  });
});

describe("groups over the HTTP API", () => {
  it("lists groups at GET /v1/groups, reads one at GET /v1/groups/{group}, deletes one with DELETE, and answers 404 for a group that does not exist", async (t) => {
    const { client, server, stop } = await startTestServer({ server: { httpListen: "127.0.0.1:0" } });
    t.after(stop);
    const base = `http://127.0.0.1:${server.httpPort}`;
    const call = async (path: string, method = "GET") => {
      const response = await fetch(`${base}${path}`, { method });
      return { status: response.status, allow: response.headers.get("allow"), body: (await response.json()) as Record<string, any> };
    };
    await update(client, "web", 2, 1);
    await update(client, "api", 0, 1);

    const listed = await call("/v1/groups");
    assert.equal(listed.status, 200);
    assert.deepEqual(listed.body.groups.map((group: Record<string, any>) => group.group), ["api", "web"]);
    const [api, web] = listed.body.groups;
    // Proto JSON leaves zeros out, but a revision is always there (it is what expectRevision takes back).
    assert.deepEqual(api, { group: "api", revision: 1, spec: api.spec, createdAt: api.createdAt, updatedAt: api.updatedAt });
    assert.deepEqual([web.revision, web.spec.count, web.spec.version, web.total, web.upToDate, web.available], [1, 2, 1, 2, 2, 2]);
    assert.equal(web.graph.state, "GRAPH_STATE_SUCCEEDED");

    const one = await call("/v1/groups/web");
    assert.equal(one.status, 200);
    assert.deepEqual(one.body, { group: web });

    for (const path of ["/v1/groups/nope", "/v1/groups/nope/nodes", "/v1/groups/nope/revisions", "/v1/groups/nope/graphs"]) {
      const missing = await call(path);
      assert.equal(missing.status, 404, path);
      assert.deepEqual(missing.body, { error: { code: "NOT_FOUND", message: "group nope does not exist: list groups with 'client groups ls'" } });
    }
    assert.equal((await call("/v1/groups/nope", "DELETE")).status, 404);
    const wrong = await call("/v1/groups/web", "PATCH");
    assert.deepEqual([wrong.status, wrong.allow], [405, "GET, DELETE"]);

    // As curl sends it: no body, no content type.
    const deleted = await call("/v1/groups/web", "DELETE");
    assert.equal(deleted.status, 200);
    assert.equal(deleted.body.update.revision, 2);
    assert.equal(deleted.body.update.spec.count, 0);
    await drain(client.watchGraph({ graphId: deleted.body.update.graph.id }));
    assert.deepEqual((await call("/v1/groups")).body.groups.map((group: Record<string, any>) => group.group), ["api"]);
    assert.deepEqual((await call("/v1/groups/api", "DELETE")).body, { deleted: true });
    assert.deepEqual((await call("/v1/groups")).body, {});
  });
});
