/**
 * End-to-end tests of how rollouts change under way: roll-forward, repair, history and
 * rollback, the stale-plan guard, pause, resume and cancel, deadlines, the failure policy,
 * and a crash of the server. Each runs the real client against a real server.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import {
  assertExit,
  assertOneLineError,
  type ClientResult,
  eventually,
  FAST_SERVER_FLAGS,
  graphIdIn,
  json,
  lines,
  startServer,
  table,
  type TestServer,
} from "./harness.js";

const SETTLED = new Set(["GRAPH_STATE_SUCCEEDED", "GRAPH_STATE_FAILED", "GRAPH_STATE_CANCELLED", "GRAPH_STATE_SUPERSEDED"]);

/** The graph id the summary line of an update or a watch names (the last `graph <id> ` line). */
function summaryGraphId(stdout: string): string {
  const summary = lines(stdout).reverse().find((line) => /^graph [0-9A-Z]{26} /.test(line));
  assert.ok(summary, `no summary line in:\n${stdout}`);
  return graphIdIn(summary);
}

/** The graph a detached update started. */
function detachedGraphId(result: ClientResult): string {
  assertExit(result, 0);
  const match = /^graph ([0-9A-Z]{26}) started; watch it with: client --server \S+(?: --group \S+)? tasks watch \1$/m.exec(result.stdout);
  assert.ok(match, `no detach line in:\n${result.stdout}`);
  return match[1]!;
}

const nodes = async (server: TestServer, group: string, all = false) =>
  (await json(server, ["--group", group, "nodes", "ls", ...(all ? ["--all"] : [])])).nodes as Record<string, any>[];
const graphs = async (server: TestServer, group: string) =>
  (await json(server, ["--group", group, "graphs", "ls", "--limit", "100"])).graphs as Record<string, any>[];
const graph = async (server: TestServer, id: string) => (await json(server, ["graphs", "show", id])).graph as Record<string, any>;
const revisions = async (server: TestServer, group: string) =>
  (await json(server, ["--group", group, "history"])).revisions as Record<string, any>[];

/** Asserts the group's live nodes are exactly `count` running nodes at `version`, with distinct ids. */
function assertNodes(live: Record<string, any>[], count: number, version: number) {
  const summary = JSON.stringify(live.map((node) => [node.version, node.state]));
  assert.equal(live.length, count, `live nodes: ${summary}`);
  assert.ok(live.every((node) => node.state === "NODE_STATE_RUNNING" && node.version === version), `live nodes: ${summary}`);
  assert.equal(new Set(live.map((node) => node.id)).size, count, "distinct node ids");
}

const countOf = (tasks: Record<string, any>[], state: string) => tasks.filter((task) => task.state === state).length;

describe("the client against a slow server, changing rollouts under way", () => {
  let server: TestServer;
  before(async () => {
    // No periodic repair pass: after `graphs cancel` one would rightly start the group's missing
    // nodes, and the cancel test (about ten seconds in) would see them starting.
    server = await startServer(["--mock-latency", "150ms..250ms", "--parallelism", "1", "--retry-backoff", "10ms..50ms", "--reconcile-interval", "60m"]);
  });
  after(async () => {
    await server?.close();
  });

  test("an update while a graph runs supersedes it, says so, and the group ends at the newer spec", async () => {
    const group = ["--group", "forward"];
    const first = detachedGraphId(await server.client([...group, "update", "10", "1", "--detach"]));
    const second = await server.client([...group, "update", "4", "2"]);
    assertExit(second, 0);
    assert.match(second.stdout, new RegExp(`^superseded graph ${first}$`, "m"));
    assert.match(second.stdout, /^graph [0-9A-Z]{26} succeeded in \S+: /m);
    assertNodes(await nodes(server, "forward"), 4, 2);
    const listed = table((await server.client([...group, "graphs", "ls"])).stdout);
    const row = listed.find(([id]) => id === first);
    assert.deepEqual(row?.slice(1, 5), ["1", "update", "10 × v1", "superseded"], `graphs ls: ${JSON.stringify(listed)}`);
  });

  test("ten updates sent within a second end in the spec of the last revision, with every graph settled", async () => {
    const group = ["--group", "rapid"];
    // Ten clients, 50ms apart: each update arrives while the graph of the one before still runs.
    const sent: Promise<ClientResult>[] = [];
    for (let index = 1; index <= 10; index++) {
      sent.push(server.client([...group, "update", String(1 + (index % 3)), String(index), "--detach"]));
      if (index < 10) await sleep(50);
    }
    const results = await Promise.all(sent);
    // The updates may reach the server in any order; the revision each got says which came last.
    const stored = results.map((result) => {
      assertExit(result, 0);
      const match = /^group rapid: (?:creating the group, )?revision (\d+), .* → (\d+) × v(\d+) /m.exec(result.stdout);
      assert.ok(match, result.stdout);
      return { revision: Number(match[1]), count: Number(match[2]), version: Number(match[3]) };
    });
    const last = stored.reduce((newest, each) => (each.revision > newest.revision ? each : newest));
    assert.equal(last.revision, 10);
    assert.ok(results.filter((result) => /^superseded graph /m.test(result.stdout)).length > 0, "some update superseded a running graph");

    assertExit(await server.client([...group, "tasks", "watch"]), 0);
    const listed = await json(server, [...group, "nodes", "ls"]);
    assert.equal(listed.revision, 10);
    assertNodes(listed.nodes, last.count, last.version);
    const all = await graphs(server, "rapid");
    assert.equal(all.length, 10);
    assert.deepEqual(all.filter((each) => !SETTLED.has(each.state)), [], "no graph is pending, running or paused");
    assert.equal(all[0]!.state, "GRAPH_STATE_SUCCEEDED");
  });

  test("a paused graph starts no task until it is resumed, and a watcher sees both and the success", async () => {
    const group = ["--group", "pause"];
    // Eight starts one at a time take about 1.6s: time enough to pause the graph half-way, even on a busy machine.
    const id = detachedGraphId(await server.client([...group, "update", "8", "1", "--detach"]));
    const watching = server.client(["tasks", "watch", id]);
    await sleep(300);
    const paused = await server.client(["graphs", "pause", id]);
    assertExit(paused, 0);
    assert.equal(paused.stdout, `graph ${id} paused\n`);

    // The task running when it paused finishes; then nothing moves.
    const settledTasks = await eventually("the running task finishing", async () => {
      const shown = await graph(server, id);
      return countOf(shown.tasks, "TASK_STATE_RUNNING") === 0 ? shown : undefined;
    });
    assert.equal(settledTasks.state, "GRAPH_STATE_PAUSED");
    const succeeded = countOf(settledTasks.tasks, "TASK_STATE_SUCCEEDED");
    assert.ok(succeeded < 8, "the graph paused before it finished");
    await sleep(500);
    const later = await graph(server, id);
    assert.equal(later.state, "GRAPH_STATE_PAUSED");
    assert.equal(countOf(later.tasks, "TASK_STATE_SUCCEEDED"), succeeded, "no task finished while paused");
    assert.equal(countOf(later.tasks, "TASK_STATE_RUNNING"), 0, "no task started while paused");

    const resumed = await server.client(["graphs", "resume", id]);
    assertExit(resumed, 0);
    assert.equal(resumed.stdout, `graph ${id} resumed\n`);
    const watched = await watching;
    assertExit(watched, 0);
    assert.match(watched.stdout, /^ *\+\d+\.\d\ds {2}graph resumed$/m);
    assert.match(watched.stdout, new RegExp(`^graph ${id} succeeded in \\S+: 9 tasks, 0 retries$`, "m"));
    assertNodes(await nodes(server, "pause"), 8, 1);
    assertOneLineError(await server.client(["graphs", "pause", id]), 1, id, "succeeded");
    assertOneLineError(await server.client(["graphs", "resume", id]), 1, id, "succeeded");
  });

  test("graphs cancel of a running graph exits 0 and leaves no node starting or stopping", async () => {
    const group = ["--group", "cancel-running"];
    const id = detachedGraphId(await server.client([...group, "update", "10", "1", "--detach"]));
    await eventually("a task running", async () => (countOf((await graph(server, id)).tasks, "TASK_STATE_RUNNING") > 0 ? true : undefined));
    const cancelled = await server.client(["graphs", "cancel", id]);
    assertExit(cancelled, 0);
    assert.match(cancelled.stdout, new RegExp(`^graph ${id} cancelled: 11 tasks \\(.*cancelled\\)$`, "m"));
    const left = await nodes(server, "cancel-running", true);
    assert.deepEqual(
      left.filter((node) => node.state === "NODE_STATE_STARTING" || node.state === "NODE_STATE_STOPPING"),
      [],
      "no node is left half-started",
    );
    assert.ok(left.some((node) => node.state === "NODE_STATE_RUNNING"), "nodes started before the cancel are left running");
  });
});

describe("the client against a server whose nodes crash", () => {
  let server: TestServer;
  before(async () => {
    server = await startServer([...FAST_SERVER_FLAGS, "--mock-crash-rate", "0.5", "--reconcile-interval", "200ms"]);
  });
  after(async () => {
    await server?.close();
  });

  test("a group left alone is repaired back to its count by repair graphs", async () => {
    const group = ["--group", "repair"];
    assertExit(await server.client([...group, "update", "3", "1"]), 0);
    const first = new Set((await nodes(server, "repair", true)).map((node) => node.id as string));
    await eventually("a repair graph", async () => ((await graphs(server, "repair")).some((each) => each.reason === "GRAPH_REASON_REPAIR") ? true : undefined), {
      timeoutMs: 20_000,
    });
    const listed = table((await server.client([...group, "graphs", "ls"])).stdout);
    assert.ok(listed.some((row) => row[2] === "repair"), `graphs ls shows a repair: ${JSON.stringify(listed)}`);
    // Nodes keep crashing; at some moment the group is whole again, with nodes it started by itself.
    let last: Record<string, any>[] = [];
    await eventually(
      "three running nodes, one of them a replacement",
      async () => {
        last = await nodes(server, "repair");
        const running = last.filter((node) => node.state === "NODE_STATE_RUNNING" && node.version === 1);
        return running.length === 3 && running.some((node) => !first.has(node.id)) ? true : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 50, describe: () => JSON.stringify(last.map((node) => node.state)) },
    );
    const revision = (await json(server, [...group, "nodes", "ls"])).revision;
    assert.equal(revision, 1, "repairs happen under the same revision");
  });
});

describe("the client's history, rollback and stale-plan guard", () => {
  let server: TestServer;
  before(async () => {
    server = await startServer(FAST_SERVER_FLAGS);
  });
  after(async () => {
    await server?.close();
  });

  test("history lists every revision with its graph and outcome, and rollback rolls back to the last good one like an update, keeping the count", async () => {
    const group = ["--group", "history"];
    const first = await server.client([...group, "update", "2", "1"]);
    const second = await server.client([...group, "update", "3", "2"]);
    assertExit(first, 0);
    assertExit(second, 0);
    const [header, ...rows] = table((await server.client([...group, "history", "--wide"])).stdout);
    assert.deepEqual(header, ["REVISION", "COUNT", "VERSION", "STRATEGY", "REASON", "AGE", "GRAPH", "OUTCOME", "TEMPLATE", "OTHER GRAPHS"]);
    assert.deepEqual(
      rows.map((row) => [...row.slice(0, 5), ...row.slice(6)]),
      [
        ["2", "3", "2", "surge 0, unavailable 1, on failure stop", "update", summaryGraphId(second.stdout), "succeeded", "default", "-"],
        ["1", "2", "1", "surge 0, unavailable 1, on failure stop", "update", summaryGraphId(first.stdout), "succeeded", "default", "-"],
      ],
    );
    assert.ok(rows.every((row) => /^\d+s$/.test(row[5]!)), "each revision has an age");

    const dryRun = await server.client([...group, "rollback", "--dry-run"]);
    assertExit(dryRun, 0);
    assert.deepEqual(lines(dryRun.stdout).slice(0, 2), [
      "rolling back to revision 1 (the last revision whose rollout succeeded), keeping the current count",
      "group history: dry run, based on revision 2, 3 × v2 → 3 × v1 (max surge 0, max unavailable 1)",
    ]);

    const rolledBack = await server.client([...group, "rollback"]);
    assertExit(rolledBack, 0);
    assert.deepEqual(lines(rolledBack.stdout).slice(0, 2), [
      "rolling back to revision 1 (the last revision whose rollout succeeded), keeping the current count",
      "group history: revision 3, 3 × v2 → 3 × v1 (max surge 0, max unavailable 1)",
    ]);
    assert.ok(rolledBack.stdout.includes("\nTASK GRAPH SPEC\n") && rolledBack.stdout.includes("\nTASKS STREAM\n"));
    const rollbackGraph = summaryGraphId(rolledBack.stdout);
    assert.match(rolledBack.stdout, new RegExp(`^graph ${rollbackGraph} succeeded in \\S+: 6 tasks, 0 retries$`, "m"));
    assertNodes(await nodes(server, "history"), 3, 1);

    const [newest] = table((await server.client([...group, "history", "--wide"])).stdout).slice(1);
    assert.deepEqual([...newest!.slice(0, 5), ...newest!.slice(6)], ["3", "3", "1", "surge 0, unavailable 1, on failure stop", "rollback to 1", rollbackGraph, "succeeded", "default", "-"]);
    const [stored] = await revisions(server, "history");
    assert.equal(stored!.reason, "REVISION_REASON_ROLLBACK");
    assert.equal(stored!.restores, 1);

    assertOneLineError(await server.client([...group, "rollback", "99"]), 5, "revision 99");
    assertOneLineError(await server.client([...group, "rollback", "--expect-revision", "2"]), 1, "revision 3", "expected 2");
  });

  test("rollback of a group with no earlier revision that succeeded is refused with exit 1, and a rollback to the current revision has nothing to do", async () => {
    const group = ["--group", "first"];
    assertExit(await server.client([...group, "update", "1", "1"]), 0);
    assertOneLineError(await server.client([...group, "rollback"]), 1, "no revision before 1 whose rollout succeeded");
    // Revision 1 is the current one: its spec is what the group already runs, so the server has nothing to do.
    const same = await server.client([...group, "rollback", "1"]);
    assertExit(same, 0);
    assert.deepEqual(lines(same.stdout), [
      "rolling back to revision 1, keeping the current count",
      "group first: revision 1, 1 × v1 → 1 × v1 (max surge 0, max unavailable 1)",
      "nothing to do: the group already matches",
    ]);
    assert.equal((await revisions(server, "first")).length, 1, "no revision was stored");
  });

  test("update --expect-revision applies the spec only while the group is at that revision, naming both when it is not", async () => {
    const group = ["--group", "expect"];
    assertExit(await server.client([...group, "update", "1", "1", "--expect-revision", "0"]), 0);
    assertOneLineError(await server.client([...group, "update", "2", "1", "--expect-revision", "0"]), 1, "revision 1", "expected 0");
    assertExit(await server.client([...group, "update", "2", "1", "--expect-revision", "1"]), 0);
    assertNodes(await nodes(server, "expect"), 2, 1);
    assert.equal((await revisions(server, "expect")).length, 2, "the refused update stored no revision");
  });
});

describe("the client against a server whose tasks take 200ms", () => {
  let server: TestServer;
  before(async () => {
    server = await startServer(["--mock-latency", "200ms", "--max-attempts", "2", "--retry-backoff", "10ms..50ms", "--parallelism", "4"]);
  });
  after(async () => {
    await server?.close();
  });

  test("a spec's task timeout fails the graph, naming the task that timed out", async () => {
    const result = await server.client(["--group", "timeout", "update", "1", "1", "--task-timeout", "20ms"]);
    assertExit(result, 1);
    assert.match(lines(result.stdout)[0]!, /\(max surge 0, max unavailable 1, task timeout 20ms\)$/);
    assert.match(result.stdout, /retrying in \d+ms {2}start_node version=1 \S+ {2}error: attempt timed out after 20ms$/m);
    assert.match(result.stdout, /^error: task 0 \(start_node version=1\) failed after 2 attempts: attempt timed out after 20ms$/m);
  });

  test("a spec's progress deadline fails the graph, naming the task that was stuck", async () => {
    const result = await server.client(["--group", "deadline", "update", "1", "1", "--progress-deadline", "50ms"]);
    assertExit(result, 1);
    assert.match(result.stdout, /^error: no task finished for 50ms: task 0 \(start_node version=1\) has been running for \d+ms$/m);
  });

  // A failed update under --on-failure rollback, followed into its rollback: see saferollouts.test.ts.
});

describe("the client against a server whose tasks start failing after a restart", () => {
  let server: TestServer;
  before(async () => {
    server = await startServer(FAST_SERVER_FLAGS);
  });
  after(async () => {
    await server?.close();
  });

  test("an automatic rollback that fails is not rolled back again, and its summary says so", async () => {
    const group = ["--group", "again"];
    assertExit(await server.client([...group, "update", "2", "1", "--on-failure", "rollback"]), 0);
    // Every task now fails after a second: long enough for a watcher to attach to the rollback before it fails too.
    await server.restart(["--mock-latency", "1s", "--parallelism", "4", "--mock-failure-rate", "1", "--max-attempts", "1"]);
    const failed = await server.client([...group, "update", "2", "2", "--on-failure", "rollback"]);
    assertExit(failed, 1);
    // The update follows the rollback its failure started, and ends with how that ended.
    const decision = /^rolling back to revision 1 \(2 × v1\); following graph ([0-9A-Z]{26})$/m.exec(failed.stdout);
    assert.ok(decision, failed.stdout);
    const rollbackGraph = decision[1]!;
    assert.equal(failed.stdout.split("\nTASKS STREAM\n").length, 3, "the client followed the rollback while it ran");
    assert.match(failed.stdout, new RegExp(`^graph ${rollbackGraph} failed in `, "m"));
    assert.match(failed.stdout, /^not rolling back: it was itself an automatic rollback$/m);
    assert.equal(lines(failed.stdout).at(-1), `update failed, and its rollback to revision 1 failed too (graph ${rollbackGraph})`);
    const watched = await server.client(["tasks", "watch", rollbackGraph]);
    assertExit(watched, 1);
    assert.match(watched.stdout, /^not rolling back: it was itself an automatic rollback$/m);
    const stored = await revisions(server, "again");
    assert.deepEqual(
      stored.map((revision) => [revision.revision, revision.reason, revision.restores ?? 0, revision.graphState]),
      [
        [3, "REVISION_REASON_AUTO_ROLLBACK", 1, "GRAPH_STATE_FAILED"],
        [2, "REVISION_REASON_UPDATE", 0, "GRAPH_STATE_FAILED"],
        [1, "REVISION_REASON_UPDATE", 0, "GRAPH_STATE_SUCCEEDED"],
      ],
      "no fourth revision: the failed rollback was left for an operator",
    );
  });
});

describe("the client against a server killed in the middle of a graph", () => {
  let server: TestServer;
  before(async () => {
    server = await startServer(["--mock-latency", "1s..2s", "--parallelism", "2", "--retry-backoff", "10ms..50ms"]);
  });
  after(async () => {
    await server?.close();
  });

  test("after SIGKILL and a restart the graph resumes and ends with exactly the nodes asked for", async () => {
    const id = detachedGraphId(await server.client(["update", "6", "1", "--detach"]));
    await sleep(2_000);
    await server.kill();
    await server.restart();
    const watched = await server.client(["tasks", "watch", id]);
    assertExit(watched, 0);
    assert.match(watched.stdout, new RegExp(`^graph ${id} succeeded in `, "m"));
    const live = await nodes(server, "default");
    assertNodes(live, 6, 1);
    const others = (await nodes(server, "default", true)).filter((node) => !live.some((each) => each.id === node.id));
    assert.deepEqual(others.filter((node) => node.state !== "NODE_STATE_STOPPED"), [], "every other node is stopped");
  });
});
