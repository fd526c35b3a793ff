import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, it } from "node:test";
import { DroverServiceDefinition, GraphState, NodeState } from "@drover/shared";
import { createChannel, createClient } from "nice-grpc";
import { temporaryDataDir } from "./support.js";

const SERVER_BIN = fileURLToPath(new URL("../../../bin/server", import.meta.url));

async function freePort(): Promise<number> {
  const server = createServer().listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as { port: number }).port;
  server.close();
  await once(server, "close");
  return port;
}

interface Exited {
  code: number | null;
  stdout: string;
  stderr: string;
}

function startServer(args: string[]): { child: ChildProcess; exited: Promise<Exited> } {
  const child = spawn(SERVER_BIN, args, { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (chunk) => (stdout += chunk));
  child.stderr!.on("data", (chunk) => (stderr += chunk));
  const exited = new Promise<Exited>((resolve) => child.on("exit", (code) => resolve({ code, stdout, stderr })));
  return { child, exited };
}

async function waitUntilServing(port: number) {
  const client = createClient(DroverServiceDefinition, createChannel(`127.0.0.1:${port}`));
  for (let i = 0; i < 200; i++) {
    try {
      await client.listNodes({}, { signal: AbortSignal.timeout(1000) });
      return client;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  throw new Error(`server on port ${port} never answered`);
}

describe("the server program", { timeout: 60_000 }, () => {
  it("refuses a bad flag with one line naming it, and exit code 2", async () => {
    const { exited } = startServer(["--parallelism", "zero"]);
    const { code, stderr } = await exited;
    assert.equal(code, 2);
    assert.equal(stderr.trim().split("\n").length, 1, stderr);
    assert.match(stderr, /--parallelism.*"zero" must be an integer from 1 to 10000/);
  });

  it("refuses a data dir it cannot use with one line and exit code 1", async (t) => {
    const file = join(temporaryDataDir(t), "file");
    writeFileSync(file, "");
    const { exited } = startServer(["--data-dir", file, "--listen", `127.0.0.1:${await freePort()}`]);
    const { code, stderr } = await exited;
    assert.equal(code, 1);
    assert.equal(stderr.trim(), `server: data dir ${file} is not a directory: point --data-dir at a directory`);
  });

  it("refuses a corrupt database and leaves the file as it was", async (t) => {
    const dir = temporaryDataDir(t);
    const content = "not a database ".repeat(100);
    writeFileSync(join(dir, "drover.db"), content);
    const { exited } = startServer(["--data-dir", dir, "--listen", `127.0.0.1:${await freePort()}`]);
    const { code, stderr } = await exited;
    assert.equal(code, 1);
    assert.match(stderr, /^server: database .*drover\.db is corrupt or not a Drover database/);
  });

  it("shuts down cleanly on SIGTERM mid-graph, and the next start finishes the graph without a duplicate node", async (t) => {
    const dir = temporaryDataDir(t);
    const port = await freePort();
    const args = ["--data-dir", dir, "--listen", `127.0.0.1:${port}`, "--mock-latency", "100ms..200ms", "--parallelism", "2"];
    const first = startServer(args);
    const client = await waitUntilServing(port);
    const { graph } = await client.setSpec({ count: 6, version: 1 });
    await new Promise((resolve) => setTimeout(resolve, 250));
    first.child.kill("SIGTERM");
    const { code } = await first.exited;
    assert.equal(code, 0);

    const second = startServer(args);
    t.after(() => second.child.kill("SIGKILL"));
    const again = await waitUntilServing(port);
    for await (const _ of again.watchGraph({ graphId: graph!.id })) {
      // Drain the stream: it ends when the resumed graph settles.
    }
    const final = (await again.getGraph({ graphId: graph!.id })).graph!;
    assert.equal(final.state, GraphState.GRAPH_STATE_SUCCEEDED);
    const nodes = (await again.listNodes({ all: true })).nodes;
    assert.equal(nodes.length, 6, "one node per start task, however often it was attempted");
    assert.ok(nodes.every((node) => node.state === NodeState.NODE_STATE_RUNNING));
    second.child.kill("SIGINT");
    assert.equal((await second.exited).code, 0);
  });
});
