/**
 * End-to-end test that `graphs ls` and `history` say why a graph and a revision were made in the
 * same words (a rollback's graph says rollback, a stop or a clone says so), and that history
 * shows every graph of a revision, not only the one that rolled it out.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { assertExit, FAST_SERVER_FLAGS, json, lines, startServer, table, type TestServer } from "./harness.js";

const short = (id: string) => `${id.slice(0, 6)}…${id.slice(-4)}`;

describe("reasons in graphs ls and history", () => {
  let server: TestServer;
  const group = ["--group", "reasons"];
  /** Revision → its graphs' ids, as the server stores them. */
  let graphsOf: Map<number, string[]>;
  let restartGraph: string;

  before(async () => {
    server = await startServer(FAST_SERVER_FLAGS);
    const ok = async (...args: string[]) => assertExit(await server.client([...group, ...args]), 0);
    await ok("update", "3", "1"); // 1: update
    await ok("update", "3", "2"); // 2: update
    await ok("update", "4", "2"); // 3: scale
    await ok("rollback", "1"); // 4: rollback to 1, keeping the count: 4 × v1
    const nodes = () => json(server, [...group, "nodes", "ls"]).then((listed) => (listed.nodes as Record<string, any>[]).map((node) => node.id as string));
    const restart = await server.client([...group, "nodes", "restart", (await nodes())[0]!]);
    assertExit(restart, 0);
    restartGraph = /^graph ([0-9A-Z]{26}) succeeded/m.exec(restart.stdout)![1]!;
    await ok("nodes", "stop", (await nodes())[0]!); // 5: stop
    await ok("nodes", "clone", (await nodes())[0]!); // 6: clone
    // 7: an update whose every attempt times out; 8: the rollback its failure policy starts.
    assertExit(await server.client([...group, "update", "4", "3", "--on-failure", "rollback", "--task-timeout", "1ms"]), 1);
    const graphs = (await json(server, [...group, "graphs", "ls"])).graphs as Record<string, any>[];
    graphsOf = new Map();
    for (const graph of graphs) graphsOf.set(graph.revision, [...(graphsOf.get(graph.revision) ?? []), graph.id]);
  });
  after(async () => {
    await server?.kill();
    await server?.close();
  });

  test("a graph's REASON in graphs ls is its revision's in history: update, scale, rollback, stop, clone, auto-rollback; a restart says restart", async () => {
    const listed = table((await server.client([...group, "graphs", "ls"])).stdout).slice(1);
    const graphReason = new Map(listed.map(([id, , reason]) => [id!, reason!]));
    const history = table((await server.client([...group, "history"])).stdout).slice(1);
    const revisionReason = new Map(history.map(([revision, , reason]) => [Number(revision), reason!]));
    assert.deepEqual(
      [...revisionReason.entries()].sort(([a], [b]) => a - b),
      [
        [1, "update"],
        [2, "update"],
        [3, "scale"],
        [4, "rollback to 1"],
        [5, "stop"],
        [6, "clone"],
        [7, "update"],
        [8, "auto-rollback to 6"],
      ],
    );
    for (const [revision, ids] of graphsOf) {
      for (const id of ids) {
        const expected = id === restartGraph ? "restart" : revisionReason.get(revision);
        assert.equal(graphReason.get(id), expected, `graph ${id} of revision ${revision}`);
      }
    }
    assert.deepEqual(graphsOf.get(4)!.length, 2, "the rollback's graph and the restart's");
  });

  test("history shows every graph of a revision: +N in 80 columns, each with its reason in --wide and in --revision N", async () => {
    const [rollback, restart] = [graphsOf.get(4)!.find((id) => id !== restartGraph)!, restartGraph];
    const narrow = table((await server.client([...group, "history"])).stdout);
    const row = narrow.find(([revision]) => revision === "4")!;
    assert.equal(row[4], `${short(rollback)} +1`, "the rollout graph, and one more");
    assert.equal(row[5], "succeeded");
    assert.equal(narrow.find(([revision]) => revision === "5")![4], short(graphsOf.get(5)![0]!), "no +N on a revision with one graph");
    for (const line of lines((await server.client([...group, "history"])).stdout)) assert.ok(line.length <= 80, line);

    const wide = table((await server.client([...group, "history", "--wide"])).stdout);
    assert.equal(wide[0]!.at(-1), "OTHER GRAPHS");
    assert.equal(wide.find(([revision]) => revision === "4")!.at(-1), `restart ${short(restart)}`);

    const whole = await server.client([...group, "history", "--revision", "4"]);
    assertExit(whole, 0);
    const section = whole.stdout.split("GRAPHS (2, newest first)\n")[1];
    assert.ok(section, whole.stdout);
    assert.deepEqual(table(section).map((cells) => cells.slice(0, 3)), [
      ["GRAPH", "REASON", "STATE"],
      [restart, "restart", "succeeded"],
      [rollback, "rollback to 1", "succeeded"],
    ]);
    const document = await json(server, [...group, "history", "--revision", "4"]);
    assert.equal(document.revision.graphCount, 2);
    assert.deepEqual(document.revision.graphs.map((graph: Record<string, any>) => graph.reason), ["GRAPH_REASON_OPERATION", "GRAPH_REASON_UPDATE"]);
  });
});
