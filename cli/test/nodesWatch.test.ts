/**
 * End-to-end tests of `nodes ls -w`: the table, then a line for every change of a node's state,
 * resumed across a server restart, until Ctrl-C.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { assertExit, assertOneLineError, eventually, FAST_SERVER_FLAGS, jsonLines, lines, type RunningClient, startServer, type TestServer } from "./harness.js";

/** A `nodes ls -w` line: time, short id, group, version, state. */
const EVENT_LINE = /^\d\d:\d\d:\d\d {2}[0-9A-Z]{6}…[0-9A-Z]{4} {2}(\S+) {2}v(\d+) {2}(\S+)/;

function eventLines(watch: RunningClient): { group: string; version: number; state: string; line: string }[] {
  const stream = watch.stdout().split("NODES STREAM\n")[1] ?? "";
  return lines(stream).map((line) => {
    const match = EVENT_LINE.exec(line);
    assert.ok(match, `a node event line: ${JSON.stringify(line)}`);
    return { group: match[1]!, version: Number(match[2]), state: match[3]!, line };
  });
}

async function untilStreaming(watch: RunningClient): Promise<void> {
  await eventually("the watch's table", async () => (watch.stdout().includes("NODES STREAM\n") ? true : undefined), {
    describe: () => `stdout ${JSON.stringify(watch.stdout())}, stderr ${JSON.stringify(watch.stderr())}`,
  });
}

describe("nodes ls -w", () => {
  let server: TestServer;
  before(async () => {
    server = await startServer(FAST_SERVER_FLAGS);
  });
  after(async () => {
    await server?.kill();
    await server?.close();
  });

  test("shows the table, then a line for each node a scale-up starts, until Ctrl-C ends it with 0", async () => {
    const group = ["--group", "watched"];
    assertExit(await server.client([...group, "update", "2", "1"]), 0);
    const watch = server.start([...group, "nodes", "ls", "-w"]);
    try {
      await untilStreaming(watch);
      const head = lines(watch.stdout());
      assert.match(head[0]!, /^ID\s+VERSION\s+REVISION\s+STATE\s+AGE$/);
      assert.equal(head.filter((line) => / running /.test(line)).length, 2, "the table of the 2 live nodes");
      assertExit(await server.client([...group, "update", "5", "1"]), 0);
      await eventually("a line for each of the 3 new nodes starting and running", async () => {
        const seen = eventLines(watch);
        return seen.filter((event) => event.state === "starting").length === 3 && seen.filter((event) => event.state === "running").length === 3 ? seen : undefined;
      }, { describe: () => watch.stdout() });
      assert.ok(eventLines(watch).every((event) => event.group === "watched" && event.version === 1));
      assertExit(await server.client([...group, "update", "4", "1"]), 0);
      await eventually("a line for the node the scale-down stops", async () => (eventLines(watch).some((event) => event.state === "stopped") ? true : undefined));
    } finally {
      watch.child.kill("SIGINT");
    }
    const result = await watch.exited;
    assertExit(result, 0);
    assert.equal(result.stderr, "");
  });

  test("resumes after the server restarts, with the changes made since", async () => {
    const group = ["--group", "restarted"];
    const watch = server.start([...group, "nodes", "ls", "-w"]);
    try {
      await untilStreaming(watch);
      assert.match(watch.stderr(), /no nodes in group restarted yet/);
      await server.restart();
      assertExit(await server.client([...group, "update", "2", "3"]), 0);
      await eventually("both new nodes running, seen through the resumed stream", async () => {
        const running = eventLines(watch).filter((event) => event.state === "running" && event.version === 3);
        return running.length === 2 ? true : undefined;
      }, { describe: () => `${watch.stdout()}\n${watch.stderr()}` });
      assert.match(watch.stderr(), /the watch stream broke \(.*\); resuming after event \d+…/);
      assert.match(watch.stderr(), /the watch stream resumed/);
    } finally {
      watch.child.kill("SIGINT");
    }
    assertExit(await watch.exited, 0);
  });

  test("with -o json prints the snapshot, then one event a line", async () => {
    const group = ["--group", "json"];
    assertExit(await server.client([...group, "update", "1", "1"]), 0);
    const watch = server.start([...group, "nodes", "ls", "-w", "-o", "json"]);
    try {
      await eventually("the snapshot", async () => (watch.stdout().includes("\n") ? true : undefined));
      assertExit(await server.client([...group, "update", "2", "1"]), 0);
      await eventually("the new node running", async () =>
        jsonLines(watch.stdout()).some((line) => line.event?.nodeState === "NODE_STATE_RUNNING") ? true : undefined,
      );
    } finally {
      watch.child.kill("SIGINT");
    }
    const result = await watch.exited;
    assertExit(result, 0);
    const [snapshot, ...events] = jsonLines(result.stdout);
    assert.equal(snapshot!.snapshot.nodes.length, 1);
    assert.ok(snapshot!.snapshot.sequence > 0);
    assert.ok(events.every((line) => line.event.type === "EVENT_TYPE_NODE" && line.event.group === "json"));
  });

  test("refuses --all and --wide, which it cannot keep up to date", async () => {
    assertOneLineError(await server.client(["nodes", "ls", "-w", "--all"]), 2, "--watch cannot be combined with --all");
  });
});
