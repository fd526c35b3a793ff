import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { DroverServiceDefinition } from "@drover/shared";
import { ClientError, createChannel, createClient, Metadata, Status } from "nice-grpc";
import {
  assertOneLineError,
  type ClientResult,
  eventually,
  FAST_SERVER_FLAGS,
  graphIdIn,
  jsonLines,
  lines,
  runClient,
  startServer,
  type TestServer,
} from "./harness.js";

const ULID = /^[0-9A-HJKMNP-TV-Z]{26}$/;
const FINAL_TASK_STATES = new Set(["TASK_STATE_SUCCEEDED", "TASK_STATE_FAILED", "TASK_STATE_SKIPPED", "TASK_STATE_CANCELLED"]);

/** The rows of the table under a section title (`TASK GRAPH SPEC`), or the table at the top, split into cells. */
function tableRows(stdout: string, title?: string): string[][] {
  const all = lines(stdout);
  let start = 0;
  if (title !== undefined) {
    start = all.indexOf(title) + 1;
    assert.ok(start > 0, `no ${title} section in:\n${stdout}`);
  }
  const rows: string[][] = [];
  for (const line of all.slice(start + 1)) {
    if (line.trim() === "") break;
    rows.push(line.trim().split(/\s{2,}/));
  }
  return rows;
}

/** The lines of the task stream, each split into time, task id, what happened, action (and error). */
function streamLines(stdout: string): string[][] {
  const all = lines(stdout);
  const start = all.indexOf("TASKS STREAM");
  assert.ok(start >= 0, `no TASKS STREAM in:\n${stdout}`);
  const result: string[][] = [];
  for (const line of all.slice(start + 1)) {
    if (line.trim() === "") break;
    result.push(line.trim().split(/\s{2,}/));
  }
  return result;
}

function lastLineStarting(text: string, prefix: string): string {
  const found = lines(text).reverse().find((line) => line.startsWith(prefix));
  assert.ok(found, `no line starting with ${prefix} in:\n${text}`);
  return found;
}

function assertSucceeded(result: ClientResult) {
  assert.equal(result.code, 0, `exit code; stderr: ${result.stderr}; stdout: ${result.stdout}`);
}

async function liveNodes(server: TestServer, group: string): Promise<Record<string, any>[]> {
  const result = await server.client(["--group", group, "nodes", "ls", "-o", "json"]);
  assertSucceeded(result);
  return JSON.parse(result.stdout).nodes as Record<string, any>[];
}

async function graphJson(server: TestServer, id: string): Promise<Record<string, any>> {
  const result = await server.client(["graphs", "show", id, "-o", "json"]);
  assertSucceeded(result);
  return JSON.parse(result.stdout).graph as Record<string, any>;
}

describe("the client against a fast server", () => {
  let server: TestServer;
  before(async () => {
    server = await startServer(FAST_SERVER_FLAGS);
  });
  after(async () => {
    await server?.close();
  });

  describe("a group taken through scale-up, rollout, scale-up and scale-down", () => {
    const group = ["--group", "life"];
    let firstIds: string[] = [];

    test("update 3 1 prints the plan, streams every task and exits 0 when the graph succeeded", async () => {
      const result = await server.client([...group, "update", "3", "1"]);
      assertSucceeded(result);
      assert.equal(result.stderr, "");
      assert.equal(lines(result.stdout)[0], "group life: creating the group, revision 1, 0 nodes → 3 × v1 (max surge 0, max unavailable 1)");
      assert.deepEqual(tableRows(result.stdout, "TASK GRAPH SPEC"), [
        ["0", "-", "start_node version=1"],
        ["1", "-", "start_node version=1"],
        ["2", "-", "start_node version=1"],
        ["3", "0,1,2", "do_nothing"],
      ]);
      const stream = streamLines(result.stdout);
      for (const id of ["0", "1", "2"]) {
        assert.equal(stream.filter(([, task, word]) => task === id && word === "started").length, 1, `task ${id} started once`);
      }
      for (const id of ["0", "1", "2", "3"]) {
        assert.equal(stream.filter(([, task, word]) => task === id && word === "succeeded").length, 1, `task ${id} succeeded once`);
      }
      assert.ok(stream.every(([time]) => /^\+\d+\.\d\ds$/.test(time!)), "each line starts with a relative time");
      assert.match(result.stdout, /^graph [0-9A-Z]{26} succeeded in \S+: 4 tasks, 0 retries$/m);
    });

    test("nodes ls lists the three running v1 nodes", async () => {
      const result = await server.client([...group, "nodes", "ls"]);
      assertSucceeded(result);
      const rows = tableRows(result.stdout);
      assert.deepEqual(lines(result.stdout)[0]!.split(/\s{2,}/), ["ID", "VERSION", "REVISION", "STATE", "AGE"]);
      assert.equal(rows.length, 3);
      for (const [id, version, revision, state, age] of rows) {
        assert.equal(revision, "1");
        assert.match(id!, ULID);
        assert.equal(version, "1");
        assert.equal(state, "running");
        assert.match(age!, /^\d+s$/);
      }
      firstIds = rows.map(([id]) => id!);
    });

    test("update 3 2 replaces the nodes one at a time: shut down, start, and again", async () => {
      const result = await server.client([...group, "update", "3", "2"]);
      assertSucceeded(result);
      assert.equal(lines(result.stdout)[0], "group life: revision 2, 3 × v1 → 3 × v2 (max surge 0, max unavailable 1)");
      const plan = tableRows(result.stdout, "TASK GRAPH SPEC");
      assert.equal(plan.length, 6);
      plan.forEach(([id, prerequisites, action], index) => {
        assert.equal(id, String(index));
        assert.equal(prerequisites, index === 0 ? "-" : String(index - 1));
        assert.match(action!, index % 2 === 0 ? /^shut_down_node \S+$/ : /^start_node version=2$/);
      });
      assert.match(result.stdout, /^graph [0-9A-Z]{26} succeeded in \S+: 6 tasks, 0 retries$/m);

      const nodes = await liveNodes(server, "life");
      assert.equal(nodes.length, 3);
      assert.ok(nodes.every((node) => node.version === 2 && node.state === "NODE_STATE_RUNNING"));
      const newIds = nodes.map((node) => node.id as string);
      assert.equal(new Set(newIds).size, 3, "the new nodes have distinct ids");
      assert.ok(newIds.every((id) => !firstIds.includes(id)), "the v2 nodes are new nodes");
    });

    test("update 5 2 starts two nodes in parallel, joined by a marker", async () => {
      const result = await server.client([...group, "update", "5", "2"]);
      assertSucceeded(result);
      assert.equal(lines(result.stdout)[0], "group life: revision 3, 3 × v2 → 5 × v2 (max surge 0, max unavailable 1)");
      assert.deepEqual(tableRows(result.stdout, "TASK GRAPH SPEC"), [
        ["0", "-", "start_node version=2"],
        ["1", "-", "start_node version=2"],
        ["2", "0,1", "do_nothing"],
      ]);
      assert.equal((await liveNodes(server, "life")).length, 5);
    });

    test("update 0 2 shuts every node down; nodes ls is then empty and nodes ls --all shows them stopped", async () => {
      const result = await server.client([...group, "update", "0", "2"]);
      assertSucceeded(result);
      const plan = tableRows(result.stdout, "TASK GRAPH SPEC");
      assert.equal(plan.filter(([, , action]) => action!.startsWith("shut_down_node")).length, 5);

      const empty = await server.client([...group, "nodes", "ls"]);
      assertSucceeded(empty);
      assert.equal(empty.stdout, "");
      assert.match(empty.stderr, /^no nodes in group life/);

      const all = await server.client([...group, "nodes", "ls", "--all"]);
      assertSucceeded(all);
      const rows = tableRows(all.stdout);
      assert.equal(rows.length, 8, "3 v1 and 5 v2 nodes, all stopped");
      assert.deepEqual(lines(all.stdout)[0]!.split(/\s{2,}/), ["ID", "VERSION", "REVISION", "STATE", "AGE", "LAST STATE"]);
      assert.ok(rows.every(([, , , state, , last]) => state === "stopped" && /^stopped, \d+s ago$/.test(last!)), JSON.stringify(rows));
    });
  });

  describe("dry runs and nothing to do", () => {
    const group = ["--group", "dry"];

    test("update --dry-run prints the plan and changes nothing", async () => {
      assertSucceeded(await server.client([...group, "update", "2", "1"]));
      const result = await server.client([...group, "update", "4", "1", "--dry-run"]);
      assertSucceeded(result);
      assert.equal(lines(result.stdout)[0], "group dry: dry run, based on revision 1, 2 × v1 → 4 × v1 (max surge 0, max unavailable 1)");
      assert.equal(tableRows(result.stdout, "TASK GRAPH SPEC").length, 3);
      assert.ok(!result.stdout.includes("TASKS STREAM"));
      assert.equal((await liveNodes(server, "dry")).length, 2);
      const graphs = await server.client([...group, "graphs", "ls", "-o", "json"]);
      assert.equal(JSON.parse(graphs.stdout).graphs.length, 1, "a dry run stores no graph");
    });

    test("an update the group already matches says there is nothing to do and exits 0", async () => {
      const result = await server.client([...group, "update", "2", "1"]);
      assertSucceeded(result);
      assert.deepEqual(lines(result.stdout), [
        "group dry: revision 1, 2 × v1 → 2 × v1 (max surge 0, max unavailable 1)",
        "nothing to do: the group already matches",
      ]);
    });

    test("global options work after the subcommand as well as before it", async () => {
      const credentials = { XDG_CONFIG_HOME: join(server.dataDir, "config") };
      const result = await runClient(["update", "2", "1", "--group", "dry", "--server", server.address], credentials);
      assertSucceeded(result);
      assert.match(result.stdout, /nothing to do/);
      const fromEnvironment = await runClient(["nodes", "ls"], { ...credentials, DROVER_SERVER: server.address, DROVER_GROUP: "dry" });
      assertSucceeded(fromEnvironment);
      assert.equal(tableRows(fromEnvironment.stdout).length, 2);
    });
  });

  describe("json output", () => {
    const group = ["--group", "json"];

    test("update -o json prints the SetSpec response, then one event per line ending with the graph's success", async () => {
      const result = await server.client([...group, "-o", "json", "update", "2", "1", "--max-surge", "1"]);
      assertSucceeded(result);
      const [response, ...events] = jsonLines(result.stdout);
      assert.equal(response!.group, "json");
      assert.deepEqual(
        { count: response!.spec.count, version: response!.spec.version, maxSurge: response!.spec.maxSurge, maxUnavailable: response!.spec.maxUnavailable },
        { count: 2, version: 1, maxSurge: 1, maxUnavailable: 1 },
      );
      assert.equal(response!.graph.tasks.length, 3);
      assert.ok(events.length > 0 && events.every((line) => line.event !== undefined));
      const sequences = events.map((line) => line.event.sequence as number);
      assert.deepEqual([...sequences].sort((a, b) => a - b), sequences, "events come in sequence order");
      assert.equal(new Set(sequences).size, sequences.length, "no event comes twice");
      assert.equal(events.at(-1)!.event.graphState, "GRAPH_STATE_SUCCEEDED");
    });

    test("nodes ls -o json and graphs ls -o json print one document with proto JSON field names", async () => {
      const nodes = await server.client([...group, "nodes", "ls", "-o", "json"]);
      assertSucceeded(nodes);
      const nodeList = JSON.parse(nodes.stdout);
      assert.equal(nodeList.nodes.length, 2);
      assert.equal(nodeList.spec.maxSurge, 1);
      for (const node of nodeList.nodes) {
        assert.match(node.id, ULID);
        assert.equal(node.state, "NODE_STATE_RUNNING");
        assert.ok(node.createdAt);
      }
      const graphs = await server.client([...group, "graphs", "ls", "-o", "json"]);
      assertSucceeded(graphs);
      const [graph] = JSON.parse(graphs.stdout).graphs;
      assert.equal(graph.state, "GRAPH_STATE_SUCCEEDED");
      assert.equal(graph.counts.total, 3);
      assert.equal(graph.counts.succeeded, 3);
    });
  });

  describe("graphs", () => {
    const group = ["--group", "graphs"];
    let graphId = "";

    before(async () => {
      const result = await server.client([...group, "update", "2", "1"]);
      assertSucceeded(result);
      graphId = graphIdIn(lines(result.stdout).at(-1)!);
    });

    test("graphs ls shows each graph with its revision, why it was made, spec, state and tasks done", async () => {
      const result = await server.client([...group, "graphs", "ls"]);
      assertSucceeded(result);
      assert.deepEqual(lines(result.stdout)[0]!.split(/\s{2,}/), ["ID", "REVISION", "REASON", "SPEC", "STATE", "TASKS", "AGE"]);
      const [row] = tableRows(result.stdout);
      assert.deepEqual(row!.slice(0, 6), [graphId, "1", "update", "2 × v1", "succeeded", "3/3"]);
    });

    test("graphs show prints every task with its state and attempts", async () => {
      const result = await server.client(["graphs", "show", graphId]);
      assertSucceeded(result);
      assert.deepEqual(lines(result.stdout)[2]!.split(/\s{2,}/), ["ID", "PREREQS", "ACTION", "STATE", "ATTEMPTS", "DETAIL"]);
      const rows = tableRows(result.stdout, "");
      assert.deepEqual(rows.map(([id, prerequisites, , state, attempts]) => [id, prerequisites, state, attempts]), [
        ["0", "-", "succeeded", "1"],
        ["1", "-", "succeeded", "1"],
        ["2", "0,1", "succeeded", "0"],
      ]);
      assert.match(rows[0]![2]!, /^start_node version=1 [0-9A-Z]{26}$/, "graphs show gives full node ids");
    });

    test("graphs show --format dot and --format mermaid draw the DAG", async () => {
      const dot = await server.client(["graphs", "show", graphId, "--format", "dot"]);
      assertSucceeded(dot);
      assert.match(dot.stdout, /^digraph "graph [0-9A-Z]{26}" \{/);
      assert.match(dot.stdout, /t0 \[label="0: start_node version=1 [0-9A-Z]{26}\\nsucceeded"\];/);
      assert.match(dot.stdout, /t0 -> t2;\n {2}t1 -> t2;\n\}\n$/);
      const mermaid = await server.client(["graphs", "show", graphId, "--format", "mermaid"]);
      assertSucceeded(mermaid);
      // The flowchart follows the front matter that holds its title.
      assert.equal(lines(mermaid.stdout)[3], "flowchart TD");
      assert.match(mermaid.stdout, /t2\["2: do_nothing<br\/>succeeded"\]/);
      assert.match(mermaid.stdout, /t0 --> t2\n {2}t1 --> t2\n$/);
    });

    test("tasks watch of a settled graph prints its snapshot and summary at once", async () => {
      for (const args of [["tasks", "watch", graphId], [...group, "tasks", "watch"]]) {
        const result = await server.client(args);
        assertSucceeded(result);
        assert.equal(lines(result.stdout)[0], `graph ${graphId}: group graphs, revision 1, 2 × v1, succeeded`);
        assert.ok(!result.stdout.includes("TASKS STREAM"));
        assert.equal(tableRows(result.stdout, "").length, 3);
        assert.match(result.stdout, new RegExp(`^graph ${graphId} succeeded in \\S+: 3 tasks, 0 retries$`, "m"));
      }
    });

    test("graphs cancel of a settled graph is refused with exit code 1", async () => {
      const result = await server.client(["graphs", "cancel", graphId]);
      assertOneLineError(result, 1, graphId, "succeeded");
    });
  });

  describe("bad input", () => {
    const cases: { args: string[]; code: number; names: string[] }[] = [
      { args: ["update", "abc", "1"], code: 2, names: ['count "abc"', "0 to 100000"] },
      { args: ["update", "-1", "1"], code: 2, names: ['count "-1"'] },
      { args: ["update", "1", "0"], code: 2, names: ['version "0"'] },
      { args: ["update", "1", "1.5"], code: 2, names: ['version "1.5"'] },
      { args: ["update", "1", "1e3"], code: 2, names: ['version "1e3"'] },
      { args: ["update", "100001", "1"], code: 2, names: ['count "100001"', "0 to 100000"] },
      { args: ["update", "3", "1", "--max-surge", "0", "--max-unavailable", "0"], code: 2, names: ["max surge", "max unavailable"] },
      { args: ["update", "3", "1", "--max-surge", "-2"], code: 2, names: ['max surge "-2"'] },
      { args: ["update", "3"], code: 2, names: ["version"] },
      { args: ["--group", "Bad_Name", "nodes", "ls"], code: 2, names: ['"Bad_Name"'] },
      { args: ["-o", "yaml", "nodes", "ls"], code: 2, names: ['"yaml"'] },
      { args: ["graphs", "show", "01ARZ3NDEKTSV4RRFFQ69G5FAV"], code: 5, names: ["01ARZ3NDEKTSV4RRFFQ69G5FAV", "not found"] },
      { args: ["graphs", "show", "nope"], code: 2, names: ['"nope"'] },
      { args: ["graphs", "show", "01ARZ3NDEKTSV4RRFFQ69G5FAV", "--format", "svg"], code: 2, names: ['"svg"'] },
      { args: ["graphs", "ls", "--limit", "0"], code: 2, names: ['limit "0"'] },
      { args: ["tasks", "watch", "01ARZ3NDEKTSV4RRFFQ69G5FAV"], code: 5, names: ["01ARZ3NDEKTSV4RRFFQ69G5FAV"] },
      { args: ["--group", "never-updated", "tasks", "watch"], code: 5, names: ["never-updated"] },
      { args: ["frobnicate"], code: 2, names: ["frobnicate"] },
      { args: ["nodes", "list"], code: 2, names: ["list"] },
      { args: ["nodes"], code: 2, names: ["nodes", "ls"] },
      { args: ["nodes", "ls", "--frob"], code: 2, names: ["--frob"] },
      { args: ["update", "1", "1", "--task-timeout", "30"], code: 2, names: ['task timeout "30"', "500ms"] },
      { args: ["update", "1", "1", "--progress-deadline", "2d"], code: 2, names: ['progress deadline "2d"'] },
      { args: ["update", "1", "1", "--on-failure", "retry"], code: 2, names: ['on failure "retry"', "stop or rollback"] },
      { args: ["update", "1", "1", "--expect-revision", "x"], code: 2, names: ['expect revision "x"'] },
      { args: ["rollback", "0"], code: 2, names: ['revision "0"'] },
      { args: ["history", "--limit", "1001"], code: 2, names: ['limit "1001"'] },
      { args: ["--group", "never-updated", "rollback"], code: 5, names: ["group never-updated does not exist"] },
      { args: ["graphs", "pause", "01ARZ3NDEKTSV4RRFFQ69G5FAV"], code: 5, names: ["01ARZ3NDEKTSV4RRFFQ69G5FAV"] },
      { args: ["graphs", "resume", "nope"], code: 2, names: ['"nope"'] },
    ];
    for (const { args, code, names } of cases) {
      test(`client ${args.join(" ")} exits ${code} with one line naming ${names.join(" and ")}`, async () => {
        assertOneLineError(await server.client(args), code, ...names);
      });
    }

    test("an unreachable server makes the client exit 3 at once, naming the address", async () => {
      const started = Date.now();
      const result = await runClient(["--server", "127.0.0.1:1", "nodes", "ls"]);
      assertOneLineError(result, 3, "127.0.0.1:1", "unreachable");
      // Not a performance assertion: a client that waits for the server would hang far longer.
      assert.ok(Date.now() - started < 10_000, "the client does not wait for an unreachable server");
      assertOneLineError(await runClient(["--server", "127.0.0.1:1", "tasks", "watch"]), 3, "127.0.0.1:1");
      assertOneLineError(await runClient(["--server", "no-port", "nodes", "ls"]), 2, '"no-port"');
    });

    test("--help on every command shows an example and exits 0", async () => {
      const commands = [
        [], ["update"], ["history"], ["rollback"], ["nodes"], ["nodes", "ls"], ["nodes", "restart"], ["nodes", "stop"],
        ["nodes", "clone"], ["nodes", "kill"], ["nodes", "stats"], ["nodes", "logs"], ["group"], ["group", "show"],
        ["group", "set-template"], ["tasks", "watch"], ["graphs", "ls"], ["graphs", "show"], ["graphs", "cancel"],
        ["graphs", "pause"], ["graphs", "resume"],
      ];
      for (const args of commands) {
        const result = await runClient([...args, "--help"]);
        assert.equal(result.code, 0, args.join(" "));
        assert.match(result.stdout, /\nExample:\n {2}\$ client /, `${args.join(" ")} --help has an example`);
      }
    });

    test("a wrong token is refused with exit 4 and a line saying how to supply one; no token is needed as the same user", async () => {
      const wrong = await server.client(["groups", "ls"], { DROVER_TOKEN: "not-the-token" });
      assert.equal(wrong.code, 4);
      assert.equal(lines(wrong.stderr).length, 1, wrong.stderr);
      assert.match(wrong.stderr, /^client: wrong token: server \S+ refused the token from DROVER_TOKEN; its token is the file 'token' in its data dir: pass it with --token-file <data dir>\/token \(or set DROVER_TOKEN_FILE\)$/m);
      const noCredentials = await server.client(["groups", "ls"], { XDG_CONFIG_HOME: join(server.dataDir, "elsewhere") });
      assert.equal(noCredentials.code, 4);
      assert.match(noCredentials.stderr, /^client: missing token/);
      const fromFile = await server.client(["groups", "ls"], { XDG_CONFIG_HOME: join(server.dataDir, "elsewhere"), DROVER_TOKEN_FILE: join(server.dataDir, "token") });
      assert.equal(fromFile.code, 0, fromFile.stderr);
      const recorded = await server.client(["groups", "ls"]);
      assert.equal(recorded.code, 0, recorded.stderr);
      const plaintext = await runClient(["--server", "192.0.2.1:8888", "nodes", "ls"], { DROVER_TOKEN: "secret" });
      assert.equal(plaintext.code, 2);
      assert.match(plaintext.stderr, /^client: refusing to send the token in plaintext to 192\.0\.2\.1:8888/);
    });

    test("the server answers a bad count with INVALID_ARGUMENT, not UNKNOWN", async () => {
      const channel = createChannel(server.address);
      try {
        const token = readFileSync(join(server.dataDir, "token"), "utf8").trim();
        const client = createClient(DroverServiceDefinition, channel, { "*": { metadata: Metadata({ authorization: `Bearer ${token}` }) } });
        await assert.rejects(
          client.setSpec({ group: "direct", count: 100_001, version: 1 }),
          (error: unknown) => {
            assert.ok(error instanceof ClientError);
            assert.equal(error.code, Status.INVALID_ARGUMENT);
            assert.match(error.details, /count 100001 is invalid/);
            return true;
          },
        );
      } finally {
        channel.close();
      }
    });
  });
});

describe("the client against a slow server", () => {
  let server: TestServer;
  before(async () => {
    server = await startServer(["--mock-latency", "150ms..250ms", "--parallelism", "1", "--retry-backoff", "10ms..50ms"]);
  });
  after(async () => {
    await server?.close();
  });

  test("tasks watch attached mid-graph shows each remaining task's final event exactly once", async () => {
    const group = ["--group", "rejoin"];
    // Six nodes replaced one at a time (12 tasks, 2 to 3 s): long enough that both watches attach mid-graph on a busy machine too.
    assertSucceeded(await server.client([...group, "update", "6", "1"]));
    const detached = await server.client([...group, "update", "6", "2", "--detach"]);
    assertSucceeded(detached);
    const graphId = graphIdIn(lines(detached.stdout).at(-1)!);
    assert.match(detached.stdout, new RegExp(`graph ${graphId} started; watch it with: client --server ${server.address} --group rejoin tasks watch ${graphId}`));

    const [json, table] = await Promise.all([
      server.client([...group, "tasks", "watch", "-o", "json"]),
      server.client(["tasks", "watch", graphId]),
    ]);
    assertSucceeded(json);
    assertSucceeded(table);
    const [first, ...rest] = jsonLines(json.stdout);
    const snapshot = first!.snapshot;
    assert.equal(snapshot.id, graphId);
    assert.equal(snapshot.state, "GRAPH_STATE_RUNNING", "the watch attached while the graph ran");
    assert.ok(rest.length > 0 && rest.every((line) => line.event !== undefined));
    const events = rest.map((line) => line.event);
    assert.equal(new Set(events.map((event) => event.sequence)).size, events.length, "no event twice");
    assert.ok(events.every((event) => event.sequence > snapshot.sequence), "only events after the snapshot");

    const final = await graphJson(server, graphId);
    assert.equal(final.state, "GRAPH_STATE_SUCCEEDED");
    for (const task of final.tasks) {
      const id = task.id ?? 0;
      const before = snapshot.tasks.find((candidate: any) => (candidate.id ?? 0) === id);
      const settledBefore = FINAL_TASK_STATES.has(before.state) ? 1 : 0;
      const finalEvents = events.filter(
        (event) => event.type === "EVENT_TYPE_TASK" && (event.taskId ?? 0) === id && FINAL_TASK_STATES.has(event.taskState),
      );
      assert.equal(settledBefore + finalEvents.length, 1, `task ${id} ends exactly once, in the snapshot or the stream`);
      if (finalEvents.length === 1) assert.equal(finalEvents[0].taskState, task.state);
    }
    assert.equal(events.at(-1).graphState, "GRAPH_STATE_SUCCEEDED");

    assert.ok(table.stdout.includes("TASKS STREAM"));
    assert.match(table.stdout, new RegExp(`^graph ${graphId} succeeded in \\S+: 12 tasks, 0 retries$`, "m"));
    const stream = streamLines(table.stdout);
    for (const id of Array.from({ length: 12 }, (_, index) => String(index))) {
      assert.ok(stream.filter(([, task, word]) => task === id && word === "succeeded").length <= 1, `task ${id} succeeded at most once`);
    }
  });

  test("graphs cancel stops a running graph: exit 0, and the graph is cancelled", async () => {
    const group = ["--group", "cancel"];
    // 12 starts one at a time (2 to 3 s): still running when the cancel comes, on a busy machine too.
    const detached = await server.client([...group, "update", "12", "1", "--detach"]);
    assertSucceeded(detached);
    const graphId = graphIdIn(lines(detached.stdout).at(-1)!);
    const result = await server.client(["graphs", "cancel", graphId]);
    assertSucceeded(result);
    assert.match(result.stdout, new RegExp(`^graph ${graphId} cancelled: 13 tasks \\(.*cancelled\\)$`, "m"));
    const graph = await graphJson(server, graphId);
    assert.equal(graph.state, "GRAPH_STATE_CANCELLED");
    assert.ok(graph.tasks.some((task: any) => task.state === "TASK_STATE_CANCELLED"));
    assertOneLineError(await server.client(["graphs", "cancel", graphId]), 1, graphId, "cancelled");
  });

  test("an update that supersedes a running one makes the first exit 1 and names the graph it superseded", async () => {
    const group = ["--group", "supersede"];
    // Big enough (20 tasks one at a time) that it is still running when the second update comes, on a busy machine too.
    const first = server.client([...group, "update", "20", "1"]);
    // Wait until the first graph runs, then replace it.
    for (let tries = 0; ; tries++) {
      const graphs = await server.client([...group, "graphs", "ls", "-o", "json"]);
      // Until the update is stored, the group does not exist (exit 5).
      if (graphs.code === 0 && JSON.parse(graphs.stdout).graphs.some((graph: any) => graph.state === "GRAPH_STATE_RUNNING")) break;
      assert.ok(tries < 200, "the first graph never ran");
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    const second = await server.client([...group, "update", "2", "1"]);
    const firstResult = await first;
    assert.equal(firstResult.code, 1, firstResult.stdout + firstResult.stderr);
    const firstGraph = graphIdIn(lastLineStarting(firstResult.stdout, "graph "));
    assert.match(firstResult.stdout, new RegExp(`^graph ${firstGraph} superseded in \\S+: `, "m"));
    assert.match(firstResult.stdout, /^error: superseded/m);
    assertSucceeded(second);
    assert.match(second.stdout, new RegExp(`^superseded graph ${firstGraph}$`, "m"));
  });
});

describe("the client against a server that restarts", () => {
  let server: TestServer;
  before(async () => {
    server = await startServer(["--mock-latency", "200ms..300ms", "--parallelism", "1", "--retry-backoff", "10ms..50ms"]);
  });
  after(async () => {
    await server?.close();
  });

  test("tasks watch resumes after the server restarts and still shows each task's end once", async () => {
    const detached = await server.client(["update", "8", "1", "--detach"]);
    assertSucceeded(detached);
    const graphId = graphIdIn(lines(detached.stdout).at(-1)!);
    const watching = server.start(["tasks", "watch", graphId, "-o", "json"]);
    // Let the watch attach (its snapshot printed: a watch that fails before its snapshot is an
    // ordinary error) and a task or two finish, then restart the server under it.
    await eventually("the watch printed its snapshot", async () => (watching.stdout().includes("\n") ? true : undefined), { timeoutMs: 20_000 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    await server.restart();
    const result = await watching.exited;
    assertSucceeded(result);
    assert.match(result.stderr, /the watch stream broke/);
    const [first, ...rest] = jsonLines(result.stdout);
    const events = rest.map((line) => line.event);
    assert.equal(new Set(events.map((event) => event.sequence)).size, events.length, "no event twice");
    const final = await graphJson(server, graphId);
    assert.equal(final.state, "GRAPH_STATE_SUCCEEDED");
    for (const task of final.tasks) {
      const id = task.id ?? 0;
      const before = first!.snapshot.tasks.find((candidate: any) => (candidate.id ?? 0) === id);
      const ends =
        (FINAL_TASK_STATES.has(before.state) ? 1 : 0) +
        events.filter((event) => event.type === "EVENT_TYPE_TASK" && (event.taskId ?? 0) === id && FINAL_TASK_STATES.has(event.taskState)).length;
      assert.equal(ends, 1, `task ${id} ends exactly once`);
    }
  });
});

describe("the client against a server that cuts off watchers that fall behind", () => {
  let server: TestServer;
  before(async () => {
    // Every start takes exactly 100ms and all run at once, so their ends are published together,
    // more than the one event a watcher may fall behind.
    server = await startServer(["--mock-latency", "100ms", "--parallelism", "50", "--watcher-buffer", "1"]);
  });
  after(async () => {
    await server?.close();
  });

  test("update resumes a stream ended with RESOURCE_EXHAUSTED and shows every task's end once", async () => {
    const result = await server.client(["update", "20", "1", "-o", "json"]);
    assertSucceeded(result);
    assert.match(result.stderr, /RESOURCE_EXHAUSTED/);
    const [response, ...rest] = jsonLines(result.stdout);
    const events = rest.map((line) => line.event);
    const sequences = events.map((event) => event.sequence as number);
    assert.equal(new Set(sequences).size, sequences.length, "no event twice");
    assert.deepEqual([...sequences].sort((a, b) => a - b), sequences, "events in sequence order");
    const ends = events.filter((event) => event.type === "EVENT_TYPE_TASK" && event.taskState === "TASK_STATE_SUCCEEDED");
    assert.deepEqual(
      ends.map((event) => event.taskId ?? 0).sort((a: number, b: number) => a - b),
      response!.graph.tasks.map((task: any) => task.id ?? 0),
      "each task's success exactly once",
    );
  });
});

describe("the client against a server whose every task fails", () => {
  let server: TestServer;
  before(async () => {
    server = await startServer([...FAST_SERVER_FLAGS, "--mock-failure-rate", "1", "--max-attempts", "2"]);
  });
  after(async () => {
    await server?.close();
  });

  test("update exits 1, showing the retries, the errors, the skipped tasks and the graph's error", async () => {
    const result = await server.client(["update", "2", "1"]);
    assert.equal(result.code, 1, result.stderr);
    const stream = streamLines(result.stdout);
    assert.ok(stream.some(([, , word, , error]) => /^retrying in \d+ms$/.test(word!) && /^error: /.test(error ?? "")));
    assert.ok(stream.some(([, , word]) => word === "started (attempt 2)"));
    assert.ok(stream.some(([, task, word]) => task === "2" && word === "skipped"), "the join is skipped");
    assert.ok(stream.some(([, , word, , error]) => word === "failed" && /^error: /.test(error ?? "")));
    const graphId = graphIdIn(lastLineStarting(result.stdout, "graph "));
    // Which tasks fail and which are skipped depends on timing: a task waiting for its retry when the graph fails is skipped.
    assert.match(result.stdout, new RegExp(`^graph ${graphId} failed in \\S+: 3 tasks \\((1|2) failed, (1|2) skipped\\), (1|2) retr(y|ies)$`, "m"));
    assert.match(result.stdout, /^error: task \d \(start_node version=1\) failed after 2 attempts: /m);
    const graph = await graphJson(server, graphId);
    assert.equal(graph.state, "GRAPH_STATE_FAILED");
    assert.equal(graph.tasks[2].state, "TASK_STATE_SKIPPED");
  });
});
