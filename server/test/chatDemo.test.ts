/**
 * The flagship demo as the README runs it: `bin/server --driver process` with a relative data
 * dir (the default is `./data`), `update 3 1`, and the chat nodes relay a message posted to
 * one to the browsers of another. Every node runs in a dir of its own, so every path the
 * server hands it must be absolute.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { isAbsolute, join } from "node:path";
import { describe, it } from "node:test";
import { GraphState } from "@drover/shared";
import { freePort, freePortWindow, startServer, waitUntilServing } from "./processes.js";
import { drain, eventually } from "./support.js";

/** What a chat node's /events stream has sent: its messages, and whom it reaches (`event: node`). */
async function subscribe(port: number) {
  const messages: { id: string; origin: string; text: string }[] = [];
  const identities: { node: string; peers: number }[] = [];
  const request = httpRequest({ host: "127.0.0.1", port, path: "/events", agent: false });
  await new Promise<void>((resolve, reject) => {
    request.on("error", reject);
    request.on("response", (response) => {
      let buffer = "";
      response.setEncoding("utf8");
      response.once("data", () => resolve());
      response.on("data", (chunk: string) => {
        buffer += chunk;
        const events = buffer.split("\n\n");
        buffer = events.pop()!;
        for (const event of events) {
          const lines = event.split("\n");
          const data = lines.find((line) => line.startsWith("data: "));
          if (data) (lines.includes("event: node") ? identities : messages).push(JSON.parse(data.slice(6)));
        }
      });
      response.on("error", () => {});
    });
    request.end();
  });
  return { messages, identities, close: () => request.destroy() };
}

async function healthz(port: number): Promise<{ node: string; peers: number } | undefined> {
  try {
    const response = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(2000) });
    return response.ok ? ((await response.json()) as { node: string; peers: number }) : undefined;
  } catch {
    return undefined;
  }
}

describe("the chat demo with the README's relative data dir", { timeout: 120_000 }, () => {
  it("starts chat nodes that find their peers and relay a message posted to one to another's browsers", async (t) => {
    const cwd = mkdtempSync(join(tmpdir(), "drover-demo-"));
    t.after(() => rmSync(cwd, { recursive: true, force: true }));
    const ports = await freePortWindow(4);
    const port = await freePort();
    const { child, exited } = startServer(
      ["--driver", "process", "--data-dir", "data", "--listen", `127.0.0.1:${port}`, "--port-range", `${ports.first}..${ports.last}`, "--min-ready", "0"],
      {},
      { cwd },
    );
    let log = "";
    child.stdout!.on("data", (chunk: Buffer) => (log += chunk.toString()));
    const client = await waitUntilServing(port, join(cwd, "data"));
    t.after(async () => {
      // Nodes outlive the server: stop them first.
      const { graph } = await client.setSpec({ count: 0, version: 1 }).catch(() => ({ graph: undefined }));
      if (graph) await drain(client.watchGraph({ graphId: graph.id }, { signal: AbortSignal.timeout(30_000) })).catch(() => undefined);
      child.kill("SIGTERM");
      await exited;
    });

    const { graph } = await client.setSpec({ count: 3, version: 1 });
    await drain(client.watchGraph({ graphId: graph!.id }, { signal: AbortSignal.timeout(60_000) }));
    assert.equal((await client.getGraph({ graphId: graph!.id })).graph!.state, GraphState.GRAPH_STATE_SUCCEEDED);
    const nodes = await Promise.all((await client.listNodes({})).nodes.map(async (node) => ({ id: node.id, ...(await client.getNodeStats({ nodeId: node.id })).node!.stats! })));
    assert.equal(nodes.length, 3);

    // What each node was handed is absolute, and names the data dir under the server's working directory.
    for (const { pid } of nodes) {
      const environment = new Map(
        readFileSync(`/proc/${pid}/environ`, "utf8")
          .split("\0")
          .map((entry) => [entry.slice(0, entry.indexOf("=")), entry.slice(entry.indexOf("=") + 1)] as const),
      );
      const peersFile = environment.get("DROVER_PEERS_FILE")!;
      assert.ok(isAbsolute(peersFile), `DROVER_PEERS_FILE ${peersFile} is absolute`);
      assert.equal(peersFile, join(cwd, "data", "groups", "default", "peers.json"));
    }

    // And so are the paths the server's log gives its operator.
    const lines = log.split("\n").filter((line) => line.startsWith("{")).map((line) => JSON.parse(line) as Record<string, unknown>);
    assert.equal(lines.find((line) => line.msg === "store opened")?.dataDir, join(cwd, "data"));
    assert.equal(lines.find((line) => line.tokenFile !== undefined)?.tokenFile, join(cwd, "data", "token"));

    const [a, b] = nodes as [(typeof nodes)[0], (typeof nodes)[0]];
    await eventually(async () => ((await healthz(b.port))?.peers === 2 ? true : undefined), "node B connected to its 2 peers", 15_000);
    const stream = await subscribe(b.port);
    try {
      // Posted as curl would: JSON, and no page's Origin.
      const text = `hello across nodes ${Date.now()}`;
      const posted = await fetch(`http://127.0.0.1:${a.port}/messages`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ author: "sre", text }),
      });
      assert.equal(posted.status, 202, await posted.clone().text());
      const { id } = (await posted.json()) as { id: string };
      const relayed = await eventually(async () => stream.messages.find((message) => message.id === id), "the message on node B's stream", 10_000);
      assert.equal(relayed.text, text);
      assert.equal(relayed.origin, a.id, "posted on node A");
    } finally {
      stream.close();
    }
  });
});
