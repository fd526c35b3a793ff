/**
 * Ports are a resource: the real server program with the process driver refuses a spec whose
 * nodes (count + max surge, resolved) cannot each get a port of --port-range beside the ports
 * other groups' real nodes hold, as it refuses cpu and memory.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { GraphState } from "@drover/shared";
import { Status } from "nice-grpc";
import { freePort, freePortWindow, startServer, waitUntilServing } from "./processes.js";
import { drain, expectStatus, temporaryDataDir } from "./support.js";

const CLIENT_BIN = fileURLToPath(new URL("../../../bin/client", import.meta.url));

describe("ports as a resource of the process driver", { timeout: 120_000 }, () => {
  it("refuses, RESOURCE_EXHAUSTED, a spec whose nodes cannot each get a port, counting other groups' nodes and the max surge", async (t) => {
    const dataDir = temporaryDataDir(t);
    const ports = await freePortWindow(4);
    const port = await freePort();
    const { child, exited } = startServer([
      "--driver", "process",
      "--data-dir", dataDir,
      "--listen", `127.0.0.1:${port}`,
      "--port-range", `${ports.first}..${ports.last}`,
      "--min-ready", "0",
      "--log-level", "warn",
    ]);
    const client = await waitUntilServing(port, dataDir);
    t.after(async () => {
      // Nodes outlive the server: stop them first.
      for (const group of ["one", "two"]) {
        const { graph } = await client.setSpec({ group, count: 0, version: 1 }).catch(() => ({ graph: undefined }));
        if (graph) await drain(client.watchGraph({ graphId: graph.id }, { signal: AbortSignal.timeout(30_000) })).catch(() => undefined);
      }
      child.kill("SIGTERM");
      await exited;
    });

    const { graph } = await client.setSpec({ group: "one", count: 3, version: 1 });
    await drain(client.watchGraph({ graphId: graph!.id }, { signal: AbortSignal.timeout(60_000) }));
    assert.equal((await client.getGraph({ graphId: graph!.id })).graph!.state, GraphState.GRAPH_STATE_SUCCEEDED);

    const range = `--port-range ${ports.first}..${ports.last} has 4`;
    // Another group: 2 nodes need 2 ports, and only 1 is left beside group one's 3.
    await expectStatus(
      client.setSpec({ group: "two", count: 2, version: 1 }),
      Status.RESOURCE_EXHAUSTED,
      new RegExp(`^group two's spec does not fit on this host \\(ports: 2 nodes \\(count 2 \\+ max surge 0\\) need a port each, and ${range}, 3 of them held by other groups' nodes: 1 short\\): ask for fewer nodes, or widen the server's --port-range$`),
    );
    // Its own nodes are not another group's: a rollout of group one may surge to the range's size, not past it.
    assert.equal((await client.setSpec({ group: "one", count: 3, version: 2, maxSurge: 1, maxUnavailable: 0, dryRun: true })).revision, 1);
    await expectStatus(client.setSpec({ group: "one", count: 3, version: 2, maxSurge: 2, dryRun: true }), Status.RESOURCE_EXHAUSTED, new RegExp(`5 nodes \\(count 3 \\+ max surge 2\\) need a port each, and ${range}: 1 short`));
    // A percent is resolved first: 50% of 3 surges ⌈1.5⌉ = 2.
    await expectStatus(client.setSpec({ group: "one", count: 3, version: 2, maxSurgePercent: 50, dryRun: true }), Status.RESOURCE_EXHAUSTED, /max surge 2\) need a port each/);
    // What fits is let through, and refused specs changed nothing.
    await client.setSpec({ group: "two", count: 1, version: 1, dryRun: true });
    await expectStatus(client.listRevisions({ group: "two" }), Status.NOT_FOUND, /group two does not exist/);

    // The client says it in one line, exit code 1.
    const cli = await promisify(execFile)(CLIENT_BIN, ["--server", `127.0.0.1:${port}`, "--token-file", join(dataDir, "token"), "--group", "two", "update", "2", "1"]).then(
      () => assert.fail("the client accepted a spec that does not fit"),
      (error: { code: number; stderr: string }) => error,
    );
    assert.equal(cli.code, 1);
    assert.match(cli.stderr, /^client: group two's spec does not fit on this host \(ports: .*1 short\)[^\n]*\n$/);
  });
});
