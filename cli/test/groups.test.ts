/**
 * Groups through the client (issue 12, item 3): `groups ls` one line a group, `status` for one,
 * not found (exit 5) for a read of a group that does not exist, an update that says it creates
 * a group, and `group delete`. The real client against a real server.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { GraphState, GroupStatus } from "@drover/shared";
import { groupStateText, groupStatusLines } from "../src/render/groups.js";
import { assertExit, assertOneLineError, eventually, FAST_SERVER_FLAGS, graphIdIn, json, lines, startServer, table, type TestServer } from "./harness.js";

const ULID = "[0-9A-HJKMNP-TV-Z]{26}";
const SHORT_ID = /^[0-9A-Z]{6}…[0-9A-Z]{4}$/;

/** A table of fields (`status`) as name → value. */
function fields(text: string): Map<string, string> {
  return new Map(table(text).map(([name, ...value]) => [name!, value.join("  ")]));
}

const groupNames = async (server: TestServer) => ((await json(server, ["groups", "ls"])).groups as Record<string, any>[]).map((group) => group.group);

describe("groups ls and status", () => {
  let server: TestServer;
  let canary: string;
  let failed: string;
  before(async () => {
    server = await startServer([...FAST_SERVER_FLAGS, "--reconcile-interval", "60m"]);
    assertExit(await server.client(["--group", "api", "update", "2", "1"]), 0);
    assertExit(await server.client(["--group", "idle", "update", "0", "1"]), 0);
    // Every attempt outlives a 1ms timeout: the graph fails.
    const broken = await server.client(["--group", "broken", "update", "2", "1", "--task-timeout", "1ms"]);
    assertExit(broken, 1);
    failed = graphIdIn(broken.stdout);
    // A rollout held at its canary's promote gate: one node at v2, two at v1.
    assertExit(await server.client(["--group", "web", "update", "3", "1"]), 0);
    const detached = await server.client(["--group", "web", "update", "3", "2", "--canary", "1", "--detach"]);
    assertExit(detached, 0);
    canary = graphIdIn(lines(detached.stdout).at(-1)!);
    await eventually("the canary waits at its gate", async () => ((await json(server, ["--group", "web", "status"])).waiting?.length === 1 ? true : undefined));
  });
  after(async () => {
    await server?.close();
  });

  test("groups ls lists every group by name, one line each: desired spec, nodes up to date, available and up, revision, newest graph and its state", async () => {
    const result = await server.client(["groups", "ls"]);
    assertExit(result, 0);
    assert.equal(result.stderr, "");
    const rows = table(result.stdout);
    assert.deepEqual(rows[0], ["GROUP", "DESIRED", "UP-TO-DATE", "AVAILABLE", "TOTAL", "REVISION", "GRAPH", "STATE"]);
    assert.deepEqual(
      rows.slice(1).map(([group, desired, upToDate, available, total, revision, , state]) => [group, desired, upToDate, available, total, revision, state]),
      [
        ["api", "2 × v1", "2", "2", "2", "1", "succeeded"],
        ["broken", "2 × v1", "0", "0", "0", "1", "failed"],
        ["idle", "0 × v1", "0", "0", "0", "1", "-"],
        ["web", "3 × v2", "1", "3", "3", "2", "running, 1 waiting"],
      ],
    );
    const graphs = rows.slice(1).map((row) => row[6]!);
    assert.ok([0, 1, 3].every((index) => SHORT_ID.test(graphs[index]!)), graphs.join(" "));
    assert.equal(graphs[2], "-", "a group at 0 nodes from its first update made no graph");
    assert.equal(graphs[3], `${canary.slice(0, 6)}…${canary.slice(-4)}`);
  });

  test("groups ls --wide shows every column, and -o json the ListGroups response", async () => {
    const rows = table((await server.client(["groups", "ls", "--wide"])).stdout);
    assert.deepEqual(rows[0], ["GROUP", "COUNT", "VERSION", "UP-TO-DATE", "AVAILABLE", "TOTAL", "FAILED", "REVISION", "GRAPH", "REASON", "STATE", "TASKS", "AGE"]);
    const broken = rows.find((row) => row[0] === "broken")!;
    assert.deepEqual(broken.slice(0, 8), ["broken", "2", "1", "0", "0", "0", broken[6]!, "1"]);
    assert.deepEqual(broken.slice(8, 11), [failed, "update", "failed"]);
    assert.match(broken[12]!, /^\d+s$/);

    const document = await json(server, ["groups", "ls"]);
    const web = (document.groups as Record<string, any>[]).find((group) => group.group === "web")!;
    assert.deepEqual([web.revision, web.spec.count, web.spec.version, web.upToDate, web.available, web.total, web.waitingTasks], [2, 3, 2, 1, 3, 3, 1]);
    assert.equal(web.graph.id, canary);
    assert.equal(web.graph.state, "GRAPH_STATE_RUNNING");
  });

  test("status shows one group in detail: its spec, its nodes, its newest graph, and the tasks that wait and why", async () => {
    const result = await server.client(["--group", "web", "status"]);
    assertExit(result, 0);
    const shown = fields(result.stdout);
    assert.equal(shown.get("GROUP"), "web");
    assert.match(shown.get("REVISION")!, /^2 \(\d+s ago\)$/);
    assert.equal(shown.get("DESIRED"), "3 × v2 (surge 0, unavailable 1, canary 1, on failure stop)");
    assert.equal(shown.get("NODES"), "3 up, 1 up to date, 3 available (of 3 desired)");
    assert.equal(shown.get("GRAPH"), `${canary} (update, revision 2)`);
    assert.equal(shown.get("STATE"), "running, 1 waiting");
    const all = lines(result.stdout);
    const waiting = all.indexOf("WAITING");
    assert.ok(waiting > 0, result.stdout);
    assert.deepEqual(all[waiting + 1]!.split(/\s{2,}/), ["TASK", "ACTION", "WHY"]);
    assert.match(all[waiting + 2]!, new RegExp(`^\\d+ +await_promotion \\(client --server \\S+ --group web graphs promote ${canary}\\) +\\S`));
    assert.equal(all.at(-1), `follow it with: client --server ${server.address} --group web tasks watch; nodes: client --server ${server.address} --group web nodes ls; revisions: client --server ${server.address} --group web history`);

    const document = await json(server, ["--group", "web", "status"]);
    assert.equal(document.group.group, "web");
    assert.equal(document.waiting[0].action, "TASK_ACTION_AWAIT_PROMOTION");

    const settled = fields((await server.client(["--group", "broken", "status"])).stdout);
    assert.equal(settled.get("STATE"), "failed");
    assert.match(settled.get("ERROR")!, /timed out after 1ms/);
  });
});

describe("a group that does not exist", () => {
  let server: TestServer;
  before(async () => {
    server = await startServer(FAST_SERVER_FLAGS);
  });
  after(async () => {
    await server?.close();
  });

  for (const args of [
    ["nodes", "ls"],
    ["nodes", "ls", "-o", "json"],
    ["history"],
    ["graphs", "ls"],
    ["tasks", "watch"],
    ["status"],
    ["graphs", "promote"],
    ["rollback"],
    ["group", "delete"],
  ]) {
    test(`client --group typo ${args.join(" ")} exits 5 with one line saying it does not exist and how to list groups`, async () => {
      // The hint repeats the options given (-o json too), but --group: groups ls takes none.
      const given = args.includes("json") ? " -o json" : "";
      assertOneLineError(
        await server.client(["--group", "typo", ...args]),
        5,
        `group typo does not exist: list groups with 'client --server ${server.address}${given} groups ls'`,
      );
    });
  }

  test("group show still shows the template its first update would use, and says it has no spec", async () => {
    const result = await server.client(["--group", "typo", "group", "show"]);
    assertExit(result, 0);
    assert.equal(fields(result.stdout).get("SPEC"), `none yet: set one with 'client --server ${server.address} --group typo update <count> <version>'`);
  });

  test("groups ls with no group says how to make one", async () => {
    const result = await server.client(["groups", "ls"]);
    assertExit(result, 0);
    assert.equal(result.stdout, "");
    assert.equal(result.stderr, `no groups yet: make one with 'client --server ${server.address} update <count> <version>'\n`);
    assert.deepEqual(await json(server, ["groups", "ls"]), { groups: [] });
  });

  test("update says it creates the group, a dry run that it would, and an update of a group that exists says neither", async () => {
    const dry = await server.client(["--group", "fresh", "update", "2", "1", "--dry-run"]);
    assertExit(dry, 0);
    assert.equal(lines(dry.stdout)[0], "group fresh: dry run, would create the group, 0 nodes → 2 × v1 (max surge 0, max unavailable 1)");
    const first = await server.client(["--group", "fresh", "update", "2", "1"]);
    assertExit(first, 0);
    assert.equal(lines(first.stdout)[0], "group fresh: creating the group, revision 1, 0 nodes → 2 × v1 (max surge 0, max unavailable 1)");
    const same = await server.client(["--group", "fresh", "update", "2", "1"]);
    assert.equal(lines(same.stdout)[0], "group fresh: revision 1, 2 × v1 → 2 × v1 (max surge 0, max unavailable 1)");
    const second = await server.client(["--group", "fresh", "update", "3", "1"]);
    assert.equal(lines(second.stdout)[0], "group fresh: revision 2, 2 × v1 → 3 × v1 (max surge 0, max unavailable 1)");
  });
});

describe("group delete", () => {
  let server: TestServer;
  before(async () => {
    server = await startServer(FAST_SERVER_FLAGS);
  });
  after(async () => {
    await server?.close();
  });

  test("scales the group to 0, follows it like an update, and then the group is gone: groups ls no longer lists it, its nodes are stopped", async () => {
    const group = ["--group", "doomed"];
    assertExit(await server.client([...group, "update", "3", "1"]), 0);
    assertExit(await server.client(["--group", "kept", "update", "1", "1"]), 0);
    const nodes = ((await json(server, [...group, "nodes", "ls"])).nodes as Record<string, any>[]).map((node) => node.id as string);
    assert.equal(nodes.length, 3);

    const result = await server.client([...group, "group", "delete"]);
    assertExit(result, 0);
    const all = lines(result.stdout);
    assert.deepEqual(all.slice(0, 2), [
      "group doomed: deleting it: revision 2 scales it to 0, and once that succeeds the group is forgotten",
      "group doomed: revision 2, 3 × v1 → 0 × v1 (max surge 0, max unavailable 1)",
    ]);
    // Each node is shut down, and the stream says so.
    for (const id of nodes) {
      assert.match(result.stdout, new RegExp(`^\\d+ +- +shut_down_node ${id.slice(0, 6)}…${id.slice(-4)}$`, "m"));
      assert.match(result.stdout, new RegExp(`^ *\\+\\d+\\.\\d\\ds +\\d+ +succeeded +shut_down_node ${id.slice(0, 6)}…${id.slice(-4)}$`, "m"));
    }
    assert.match(result.stdout, new RegExp(`^graph ${ULID} succeeded in \\S+: 4 tasks, 0 retries\\ngroup doomed deleted: its spec, revisions, graphs and nodes are forgotten$`, "m"));

    assert.deepEqual(await groupNames(server), ["kept"]);
    assertOneLineError(await server.client([...group, "nodes", "ls", "--all"]), 5, "group doomed does not exist");
    assertOneLineError(await server.client(["nodes", "describe", nodes[0]!]), 5, nodes[0]!);
    // The name is free again.
    const again = await server.client([...group, "update", "1", "1"]);
    assert.equal(lines(again.stdout)[0], "group doomed: creating the group, revision 1, 0 nodes → 1 × v1 (max surge 0, max unavailable 1)");
  });

  test("forgets at once a group with no node left, and with --detach returns once the graph has started", async () => {
    assertExit(await server.client(["--group", "none", "update", "0", "1"]), 0);
    const result = await server.client(["--group", "none", "group", "delete"]);
    assertExit(result, 0);
    assert.equal(result.stdout, "group none deleted: it had no nodes left\n");
    const document = await server.client(["--group", "none", "group", "delete", "-o", "json"]);
    assertOneLineError(document, 5, "group none does not exist");

    assertExit(await server.client(["--group", "later", "update", "2", "1"]), 0);
    const detached = await server.client(["--group", "later", "group", "delete", "--detach"]);
    assertExit(detached, 0);
    assert.match(lines(detached.stdout).at(-1)!, new RegExp(`^graph (${ULID}) started; watch it with: client --server \\S+ --group later tasks watch \\1$`));
    // With -o json, the DeleteGroup response on one line.
    assertExit(await server.client(["--group", "json", "update", "1", "1"]), 0);
    const json = await server.client(["--group", "json", "group", "delete", "--detach", "-o", "json"]);
    assertExit(json, 0);
    const response = JSON.parse(lines(json.stdout)[0]!) as Record<string, any>;
    assert.deepEqual([response.update.revision, response.update.spec.count], [2, 0]);
    assert.deepEqual(response.update.graph.tasks.map((task: Record<string, any>) => task.action), ["TASK_ACTION_SHUT_DOWN_NODE", "TASK_ACTION_DO_NOTHING"]);
    await eventually("the group is forgotten", async () => (!(await groupNames(server)).includes("later") ? true : undefined));
  });
});

describe("group delete across a crash", () => {
  test("a deletion whose server was killed in the middle of it is finished when the server starts again", async () => {
    const server = await startServer(["--mock-latency", "400ms..400ms", "--parallelism", "4"]);
    try {
      assertExit(await server.client(["--group", "web", "update", "2", "1"]), 0);
      assertExit(await server.client(["--group", "web", "group", "delete", "--detach"]), 0);
      await server.kill();
      await server.restart();
      await eventually("the deletion is finished", async () => ((await groupNames(server)).length === 0 ? true : undefined), { timeoutMs: 20_000 });
      assertOneLineError(await server.client(["--group", "web", "status"]), 5, "group web does not exist");
    } finally {
      await server.close();
    }
  });
});

describe("a group's state in words", () => {
  const plain = { color: false };
  const now = Date.parse("2026-01-01T00:10:00Z");
  const group = GroupStatus.fromPartial({
    group: "web",
    revision: 4,
    spec: { count: 0, version: 2, maxUnavailable: 1 },
    total: 1,
    upToDate: 1,
    available: 0,
    failed: 2,
    graph: { id: "01JDX4ZQ8M6V1Y2K3N4P5Q6R7S", revision: 4, state: GraphState.GRAPH_STATE_FAILED, counts: { total: 3, succeeded: 1 }, error: "task 0 failed" },
    createdAt: new Date("2026-01-01T00:00:00Z"),
    updatedAt: new Date("2026-01-01T00:09:00Z"),
    deleting: true,
    crashLoop: { restarts: 3, nextAttemptAt: new Date("2026-01-01T00:10:40Z"), lastFailure: "node 01JDX3 exited with code 1" },
  });

  test("STATE names the graph's state, then a deletion and a crash loop", () => {
    assert.equal(groupStateText(plain, group), "failed, deleting, crash loop");
    assert.equal(groupStateText(plain, { ...group, graph: undefined, deleting: false, crashLoop: undefined }), "-");
  });

  test("status shows a crash loop and a deletion, and counts the failed nodes", () => {
    const shown = fields(groupStatusLines(plain, group, [], now).join("\n"));
    assert.equal(shown.get("NODES"), "1 up, 1 up to date, 0 available, 2 failed (of 0 desired)");
    assert.equal(shown.get("CRASH LOOP"), "3 restarts, next in 40s (last: node 01JDX3 exited with code 1)");
    assert.equal(shown.get("DELETING"), "the group is forgotten once the rollout of revision 4 (to 0 nodes) succeeds; an update cancels it");
    assert.equal(shown.get("ERROR"), "task 0 failed");
    assert.equal(shown.get("CREATED"), "10m ago");
  });
});
