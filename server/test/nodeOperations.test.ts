import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { GraphReason, GraphState, HealthCheckType, NodeState, TaskAction, TaskState } from "@drover/shared";
import { Status } from "nice-grpc";
import { drain, eventually, expectStatus, startTestServer } from "./support.js";

const live = <T extends { state: NodeState }>(nodes: T[]): T[] => nodes.filter((node) => node.state !== NodeState.NODE_STATE_STOPPED);

describe("operations on one node", { timeout: 60_000 }, () => {
  it("restarts a node by replacing it under the same revision, keeping the count", async (t) => {
    const { client, stop } = await startTestServer();
    t.after(stop);
    const { graph, revision } = await client.setSpec({ count: 3, version: 1 });
    await drain(client.watchGraph({ graphId: graph!.id }));
    const [target] = (await client.listNodes({})).nodes;
    const restart = (await client.restartNode({ nodeId: target!.id })).graph!;
    assert.equal(restart.reason, GraphReason.GRAPH_REASON_OPERATION);
    assert.equal(restart.revision, revision);
    assert.deepEqual(restart.tasks.map((task) => task.nodeId || task.version), [target!.id, 1], "shut it down, then start its replacement");
    await drain(client.watchGraph({ graphId: restart.id }));
    const nodes = (await client.listNodes({ all: true })).nodes;
    assert.equal(live(nodes).length, 3);
    assert.equal(nodes.find((node) => node.id === target!.id)!.state, NodeState.NODE_STATE_STOPPED);
    assert.equal((await client.listRevisions({})).revisions.length, 1, "a restart is not a new revision");
  });

  it("a restart while a rollout runs supersedes the rollout, and the rollout's error names the restart", async (t) => {
    const { client, driver, stop } = await startTestServer();
    t.after(stop);
    await drain(client.watchGraph({ graphId: (await client.setSpec({ count: 3, version: 1 })).graph!.id }));
    const start = driver.start.bind(driver);
    driver.start = async (node, signal) => {
      // Version 2 hangs on start until its attempt is aborted (the restart abandons it).
      if (node.version === 2) await new Promise((_, reject) => signal.addEventListener("abort", () => reject(signal.reason), { once: true }));
      return start(node, signal);
    };
    const rollout = (await client.setSpec({ count: 3, version: 2 })).graph!;
    const target = await eventually(async () => {
      const { graph } = await client.getGraph({ graphId: rollout.id });
      if (!graph!.tasks.some((task) => task.action === TaskAction.TASK_ACTION_START_NODE && task.state === TaskState.TASK_STATE_RUNNING)) return undefined;
      return (await client.listNodes({})).nodes.find((node) => node.version === 1 && node.state === NodeState.NODE_STATE_RUNNING);
    }, "the rollout's start hanging beside a running version 1 node");
    const restart = (await client.restartNode({ nodeId: target.id })).graph!;
    await drain(client.watchGraph({ graphId: rollout.id }));
    const superseded = (await client.getGraph({ graphId: rollout.id })).graph!;
    assert.equal(superseded.state, GraphState.GRAPH_STATE_SUPERSEDED);
    assert.equal(superseded.error, `superseded by a restart of node ${target.id}`);
    driver.start = start;
    await drain(client.watchGraph({ graphId: restart.id }));
    // Nobody stopped the rollout: once the restart is done, a pass carries the group on to version 2.
    await eventually(async () => {
      const nodes = (await client.listNodes({})).nodes;
      return nodes.length === 3 && nodes.every((node) => node.version === 2 && node.state === NodeState.NODE_STATE_RUNNING) ? true : undefined;
    }, "the group converged on version 2", 20_000);
  });

  it("stops a named node and lowers the count, and clones one and raises it, as new revisions", async (t) => {
    const { client, stop } = await startTestServer();
    t.after(stop);
    const { graph } = await client.setSpec({ count: 3, version: 2 });
    await drain(client.watchGraph({ graphId: graph!.id }));
    const [first, second] = (await client.listNodes({})).nodes;
    const stopped = (await client.stopNode({ nodeId: second!.id })).update!;
    assert.equal(stopped.spec!.count, 2);
    await drain(client.watchGraph({ graphId: stopped.graph!.id }));
    const afterStop = live((await client.listNodes({ all: true })).nodes);
    assert.deepEqual(afterStop.map((node) => node.id).includes(second!.id), false, "exactly that node went");
    assert.equal(afterStop.length, 2);
    const cloned = (await client.cloneNode({ nodeId: first!.id })).update!;
    assert.equal(cloned.spec!.count, 3);
    assert.equal(cloned.revision, 3);
    await drain(client.watchGraph({ graphId: cloned.graph!.id }));
    const afterClone = live((await client.listNodes({})).nodes);
    assert.equal(afterClone.length, 3);
    assert.ok(afterClone.every((node) => node.version === 2 && node.state === NodeState.NODE_STATE_RUNNING));
  });

  it("kills a node as a crash would, and the group heals itself", async (t) => {
    const { client, stop } = await startTestServer();
    t.after(stop);
    const { graph } = await client.setSpec({ count: 2, version: 1 });
    await drain(client.watchGraph({ graphId: graph!.id }));
    const [victim] = (await client.listNodes({})).nodes;
    await client.killNode({ nodeId: victim!.id });
    const repair = await eventually(async () => {
      const [latest] = (await client.listGraphs({})).graphs;
      return latest!.reason === GraphReason.GRAPH_REASON_REPAIR && latest!.state === GraphState.GRAPH_STATE_SUCCEEDED ? latest : undefined;
    }, "the repair graph succeeded");
    assert.ok(repair);
    const nodes = live((await client.listNodes({})).nodes);
    assert.equal(nodes.length, 2);
    assert.ok(!nodes.some((node) => node.id === victim!.id));
  });

  it("answers bad node operations with the right status", async (t) => {
    const { client, stop } = await startTestServer();
    t.after(stop);
    await expectStatus(client.restartNode({ nodeId: "nope" }), Status.INVALID_ARGUMENT, /node id "nope" is invalid/);
    await expectStatus(client.stopNode({ nodeId: "01ARZ3NDEKTSV4RRFFQ69G5FAV" }), Status.NOT_FOUND, /node 01ARZ3NDEKTSV4RRFFQ69G5FAV not found/);
    const { graph } = await client.setSpec({ count: 1, version: 1 });
    await drain(client.watchGraph({ graphId: graph!.id }));
    const [node] = (await client.listNodes({})).nodes;
    await expectStatus(drain(client.nodeLogs({ nodeId: node!.id })), Status.FAILED_PRECONDITION, /the mock driver keeps none/);
    const stats = (await client.getNodeStats({ nodeId: node!.id })).node!;
    assert.equal(stats.id, node!.id);
    assert.equal(stats.stats, undefined, "simulated nodes have no process to read");
    const update = await client.setSpec({ count: 2, version: 2 });
    await drain(client.watchGraph({ graphId: update.graph!.id }));
    const [old] = (await client.listNodes({ all: true })).nodes.filter((candidate) => candidate.state === NodeState.NODE_STATE_STOPPED);
    await expectStatus(client.killNode({ nodeId: old!.id }), Status.FAILED_PRECONDITION, /is stopped: only a live node/);
  });

  it("refuses a spec that does not fit on the host, naming what is short and by how much", async (t) => {
    const { client, stop } = await startTestServer({ server: { capacity: { cpuMillis: 4000, memoryMb: 1024 } } });
    t.after(stop);
    const fits = await client.setSpec({ group: "a", count: 2, version: 1, cpuMillis: 1000, memoryMb: 256 });
    assert.equal(fits.revision, 1);
    await expectStatus(
      client.setSpec({ group: "b", count: 2, version: 1, maxSurge: 1, cpuMillis: 1000, memoryMb: 256 }),
      Status.RESOURCE_EXHAUSTED,
      /cpu: 3 nodes × 1 core = 3 cores, with 2 cores held by other groups, exceeds the host's 4 cores by 1 core; memory: 3 nodes × 256\.0 MiB = 768\.0 MiB, with 512\.0 MiB held by other groups, exceeds the host's 1\.0 GiB by 256\.0 MiB/,
    );
    await expectStatus(client.listRevisions({ group: "b" }), Status.NOT_FOUND, /group b does not exist/);
    assert.equal((await client.setSpec({ group: "b", count: 2, version: 1, cpuMillis: 1000, memoryMb: 256 })).revision, 1);
  });

  it("keeps a template per group, fills its defaults, and refuses a bad one", async (t) => {
    const { client, stop } = await startTestServer();
    t.after(stop);
    const initial = await client.getTemplate({ group: "web" });
    assert.equal(initial.isDefault, true);
    assert.match(initial.template!.args[0]!, /examples\/chat\/chat\.mjs$/);
    const stored = (await client.setTemplate({ group: "web", template: { command: "/bin/sleep", args: ["1000"], env: { MODE: "{version}" }, stopGraceMs: 0 } })).template!;
    assert.equal(stored.healthCheck!.type, HealthCheckType.HEALTH_CHECK_TYPE_HTTP);
    assert.equal(stored.healthCheck!.path, "/healthz");
    assert.equal(stored.stopGraceMs, 5000);
    const read = await client.getTemplate({ group: "web" });
    assert.equal(read.isDefault, false);
    assert.equal(read.template!.command, "/bin/sleep");
    await expectStatus(client.setTemplate({ group: "web", template: { command: " ", args: [], env: {}, stopGraceMs: 0 } }), Status.INVALID_ARGUMENT, /command is empty/);
    await expectStatus(
      client.setTemplate({ group: "web", template: { command: "x", args: [], env: { PORT: "1" }, stopGraceMs: 0 } }),
      Status.INVALID_ARGUMENT,
      /env PORT is set by the driver/,
    );
    await expectStatus(
      client.setTemplate({ group: "web", template: { command: "x", args: [], env: {}, stopGraceMs: 0, healthCheck: { type: HealthCheckType.HEALTH_CHECK_TYPE_HTTP, path: "no-slash", intervalMs: 0, timeoutMs: 0, failureThreshold: 0, startTimeoutMs: 0 } } }),
      Status.INVALID_ARGUMENT,
      /health check path "no-slash" is invalid/,
    );
  });
});
