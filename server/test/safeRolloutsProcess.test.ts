/**
 * The seen faults with real processes: the real server program with the process
 * driver, shell templates that crash after readiness, a template that cannot start, and a
 * version that crash-loops. Bounds are checked from the node event stream.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import {
  type DroverServiceClient,
  FailurePolicy,
  GraphReason,
  GraphState,
  HealthCheckType,
  NodeState,
  type NodeTemplate,
  type WatchNodesResponse,
} from "@drover/shared";
import { CHAT_EXAMPLE } from "../src/templates.js";
import { freePort, freePortWindow, startServer, waitUntilServing } from "./processes.js";
import { drain, eventually } from "./support.js";

const chat = (script: string): NodeTemplate => ({
  command: "/bin/sh",
  args: ["-c", script],
  env: {},
  healthCheck: { type: HealthCheckType.HEALTH_CHECK_TYPE_HTTP, path: "/healthz", intervalMs: 200, timeoutMs: 500, failureThreshold: 3, startTimeoutMs: 10_000 },
  stopGraceMs: 2000,
});

/** Seen item 1's template: version 2 is SIGKILLed a second after it starts, healthy until then. */
const DIES_AT_V2 = chat(
  `if [ "$DROVER_VERSION" = 2 ]; then (sleep 1; kill -9 $$) & exec "${process.execPath}" "${CHAT_EXAMPLE}"; fi; exec "${process.execPath}" "${CHAT_EXAMPLE}"`,
);

async function processServer(flags: string[]): Promise<{ client: DroverServiceClient; stop: () => Promise<void> }> {
  const dataDir = mkdtempSync(join(tmpdir(), "drover-safe-"));
  const ports = await freePortWindow(12);
  const port = await freePort();
  const { child, exited } = startServer([
    "--driver", "process",
    "--data-dir", dataDir,
    "--listen", `127.0.0.1:${port}`,
    "--port-range", `${ports.first}..${ports.last}`,
    "--log-level", "warn",
    ...flags,
  ]);
  const client = await waitUntilServing(port, dataDir);
  return {
    client,
    stop: async () => {
      // Nodes outlive a clean stop; scale every group to zero first so no process is left behind.
      for (const group of ["default"]) {
        const { graph } = await client.setSpec({ group, count: 0, version: 1 }).catch(() => ({ graph: undefined }));
        if (graph) await drain(client.watchGraph({ graphId: graph.id })).catch(() => undefined);
      }
      child.kill("SIGTERM");
      await exited;
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

async function settle(client: DroverServiceClient, graphId: string) {
  await drain(client.watchGraph({ graphId }, { signal: AbortSignal.timeout(120_000) }));
  return (await client.getGraph({ graphId })).graph!;
}

/** Follows the group's node events and keeps the fewest running nodes seen since `arm()`. */
function runningFloor(client: DroverServiceClient) {
  const states = new Map<string, NodeState>();
  let armed = false;
  let lowest = Number.POSITIVE_INFINITY;
  const controller = new AbortController();
  const count = () => [...states.values()].filter((state) => state === NodeState.NODE_STATE_RUNNING).length;
  const done = (async () => {
    try {
      for await (const message of client.watchNodes({}, { signal: controller.signal }) as AsyncIterable<WatchNodesResponse>) {
        for (const node of message.snapshot) states.set(node.id, node.state);
        for (const event of message.events) states.set(event.nodeId, event.nodeState);
        if (armed) lowest = Math.min(lowest, count());
      }
    } catch {
      // Aborted at the end.
    }
  })();
  return {
    arm: () => {
      armed = true;
      lowest = count();
    },
    lowest: async () => {
      controller.abort();
      await done;
      return lowest;
    },
  };
}

describe("safe rollouts with real processes", { timeout: 240_000 }, () => {
  const stops: (() => Promise<void>)[] = [];
  after(async () => {
    for (const stop of stops) await stop();
  });

  it("fails an update whose new version dies after its health check, naming the node and its exit, never below count − max unavailable running, and rolls back", async () => {
    // The server's default min-ready (10s for real processes) is what catches a death 1s in.
    const { client, stop } = await processServer([]);
    stops.push(stop);
    await client.setTemplate({ template: DIES_AT_V2 });
    const first = await settle(client, (await client.setSpec({ count: 3, version: 1 })).graph!.id);
    assert.equal(first.state, GraphState.GRAPH_STATE_SUCCEEDED, first.error);
    const floor = runningFloor(client);
    await eventually(async () => ((await client.listNodes({})).nodes.length === 3 ? true : undefined), "the watch caught up");
    await sleep(200);
    floor.arm();
    const update = await client.setSpec({ count: 3, version: 2, onFailure: FailurePolicy.FAILURE_POLICY_ROLLBACK });
    const failed = await settle(client, update.graph!.id);
    assert.equal(failed.state, GraphState.GRAPH_STATE_FAILED);
    assert.match(failed.error, /node [0-9A-Z]{26} failed within its min-ready of 10s: its process \(pid \d+\) killed by SIGKILL/);
    assert.match(failed.message, /^rolling back to revision \d+ \(3 × v1\)/);
    const rollback = await settle(client, failed.nextGraphId);
    assert.equal(rollback.state, GraphState.GRAPH_STATE_SUCCEEDED, rollback.error);
    const nodes = (await client.listNodes({})).nodes;
    assert.deepEqual(nodes.map((node) => [node.version, NodeState[node.state]]), Array(3).fill([1, "NODE_STATE_RUNNING"]));
    assert.ok((await floor.lowest()) >= 2, "running never went below count − max unavailable = 2");
  });

  it("rolls a broken template back to the good one it replaced, as part of the revision", async () => {
    const { client, stop } = await processServer(["--min-ready", "300ms"]);
    stops.push(stop);
    const good = chat(`exec "${process.execPath}" "${CHAT_EXAMPLE}"`);
    const first = await settle(client, (await client.setSpec({ count: 2, version: 1, template: good })).graph!.id);
    assert.equal(first.state, GraphState.GRAPH_STATE_SUCCEEDED, first.error);
    const broken = chat(`exec "${process.execPath}" /nonexistent/script.mjs`);
    const update = await client.setSpec({ count: 2, version: 2, template: broken, onFailure: FailurePolicy.FAILURE_POLICY_ROLLBACK });
    const failed = await settle(client, update.graph!.id);
    assert.equal(failed.state, GraphState.GRAPH_STATE_FAILED);
    assert.match(failed.error, /exited with code 1 as it started \(its log says: Error: Cannot find module '\/nonexistent\/script\.mjs'/);
    assert.match(failed.message, /^rolling back to revision 1 \(2 × v1, its template\)/);
    const rollback = await settle(client, failed.nextGraphId);
    assert.equal(rollback.state, GraphState.GRAPH_STATE_SUCCEEDED, rollback.error);
    const history = (await client.listRevisions({})).revisions;
    const [restored, bad, original] = history;
    assert.equal(restored!.spec!.templateHash, original!.spec!.templateHash, "the rollback restored revision 1's template");
    assert.notEqual(bad!.spec!.templateHash, original!.spec!.templateHash, "history shows the template changed");
    assert.deepEqual(restored!.spec!.template!.args, good.args);
    const nodes = (await client.listNodes({})).nodes;
    assert.equal(nodes.length, 2);
    assert.ok(nodes.every((node) => node.state === NodeState.NODE_STATE_RUNNING && node.templateHash === original!.spec!.templateHash));
  });

  it("answers an update at once while a real start hangs on its health check, and stops the abandoned process", async () => {
    const { client, stop } = await processServer(["--min-ready", "200ms"]);
    stops.push(stop);
    const good = chat(`exec "${process.execPath}" "${CHAT_EXAMPLE}"`);
    assert.equal((await settle(client, (await client.setSpec({ count: 2, version: 1, template: good })).graph!.id)).state, GraphState.GRAPH_STATE_SUCCEEDED);
    // Version 2 never passes its health check, and may try for 90s.
    const hanging = { ...good, healthCheck: { ...good.healthCheck!, path: "/never", startTimeoutMs: 90_000 } };
    const hung = (await client.setSpec({ count: 2, version: 2, template: hanging })).graph!;
    const hungNode = await eventually(async () => {
      const nodes = (await client.listNodes({})).nodes;
      return nodes.find((node) => node.version === 2 && node.state === NodeState.NODE_STATE_STARTING);
    }, "the v2 start hanging");
    const began = Date.now();
    const next = await client.setSpec({ count: 2, version: 3, template: good });
    const tookMs = Date.now() - began;
    assert.ok(tookMs < 2000, `SetSpec took ${tookMs}ms (the issue's bound: 2 s)`);
    assert.equal(next.supersededGraphId, hung.id);
    assert.equal((await settle(client, next.graph!.id)).state, GraphState.GRAPH_STATE_SUCCEEDED);
    const all = (await client.listNodes({ all: true })).nodes;
    assert.equal(all.find((node) => node.id === hungNode.id)?.state, NodeState.NODE_STATE_STOPPED, "the abandoned node was stopped");
    const live = all.filter((node) => node.state !== NodeState.NODE_STATE_STOPPED);
    assert.deepEqual(live.map((node) => [node.version, NodeState[node.state]]), [[3, "NODE_STATE_RUNNING"], [3, "NODE_STATE_RUNNING"]]);
  });

  it("backs off the replacements of a version that crash-loops, and says why in the node list", async () => {
    const { client, stop } = await processServer(["--min-ready", "0", "--crash-loop-backoff", "1s..30s", "--reconcile-interval", "200ms"]);
    stops.push(stop);
    const crashing = { ...chat("sleep 1; echo 'fatal: cannot open the widget socket' >&2; exit 3"), healthCheck: { ...chat("").healthCheck!, type: HealthCheckType.HEALTH_CHECK_TYPE_NONE } };
    await client.setSpec({ count: 2, version: 1, template: crashing });
    const began = Date.now();
    const loop = await eventually(async () => {
      const { crashLoop } = await client.listNodes({});
      return crashLoop && crashLoop.restarts >= 2 ? crashLoop : undefined;
    }, "a crash loop", 30_000);
    assert.match(loop.lastFailure, /exited with code 3 \(its log says: fatal: cannot open the widget socket\)/);
    await sleep(Math.max(0, 6000 - (Date.now() - began)));
    const elapsed = Date.now() - began;
    const replacements = (await client.listGraphs({ limit: 100 })).graphs.filter((graph) => graph.reason !== GraphReason.GRAPH_REASON_UPDATE);
    // Replacements at about 1, 2, 4 and 8 s in (each a second after the last crash, then backing off 1s, 2s, 4s): not one a second.
    assert.ok(replacements.length >= 2 && replacements.length <= 4, `${replacements.length} replacements in ${elapsed}ms`);
    const failed = (await client.listNodes({ all: true })).nodes.find((node) => node.exitStatus !== "");
    assert.equal(failed?.exitStatus, "exited with code 3");
  });
});
