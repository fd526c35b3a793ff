import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { GraphState, NodeState } from "@drover/shared";
import { freePort, startServer, waitUntilServing } from "./processes.js";
import { temporaryDataDir } from "./support.js";

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
    assert.match(stderr, /^server: database .*drover\.db is not a SQLite database \(file is not a database\): restore drover\.db from a backup/);
  });

  it("shuts down cleanly on SIGTERM mid-graph, and the next start finishes the graph without a duplicate node", async (t) => {
    const dir = temporaryDataDir(t);
    const port = await freePort();
    const args = ["--data-dir", dir, "--listen", `127.0.0.1:${port}`, "--mock-latency", "100ms..200ms", "--parallelism", "2"];
    const first = startServer(args);
    const client = await waitUntilServing(port, dir);
    const { graph } = await client.setSpec({ count: 6, version: 1 });
    await new Promise((resolve) => setTimeout(resolve, 250));
    first.child.kill("SIGTERM");
    const { code } = await first.exited;
    assert.equal(code, 0);

    const second = startServer(args);
    t.after(() => second.child.kill("SIGKILL"));
    const again = await waitUntilServing(port, dir);
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
