/**
 * End-to-end tests of the defaults an operator expects: `graphs pause|resume|cancel|promote`
 * without an id act on the group's graph in progress, and every command that takes a node or
 * graph id takes a unique prefix of it or the short form the tables print.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { assertExit, assertOneLineError, eventually, FAST_SERVER_FLAGS, json, lines, startServer, table, type TestServer } from "./harness.js";

/** The short form the tables print: `01JDX4…K2M7`. */
const short = (id: string) => `${id.slice(0, 6)}…${id.slice(-4)}`;

async function graphState(server: TestServer, group: string, graphId: string): Promise<string> {
  const graphs = (await json(server, ["--group", group, "graphs", "ls"])).graphs as Record<string, any>[];
  return graphs.find((graph) => graph.id === graphId)!.state as string;
}

describe("graphs pause, resume and cancel without an id act on the group's graph in progress", () => {
  let server: TestServer;
  before(async () => {
    // Slow starts, one at a time: the rollout is still running when the commands reach it.
    server = await startServer(["--mock-latency", "400ms..600ms", "--parallelism", "1"]);
  });
  after(async () => {
    await server?.kill();
    await server?.close();
  });

  test("graphs pause with no id pauses the current graph, resume resumes it, cancel cancels it, and then there is none", async () => {
    const group = ["--group", "steer"];
    const none = await server.client([...group, "graphs", "pause"]);
    assertOneLineError(none, 5, "group steer does not exist");
    const update = await server.client([...group, "update", "8", "1", "--detach"]);
    assertExit(update, 0);
    const graphId = /^graph ([0-9A-Z]{26}) /m.exec(update.stdout)![1]!;

    const paused = await server.client([...group, "graphs", "pause"]);
    assertExit(paused, 0);
    assert.equal(paused.stdout, `graph ${graphId} paused\n`);
    assert.equal(await graphState(server, "steer", graphId), "GRAPH_STATE_PAUSED");

    const resumed = await server.client([...group, "graphs", "resume"]);
    assertExit(resumed, 0);
    assert.equal(resumed.stdout, `graph ${graphId} resumed\n`);
    assert.equal(await graphState(server, "steer", graphId), "GRAPH_STATE_RUNNING");

    const cancelled = await server.client([...group, "graphs", "cancel"]);
    assertExit(cancelled, 0);
    assert.match(lines(cancelled.stdout)[0]!, new RegExp(`^graph ${graphId} cancelled: `));
    assert.equal(await graphState(server, "steer", graphId), "GRAPH_STATE_CANCELLED");

    const settled = await server.client([...group, "graphs", "cancel"]);
    assertOneLineError(settled, 1, `group steer has no graph in progress to cancel: its latest graph, ${graphId}, has been cancelled`);
    assertOneLineError(await server.client([...group, "graphs", "promote"]), 1, "group steer has no graph in progress to promote");
  });

  test("another group's graph in progress is not taken for this group's", async () => {
    assertExit(await server.client(["--group", "busy", "update", "8", "1", "--detach"]), 0);
    assertOneLineError(await server.client(["--group", "idle", "graphs", "pause"]), 5, "group idle does not exist");
    assertExit(await server.client(["--group", "busy", "graphs", "cancel"]), 0);
  });
});

describe("node and graph ids as unique prefixes and short forms", () => {
  let server: TestServer;
  before(async () => {
    server = await startServer(FAST_SERVER_FLAGS);
  });
  after(async () => {
    await server?.kill();
    await server?.close();
  });

  test("a 6-character prefix works where it is unique, the short form a table prints is taken back, and an ambiguous or unknown prefix is refused", async () => {
    const group = ["--group", "refs"];
    const first = await server.client([...group, "update", "3", "1"]);
    assertExit(first, 0);
    const firstGraph = /^graph ([0-9A-Z]{26}) succeeded/m.exec(first.stdout)![1]!;

    // The server's only graph: its first 6 characters name it, in either case.
    const shown = await server.client(["graphs", "show", firstGraph.slice(0, 6).toLowerCase()]);
    assertExit(shown, 0);
    assert.match(lines(shown.stdout)[0]!, new RegExp(`^graph ${firstGraph}: group refs, revision 1`));

    // Graphs made within minutes share their first 6 characters: now that prefix names several.
    const second = await server.client([...group, "update", "3", "2"]);
    assertExit(second, 0);
    const secondGraph = /^graph ([0-9A-Z]{26}) succeeded/m.exec(second.stdout)![1]!;
    const prefix = firstGraph.slice(0, 6);
    assert.equal(secondGraph.slice(0, 6), prefix, "two graphs made within a few minutes share their first 6 characters");
    const ambiguous = await server.client(["graphs", "show", prefix]);
    assertOneLineError(ambiguous, 2, `graph id ${prefix} is ambiguous: it matches`, `${firstGraph} (group refs)`, `${secondGraph} (group refs)`, "give more of its characters");

    // The history's GRAPH column prints the short form; pasted back, it names the graph.
    const history = table((await server.client([...group, "history"])).stdout);
    const printed = history[1]![4]!;
    assert.equal(printed, short(secondGraph));
    const fromHistory = await server.client(["graphs", "show", printed]);
    assertExit(fromHistory, 0);
    assert.match(lines(fromHistory.stdout)[0]!, new RegExp(`^graph ${secondGraph}: `));
    assertExit(await server.client(["graphs", "show", `${prefix}...${secondGraph.slice(-4)}`, "-o", "json"]), 0);

    // The task stream prints nodes short too: each is a node's name for every node command.
    const shutDown = [...second.stdout.matchAll(/shut_down_node ([0-9A-Z]{6}…[0-9A-Z]{4})/g)].map((match) => match[1]!);
    assert.ok(shutDown.length >= 3, second.stdout);
    const described = await server.client(["nodes", "describe", shutDown[0]!]);
    assertExit(described, 0);
    assert.match(described.stdout, new RegExp(`^NODE\\s+${shutDown[0]!.slice(0, 6)}[0-9A-Z]{16}${shutDown[0]!.slice(-4)}$`, "m"));

    const [node] = ((await json(server, [...group, "nodes", "ls"])).nodes as Record<string, any>[]).map((each) => each.id as string);
    const stats = await server.client(["nodes", "stats", short(node!)]);
    assertExit(stats, 0);
    const killed = await server.client(["nodes", "kill", short(node!)]);
    assertExit(killed, 0);
    assert.match(killed.stdout, new RegExp(`^node ${node} killed; the group heals itself`), "the kill names the whole id it resolved");

    assertOneLineError(await server.client(["graphs", "show", "ZZZZZZ"]), 5, "no graph id begins with ZZZZZZ: list graphs with", "graphs ls'");
    assertOneLineError(await server.client(["nodes", "describe", `${prefix}…ZZZZ`]), 5, `no node id matches ${prefix}…ZZZZ: list nodes with`, "nodes ls --all'");
    assertOneLineError(await server.client(["nodes", "restart", "01J"]), 2, 'node id "01J" is too short: give at least its first 4 characters');
    assertOneLineError(await server.client(["graphs", "pause", "latest"]), 2, 'graph id "latest" is invalid');
    await eventually("the killed node replaced", async () => ((await json(server, [...group, "nodes", "ls"])).nodes.length === 3 ? true : undefined));
  });

  test("tasks watch and graphs promote take a prefix", async () => {
    const group = ["--group", "canary"];
    const update = await server.client([...group, "update", "3", "1"]);
    assertExit(update, 0);
    const canary = await server.client([...group, "update", "3", "2", "--canary", "1", "--detach"]);
    assertExit(canary, 0);
    const graphId = /^graph ([0-9A-Z]{26}) /m.exec(canary.stdout)![1]!;
    const unique = short(graphId);
    await eventually("the canary at its gate", async () => {
      const shown = await server.client(["graphs", "show", unique, "-o", "json"]);
      const gate = (JSON.parse(shown.stdout).graph.tasks as Record<string, any>[]).find((task) => task.action === "TASK_ACTION_AWAIT_PROMOTION");
      return gate?.waiting ? true : undefined;
    });
    const promoted = await server.client([...group, "graphs", "promote", unique]);
    assertExit(promoted, 0);
    assert.match(promoted.stdout, new RegExp(`^graph ${graphId} promoted`));
    const watched = await server.client(["tasks", "watch", unique]);
    assertExit(watched, 0);
    assert.match(watched.stdout, new RegExp(`^graph ${graphId} succeeded`, "m"));
  });
});
