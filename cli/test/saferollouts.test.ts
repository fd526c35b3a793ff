/**
 * End-to-end tests of safe rollouts through the client: a canary and its promote gate, an
 * update followed into the rollback its failure started, rollback's count and default
 * revision, Ctrl-C while following a graph, a node's story (describe, last state, crash
 * loop), templates on update and set-template, and one revision whole. Each runs the real
 * client against a real server with the mock driver; Ctrl-C is a real SIGINT to the client.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  assertExit,
  assertOneLineError,
  eventually,
  FAST_SERVER_FLAGS,
  graphIdIn,
  json,
  lines,
  type RunningClient,
  startServer,
  table,
  type TestServer,
} from "./harness.js";

const ULID = "[0-9A-HJKMNP-TV-Z]{26}";

const liveNodes = async (server: TestServer, group: string) =>
  ((await json(server, ["--group", group, "nodes", "ls"])).nodes ?? []) as Record<string, any>[];

/** The running nodes by version: `{ 1: 8, 2: 2 }`. */
async function runningByVersion(server: TestServer, group: string): Promise<Record<number, number>> {
  const counts: Record<number, number> = {};
  for (const node of await liveNodes(server, group)) {
    if (node.state === "NODE_STATE_RUNNING") counts[node.version] = (counts[node.version] ?? 0) + 1;
  }
  return counts;
}

/** A table of fields (`nodes describe`, `history --revision`) as name → value. */
function fields(text: string): Map<string, string> {
  return new Map(table(text).map(([name, ...value]) => [name!, value.join("  ")]));
}

/** Waits until the running client has printed text matching `pattern`, and returns the match. */
async function printed(client: RunningClient, pattern: RegExp, what: string): Promise<RegExpExecArray> {
  return eventually(what, async () => pattern.exec(client.stdout()) ?? undefined, {
    timeoutMs: 20_000,
    describe: () => `stdout: ${client.stdout()}\nstderr: ${client.stderr()}`,
  });
}

describe("canary and promote, through the client", () => {
  let server: TestServer;
  before(async () => {
    server = await startServer([...FAST_SERVER_FLAGS, "--reconcile-interval", "60m"]);
  });
  after(async () => {
    await server?.close();
  });

  test("update 10 2 --canary 2 stops with 2 nodes at v2 and 8 at v1 at a gate it shows, and graphs promote lets it finish", async () => {
    const group = ["--group", "canary"];
    assertExit(await server.client([...group, "update", "10", "1"]), 0);
    const updating = server.start([...group, "update", "10", "2", "--canary", "2"]);
    const plan = await printed(updating, new RegExp(`^\\d+ +[\\d,]+ +await_promotion \\(client --server \\S+ --group canary graphs promote (${ULID})\\)$`, "m"), "the gate in the plan");
    const graphId = plan[1]!;
    assert.match(lines(updating.stdout())[0]!, /^group canary: revision 2, 10 × v1 → 10 × v2 \(max surge 0, max unavailable 1, canary 2\)$/);
    await printed(updating, /^ *\+\d+\.\d\ds +\d+ +waiting +await_promotion \(client --server \S+ --group canary graphs promote [0-9A-Z]{26}\): \S.*$/m, "the gate's waiting line");

    // The gate holds: two canaries at v2, the other eight untouched.
    assert.deepEqual(await runningByVersion(server, "canary"), { 1: 8, 2: 2 });
    const shown = await server.client(["graphs", "show", graphId]);
    assertExit(shown, 0);
    const gateRow = table(lines(shown.stdout).slice(2).join("\n")).find((row) => row[2]?.startsWith("await_promotion"));
    assert.deepEqual(gateRow?.slice(3, 5), ["waiting", "0"], shown.stdout);

    const promoted = await server.client([...group, "graphs", "promote"]);
    assertExit(promoted, 0);
    assert.equal(promoted.stdout, `graph ${graphId} promoted: the rollout goes on past its canaries; watch it with: client --server ${server.address} --group canary tasks watch ${graphId}\n`);
    const result = await updating.exited;
    assertExit(result, 0);
    assert.match(result.stdout, /^ *\+\d+\.\d\ds +\d+ +succeeded +await_promotion /m);
    assert.match(result.stdout, new RegExp(`^graph ${graphId} succeeded in \\S+: \\d+ tasks, 0 retries$`, "m"));
    assert.deepEqual(await runningByVersion(server, "canary"), { 2: 10 });

    assertOneLineError(await server.client(["graphs", "promote", graphId]), 1, graphId, "succeeded");
  });

  test("graphs promote of a group that does not exist exits 5, and of a bad id exits 2", async () => {
    assertOneLineError(await server.client(["--group", "nothing", "graphs", "promote"]), 5, "group nothing does not exist");
    assertOneLineError(await server.client(["graphs", "promote", "latest"]), 2, 'graph id "latest" is invalid');
  });
});

describe("rollback's count and default revision, through the client", () => {
  let server: TestServer;
  before(async () => {
    server = await startServer(FAST_SERVER_FLAGS);
  });
  after(async () => {
    await server?.close();
  });

  test("a plain rollback goes to the last revision whose rollout succeeded and keeps the count; --with-count restores it", async () => {
    const group = ["--group", "count"];
    assertExit(await server.client([...group, "update", "2", "1"]), 0);
    assertExit(await server.client([...group, "update", "4", "2"]), 0);

    const plain = await server.client([...group, "rollback"]);
    assertExit(plain, 0);
    assert.deepEqual(lines(plain.stdout).slice(0, 2), [
      "rolling back to revision 1 (the last revision whose rollout succeeded), keeping the current count",
      "group count: revision 3, 4 × v2 → 4 × v1 (max surge 0, max unavailable 1)",
    ]);
    assert.deepEqual(await runningByVersion(server, "count"), { 1: 4 });

    const dryRun = await server.client([...group, "rollback", "1", "--with-count", "--dry-run"]);
    assertExit(dryRun, 0);
    assert.deepEqual(lines(dryRun.stdout).slice(0, 2), [
      "rolling back to revision 1, with its count",
      "group count: dry run, based on revision 3, 4 × v1 → 2 × v1 (max surge 0, max unavailable 1)",
    ]);
    const withCount = await server.client([...group, "rollback", "1", "--with-count"]);
    assertExit(withCount, 0);
    assert.equal(lines(withCount.stdout)[1], "group count: revision 4, 4 × v1 → 2 × v1 (max surge 0, max unavailable 1)");
    assert.deepEqual(await runningByVersion(server, "count"), { 1: 2 });
    const [newest] = (await json(server, [...group, "history"])).revisions;
    assert.deepEqual([newest.revision, newest.reason, newest.restores, newest.spec.count], [4, "REVISION_REASON_ROLLBACK", 1, 2]);
  });
});

describe("update --on-failure rollback, through the client", () => {
  let server: TestServer;
  before(async () => {
    // Only a spec with a 20ms task timeout fails: the rollback restores one with the server's.
    server = await startServer(["--mock-latency", "200ms", "--max-attempts", "2", "--retry-backoff", "10ms..50ms", "--parallelism", "4"]);
  });
  after(async () => {
    await server?.close();
  });

  test("a failed update follows the rollback its failure started, and exits 1 with one line saying it was rolled back", async () => {
    const group = ["--group", "follow"];
    assertExit(await server.client([...group, "update", "2", "1", "--on-failure", "rollback"]), 0);
    const result = await server.client([...group, "update", "2", "2", "--on-failure", "rollback", "--task-timeout", "20ms"]);
    // The update failed: exit 1, though the rollback it started succeeded.
    assertExit(result, 1);
    assert.match(lines(result.stdout)[0]!, /\(max surge 0, max unavailable 1, on failure rollback, task timeout 20ms\)$/);
    const failedGraph = graphIdIn(lines(result.stdout).find((line) => / failed in /.test(line))!);
    const decision = new RegExp(`^rolling back to revision 1 \\(2 × v1\\); following graph (${ULID})$`, "m").exec(result.stdout);
    assert.ok(decision, result.stdout);
    const rollbackGraph = decision[1]!;
    // The rollback is shown as a watch shows a graph: its header and tasks, its stream, its summary.
    assert.match(result.stdout, new RegExp(`^graph ${rollbackGraph}: group follow, revision 3, 2 × v1, `, "m"));
    assert.match(result.stdout, new RegExp(`^graph ${rollbackGraph} succeeded in \\S+: `, "m"));
    assert.equal(lines(result.stdout).at(-1), `update failed; rolled back to revision 1 (graph ${rollbackGraph})`);
    assert.equal(result.stdout.split("\nTASKS STREAM\n").length, 3, "two streams: the update's and the rollback's");
    assert.deepEqual(await runningByVersion(server, "follow"), { 1: 2 });
    const rows = table((await server.client([...group, "history", "--wide"])).stdout).slice(1);
    assert.deepEqual(
      rows.map((row) => [row[0], row[4], row[6], row[7]]),
      [
        ["3", "auto-rollback to 1", rollbackGraph, "succeeded"],
        ["2", "update", failedGraph, "failed"],
        ["1", "update", rows[2]![6], "succeeded"],
      ],
    );

    // After the automatic rollback, a plain rollback does not re-apply the revision that failed.
    const again = await server.client([...group, "rollback", "--dry-run"]);
    assertExit(again, 0);
    assert.equal(lines(again.stdout)[0], "rolling back to revision 1 (the last revision whose rollout succeeded), keeping the current count");
  });

  test("with -o json the rollback's snapshot and events follow the update's, and the exit code is the update's", async () => {
    const group = ["--group", "follow-json"];
    assertExit(await server.client([...group, "update", "1", "1"]), 0);
    const result = await server.client([...group, "update", "1", "2", "--on-failure", "rollback", "--task-timeout", "20ms", "-o", "json"]);
    assertExit(result, 1);
    const documents = lines(result.stdout).map((line) => JSON.parse(line) as Record<string, any>);
    const failed = documents.find((each) => each.event?.graphState === "GRAPH_STATE_FAILED");
    assert.ok(failed?.event.nextGraphId, result.stdout);
    const snapshots = documents.filter((each) => each.snapshot);
    assert.deepEqual(snapshots.map((each) => each.snapshot.id), [failed.event.nextGraphId], "the rollback's snapshot follows");
    assert.equal(documents.at(-1)!.event.graphState, "GRAPH_STATE_SUCCEEDED");
    assert.equal(documents.at(-1)!.event.graphId, failed.event.nextGraphId);
  });
});

describe("Ctrl-C while the client follows a graph", () => {
  let server: TestServer;
  before(async () => {
    // Slow, one task at a time: the graph is still running when the client is interrupted.
    server = await startServer(["--mock-latency", "300ms..500ms", "--parallelism", "1", "--retry-backoff", "10ms..50ms", "--reconcile-interval", "60m"]);
  });
  after(async () => {
    await server?.close();
  });

  /**
   * Interrupts the client once it streams, checks the one line on stderr and the exit code,
   * and that the graph it names went on to succeed without the client. Returns that graph.
   */
  async function interruptAndCheck(client: RunningClient): Promise<string> {
    await printed(client, /^TASKS STREAM$/m, "the task stream");
    client.child.kill("SIGINT");
    const result = await client.exited;
    assertExit(result, 130);
    const line = new RegExp(
      `^interrupted: graph (${ULID}) goes on in the server; re-attach with 'client --server \\S+ --group \\S+ tasks watch \\1', cancel with 'client --server \\S+ --group \\S+ graphs cancel \\1'\n$`,
    ).exec(result.stderr);
    assert.ok(line, `one line on stderr: ${JSON.stringify(result.stderr)}`);
    const graphId = line[1]!;
    assert.doesNotMatch(result.stdout, new RegExp(`^graph ${graphId} \\S+ in `, "m"), "it stopped before the graph settled");
    const watched = await server.client(["tasks", "watch", graphId]);
    assertExit(watched, 0);
    assert.match(watched.stdout, new RegExp(`^graph ${graphId} succeeded in `, "m"));
    return graphId;
  }

  const latestGraph = async (group: string) => (await json(server, ["--group", group, "graphs", "ls"])).graphs[0].id as string;

  test("update: one line on stderr naming the graph, which goes on, and how to re-attach or cancel it; exit 130", async () => {
    const graphId = await interruptAndCheck(server.start(["--group", "ctrlc-update", "update", "5", "1"]));
    assert.equal(graphId, await latestGraph("ctrlc-update"));
    assert.deepEqual(await runningByVersion(server, "ctrlc-update"), { 1: 5 });
  });

  test("rollback: the same line for the rollback's graph; exit 130", async () => {
    const group = ["--group", "ctrlc-rollback"];
    assertExit(await server.client([...group, "update", "2", "1"]), 0);
    assertExit(await server.client([...group, "update", "2", "2"]), 0);
    const graphId = await interruptAndCheck(server.start([...group, "rollback"]));
    assert.equal(graphId, await latestGraph("ctrlc-rollback"));
    assert.deepEqual(await runningByVersion(server, "ctrlc-rollback"), { 1: 2 });
  });

  test("tasks watch: the same line for the watched graph; exit 130", async () => {
    const group = ["--group", "ctrlc-watch"];
    const detached = await server.client([...group, "update", "5", "1", "--detach"]);
    assertExit(detached, 0);
    const started = graphIdIn(lines(detached.stdout).at(-1)!);
    const graphId = await interruptAndCheck(server.start([...group, "tasks", "watch"]));
    assert.equal(graphId, started);
  });
});

describe("a node's story and a group's templates, through the client", () => {
  let server: TestServer;
  before(async () => {
    // Replacements of failed nodes back off from 1s, so that a second one comes within the test.
    server = await startServer([...FAST_SERVER_FLAGS, "--reconcile-interval", "200ms", "--crash-loop-backoff", "1s..5s"]);
  });
  after(async () => {
    await server?.close();
  });

  test("a killed node is described with its revision, last state and events, nodes ls --all shows how it ended, and nodes ls the crash loop", async () => {
    const group = ["--group", "story"];
    assertExit(await server.client([...group, "update", "2", "1"]), 0);
    const first = await liveNodes(server, "story");
    const [victim] = first;
    assertExit(await server.client(["nodes", "kill", victim!.id]), 0);
    // Its replacement fails too: the second replacement makes a crash loop, which nodes ls names after its table.
    const replacement = await eventually("a running replacement", async () =>
      (await liveNodes(server, "story")).find((node) => node.state === "NODE_STATE_RUNNING" && !first.some((each) => each.id === node.id)),
    );
    assertExit(await server.client(["nodes", "kill", replacement.id]), 0);
    const listed = await eventually(
      "the crash loop line",
      async () => {
        const result = await server.client([...group, "nodes", "ls"]);
        return /^crash loop: /m.test(result.stdout) ? result : undefined;
      },
      { timeoutMs: 20_000 },
    );
    assertExit(listed, 0);
    assert.match(lines(listed.stdout).at(-1)!, new RegExp(`^crash loop: 2 restarts, next (in \\d+s|now) \\(last: .*${replacement.id}.*\\)$`));
    assert.deepEqual(table(listed.stdout)[0], ["ID", "VERSION", "REVISION", "STATE", "AGE"]);

    const described = await server.client(["nodes", "describe", victim!.id.toLowerCase()]);
    assertExit(described, 0);
    const shown = fields(described.stdout);
    assert.equal(shown.get("NODE"), victim!.id);
    assert.equal(shown.get("GROUP"), "story");
    assert.match(shown.get("REVISION")!, /^1( \(template [0-9a-f]{8}\))?$/);
    assert.match(shown.get("LAST STATE")!, /^\S.*, \d+s ago/);
    const events = lines(described.stdout.slice(described.stdout.indexOf("\nEVENTS ") + 1));
    assert.equal(events[0], "EVENTS (oldest first; TIME is since the node was created)");
    assert.deepEqual(events[1]!.split(/\s{2,}/), ["TIME", "EVENT", "GRAPH", "DETAIL"]);
    const happened = events.slice(2).map((line) => line.split(/\s{2,}/)[1]);
    assert.ok(happened.indexOf("node running") < happened.indexOf("node failed"), `events oldest first: ${JSON.stringify(happened)}`);
    assert.ok(happened.indexOf("node failed") >= 0, `a failed event: ${JSON.stringify(happened)}`);
    const document = await json(server, ["nodes", "describe", victim!.id]);
    assert.equal(document.node.id, victim!.id);
    assert.ok(document.events.length >= 3);

    const all = table((await server.client([...group, "nodes", "ls", "--all"])).stdout);
    assert.deepEqual(all[0], ["ID", "VERSION", "REVISION", "STATE", "AGE", "LAST STATE"]);
    const row = all.find((cells) => cells[0] === victim!.id);
    assert.match(row?.[5] ?? "", /^\S.*, \d+s ago/, JSON.stringify(all));

    assertOneLineError(await server.client(["nodes", "describe", "01ARZ3NDEKTSV4RRFFQ69G5FAV"]), 5, "01ARZ3NDEKTSV4RRFFQ69G5FAV");
    assertOneLineError(await server.client(["nodes", "describe", "nope"]), 2, 'node id "nope" is invalid');
  });

  test("a template given on update is part of the revision: the header, history and history --revision show it, and a diff from the one before", async () => {
    const group = ["--group", "templated"];
    assertExit(await server.client([...group, "update", "2", "1"]), 0);
    const changed = await server.client([...group, "update", "2", "1", "--command", "node", "--arg", "v2.mjs", "--env", "MODE=prod"]);
    assertExit(changed, 0);
    assert.deepEqual(lines(changed.stdout).slice(0, 2).map((line) => line.replace(/template [0-9a-f]{8}:/, "template HASH:")), [
      "group templated: revision 2, 2 × v1 → 2 × v1 (max surge 0, max unavailable 1)",
      "template HASH: node v2.mjs",
    ]);
    // Every node runs another template now, so each one is replaced, like an outdated version.
    assert.match(changed.stdout, /^graph [0-9A-Z]{26} succeeded in \S+: 4 tasks, 0 retries$/m);
    const nodes = await liveNodes(server, "templated");
    assert.deepEqual(nodes.map((node) => node.revision), [2, 2]);

    const history = table((await server.client([...group, "history", "--wide"])).stdout);
    assert.equal(history[0]!.at(-2), "TEMPLATE");
    assert.deepEqual(history.slice(1).map((row) => [row[0], row.at(-2)]), [["2", "node v2.mjs"], ["1", "default"]]);

    const revision = await server.client([...group, "history", "--revision", "2"]);
    assertExit(revision, 0);
    // The revision whole, its graphs, then what changed.
    const [whole, graphs, changes] = revision.stdout.split("\n\n");
    assert.equal(lines(graphs!)[0], "GRAPHS (1, newest first)");
    const shown = fields(whole!);
    assert.equal(shown.get("REVISION"), "2");
    assert.equal(shown.get("COMMAND"), "node v2.mjs");
    assert.equal(shown.get("ENV"), "MODE=prod");
    assert.match(shown.get("TEMPLATE")!, /^its own, hash [0-9a-f]+$/);
    assert.equal(lines(changes!)[0], "CHANGES FROM REVISION 1");
    const diff = fields(lines(changes!).slice(1).join("\n"));
    assert.equal(diff.get("COMMAND"), "(unset) → node v2.mjs");
    assert.equal(diff.get("ENV MODE"), "(unset) → prod");
    assert.ok(!diff.has("VERSION") && !diff.has("COUNT"), "only what changed");

    const first = await server.client([...group, "history", "--revision", "1"]);
    assertExit(first, 0);
    assert.equal(lines(first.stdout).at(-1), "revision 1 is the group's first: there is none before it to compare with");
    assert.ok(first.stdout.includes("\nGRAPHS (1, newest first)\n"), first.stdout);
    assertOneLineError(await server.client([...group, "history", "--revision", "9"]), 5, "no revision 9", "its newest is 2");
    assertOneLineError(await server.client([...group, "update", "2", "1", "--arg", "x"]), 2, "command is missing: --arg");
  });

  test("group set-template on a group with a spec rolls it out like an update; on one without, it waits for the first update", async () => {
    const group = ["--group", "set"];
    const waiting = await server.client([...group, "group", "set-template", "--command", "node", "--arg", "a.mjs"]);
    assertExit(waiting, 0);
    assert.deepEqual(lines(waiting.stdout).slice(0, 2), [
      "group set: template set",
      `the group has no spec yet: the template applies to its first update ('client --server ${server.address} --group set update <count> <version>')`,
    ]);
    const first = await server.client([...group, "update", "2", "1"]);
    assertExit(first, 0);
    assert.match(lines(first.stdout)[1]!, /^template [0-9a-f]{8}: node a\.mjs$/);

    const rolled = await server.client([...group, "group", "set-template", "--command", "node", "--arg", "b.mjs"]);
    assertExit(rolled, 0);
    assert.deepEqual(lines(rolled.stdout).slice(0, 2), ["group set: template set; rolling it out as revision 2", "group set: revision 2, 2 × v1 → 2 × v1 (max surge 0, max unavailable 1)"]);
    assert.match(lines(rolled.stdout)[2]!, /^template [0-9a-f]{8}: node b\.mjs$/);
    assert.ok(rolled.stdout.includes("\nTASK GRAPH SPEC\n") && rolled.stdout.includes("\nTASKS STREAM\n"));
    assert.match(rolled.stdout, /^graph [0-9A-Z]{26} succeeded in \S+: 4 tasks, 0 retries$/m);
    assert.deepEqual((await liveNodes(server, "set")).map((node) => node.revision), [2, 2]);

    const detached = await server.client([...group, "group", "set-template", "--command", "node", "--arg", "c.mjs", "--detach"]);
    assertExit(detached, 0);
    const graphId = graphIdIn(lines(detached.stdout).at(-1)!);
    assert.equal(lines(detached.stdout).at(-1), `graph ${graphId} started; watch it with: client --server ${server.address} --group set tasks watch ${graphId}`);
    assertExit(await server.client(["tasks", "watch", graphId]), 0);
  });
});
