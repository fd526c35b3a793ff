/**
 * End-to-end tests of the commands that act on one node (restart, stop, clone, kill, stats,
 * logs), of reserving cpu and memory, and of templates: against a server whose mock driver
 * simulates nodes, and against one whose process driver runs the chat example as real
 * processes, which these tests look at in /proc.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { after, before, describe, test } from "node:test";
import {
  assertExit,
  assertOneLineError,
  eventually,
  FAST_SERVER_FLAGS,
  json,
  lines,
  startServer,
  table,
  type TestServer,
} from "./harness.js";

const ULID = /^[0-9A-HJKMNP-TV-Z]{26}$/;

/** A table of fields (`nodes stats`, `group show`) as name → value. */
function fields(stdout: string): Map<string, string> {
  return new Map(table(stdout).map(([name, ...value]) => [name!, value.join("  ")]));
}

async function allNodes(server: TestServer, group: string): Promise<Record<string, any>[]> {
  return (await json(server, ["--group", group, "nodes", "ls", "--all"])).nodes as Record<string, any>[];
}

const live = (nodes: Record<string, any>[]) => nodes.filter((node) => node.state !== "NODE_STATE_STOPPED");

/** The ids of the group's live nodes. */
async function liveIds(server: TestServer, group: string): Promise<string[]> {
  return live(await allNodes(server, group)).map((node) => node.id as string);
}

describe("node operations against a server with the mock driver", () => {
  let server: TestServer;
  before(async () => {
    server = await startServer(FAST_SERVER_FLAGS);
  });
  after(async () => {
    await server?.kill();
    await server?.close();
  });

  describe("a group of three", () => {
    const group = ["--group", "ops"];
    before(async () => {
      assertExit(await server.client([...group, "update", "3", "1"]), 0);
    });

    test("nodes restart prints the plan, follows it, exits 0, and leaves a new node in the old one's place", async () => {
      const [old] = await liveIds(server, "ops");
      const result = await server.client([...group, "nodes", "restart", old!.toLowerCase()]);
      assertExit(result, 0);
      assert.equal(lines(result.stdout)[0], `group ops: revision 1, restarting node ${old} of 3 × v1 (max surge 0, max unavailable 1)`);
      assert.ok(result.stdout.includes("TASK GRAPH SPEC") && result.stdout.includes("TASKS STREAM"));
      assert.match(result.stdout, /^graph [0-9A-Z]{26} succeeded in \S+: 2 tasks, 0 retries$/m);
      const nodes = await allNodes(server, "ops");
      assert.equal(nodes.find((node) => node.id === old)!.state, "NODE_STATE_STOPPED");
      assert.equal(live(nodes).length, 3);
      const graphs = await server.client([...group, "graphs", "ls"]);
      assert.deepEqual(table(graphs.stdout)[1]!.slice(1, 3), ["1", "restart"], "the restart's graph is a restart under revision 1");
    });

    test("nodes stop shuts that exact node down and lowers the count by one, as a new revision", async () => {
      const [target, ...others] = await liveIds(server, "ops");
      const result = await server.client([...group, "nodes", "stop", target!]);
      assertExit(result, 0);
      assert.deepEqual(lines(result.stdout).slice(0, 2), [
        `stopping node ${target}: the count goes down by one`,
        "group ops: revision 2, 3 × v1 → 2 × v1 (max surge 0, max unavailable 1)",
      ]);
      const nodes = await allNodes(server, "ops");
      assert.equal(nodes.find((node) => node.id === target)!.state, "NODE_STATE_STOPPED");
      assert.deepEqual(live(nodes).map((node) => node.id).sort(), [...others].sort(), "only that node stopped");
      const [latest] = (await json(server, [...group, "history"])).revisions;
      assert.deepEqual([latest.revision, latest.spec.count], [2, 2]);
    });

    test("nodes clone starts one more node like it and raises the count by one", async () => {
      const [source] = await liveIds(server, "ops");
      const result = await server.client([...group, "nodes", "clone", source!]);
      assertExit(result, 0);
      assert.equal(lines(result.stdout)[1], "group ops: revision 3, 2 × v1 → 3 × v1 (max surge 0, max unavailable 1)");
      assert.equal((await liveIds(server, "ops")).length, 3);
      const [latest] = (await json(server, [...group, "history"])).revisions;
      assert.equal(latest.spec.count, 3);
    });

    test("nodes kill says the group heals itself, and a repair graph brings the count back", async () => {
      const [victim] = await liveIds(server, "ops");
      const result = await server.client([...group, "nodes", "kill", victim!]);
      assertExit(result, 0);
      assert.equal(result.stdout, `node ${victim} killed; the group heals itself (watch with: client --server ${server.address} --group ops nodes ls -w)\n`);
      await eventually("a repair graph", async () => {
        const graphs = table((await server.client([...group, "graphs", "ls"])).stdout);
        return graphs.some((row) => row[2] === "repair" && row[4] === "succeeded") ? true : undefined;
      });
      await eventually("three running nodes again", async () => {
        const nodes = live(await allNodes(server, "ops"));
        return nodes.length === 3 && nodes.every((node) => node.state === "NODE_STATE_RUNNING") && !nodes.some((node) => node.id === victim)
          ? true
          : undefined;
      });
    });

    test("nodes stats prints the node's record and says the driver simulates it; nodes logs exits 1", async () => {
      const [id] = await liveIds(server, "ops");
      const stats = await server.client(["nodes", "stats", id!]);
      assertExit(stats, 0);
      const shown = fields(stats.stdout);
      assert.deepEqual([shown.get("NODE"), shown.get("GROUP"), shown.get("VERSION"), shown.get("STATE")], [id, "ops", "1", "running"]);
      assert.equal(lines(stats.stdout).at(-1), "no process stats: the server's driver simulates this node");
      assertOneLineError(await server.client(["nodes", "logs", id!]), 1, id!, "keeps none");
      const wide = table((await server.client([...group, "nodes", "ls", "--wide"])).stdout);
      assert.deepEqual(wide[0], ["ID", "VERSION", "REVISION", "STATE", "AGE", "PID", "PORT", "CPU", "MEMORY", "UPTIME", "HEALTH"]);
      assert.ok(wide.slice(1).every((row) => row.slice(5).every((cell) => cell === "-")), "no stats: dashes");
    });
  });

  describe("bad node ids", () => {
    const unknown = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
    const cases: { args: string[]; code: number; names: string[] }[] = [
      { args: ["nodes", "restart", "nope"], code: 2, names: ['node id "nope" is invalid'] },
      { args: ["nodes", "stop", `${unknown}X`], code: 2, names: [`node id "${unknown}X"`] },
      { args: ["nodes", "stats", "01ARZ3NDEKTSV4RRFFQ69G5FAU!"], code: 2, names: ["node id"] },
      { args: ["nodes", "logs", unknown, "--tail", "-5"], code: 2, names: ['tail "-5"'] },
      { args: ["nodes", "kill"], code: 2, names: ["id"] },
      { args: ["nodes", "restart", unknown], code: 5, names: [unknown, "not found"] },
      { args: ["nodes", "stop", unknown], code: 5, names: [unknown] },
      { args: ["nodes", "clone", unknown.toLowerCase()], code: 5, names: [unknown] },
      { args: ["nodes", "kill", unknown], code: 5, names: [unknown] },
      { args: ["nodes", "stats", unknown], code: 5, names: [unknown] },
      { args: ["nodes", "logs", unknown], code: 5, names: [unknown] },
    ];
    for (const { args, code, names } of cases) {
      test(`client ${args.join(" ")} exits ${code} with one line naming ${names.join(" and ")}`, async () => {
        assertOneLineError(await server.client(args), code, ...names);
      });
    }
  });

  describe("reserving cpu and memory", () => {
    test("update --cpu --memory shows the reservation in the header and in history", async () => {
      const group = ["--group", "reserve"];
      const result = await server.client([...group, "update", "1", "1", "--cpu", "0.01", "--memory", "16Mi"]);
      assertExit(result, 0);
      assert.equal(lines(result.stdout)[0], "group reserve: creating the group, revision 1, 0 nodes → 1 × v1 (max surge 0, max unavailable 1, cpu 10m, memory 16Mi)");
      const history = table((await server.client([...group, "history", "--wide"])).stdout);
      assert.equal(history[1]![3], "surge 0, unavailable 1, on failure stop, cpu 10m, memory 16Mi");
    });

    test("update 3 1 --cpu 64 --memory 1Ti, far beyond the host, exits 1 with one line naming what is short", async () => {
      const result = await server.client(["--group", "huge", "update", "3", "1", "--cpu", "64", "--memory", "1Ti"]);
      assertOneLineError(result, 1, "does not fit on this host", "cpu: 3 nodes × 64 cores = 192 cores", "memory: 3 nodes × 1.0 TiB = 3.0 TiB");
      // No revision was stored: the group was never made.
      assertOneLineError(await server.client(["--group", "huge", "history"]), 5, "group huge does not exist");
    });

    test("a malformed --cpu or --memory exits 2 naming it", async () => {
      assertOneLineError(await server.client(["update", "1", "1", "--cpu", "1.5m"]), 2, 'cpu "1.5m"', "500m");
      assertOneLineError(await server.client(["update", "1", "1", "--memory", "1G"]), 2, 'memory "1G"', "256Mi");
    });
  });
});

// ---------------------------------------------------------------- real processes

/**
 * `size` consecutive ports nothing listens on, from 21000..31999: above the server's default
 * range and below Linux's ephemeral ports, where an outgoing connection could take one.
 */
async function freePortWindow(size: number): Promise<{ first: number; last: number }> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const first = 21_000 + Math.floor(Math.random() * (11_000 - size));
    const held: Server[] = [];
    let free = true;
    for (let port = first; port < first + size && free; port++) {
      const probe = createServer();
      free = await new Promise<boolean>((resolve) => {
        probe.once("error", () => resolve(false));
        probe.listen(port, "127.0.0.1", () => resolve(true));
      });
      if (free) held.push(probe);
    }
    await Promise.all(held.map((probe) => new Promise((resolve) => probe.close(resolve))));
    if (free) return { first, last: first + size - 1 };
  }
  throw new Error(`found no ${size} consecutive free ports in 21000..31999`);
}

/** The pids of the live processes whose environment names a peers file under `dataDir`: the server's nodes. */
function nodeProcesses(dataDir: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/environ`, "utf8").includes(`\0DROVER_PEERS_FILE=${dataDir}/`)) pids.push(Number(entry));
    } catch {
      // Gone, or not ours to read.
    }
  }
  return pids;
}

const processExists = (pid: number) => {
  try {
    return !readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.startsWith("Z");
  } catch {
    return false;
  }
};

describe("nodes as real processes (--driver process)", () => {
  let server: TestServer;
  let ports: { first: number; last: number };
  const groups = new Set(["default"]);
  before(async () => {
    ports = await freePortWindow(10);
    // A short min-ready of the server's own (the process driver's default is 10s), which every spec then shows.
    server = await startServer([...FAST_SERVER_FLAGS, "--driver", "process", "--port-range", `${ports.first}..${ports.last}`, "--min-ready", "200ms"]);
  });
  after(async () => {
    if (!server) return;
    for (const group of groups) await server.client(["--group", group, "update", "0", "1"]);
    await server.kill();
    for (const pid of nodeProcesses(server.dataDir)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // It ended on its own meanwhile.
      }
    }
    await server.close();
  });

  test("group show shows the server's default template before any is set", async () => {
    const result = await server.client(["group", "show"]);
    assertExit(result, 0);
    const shown = fields(result.stdout);
    assert.equal(shown.get("TEMPLATE"), "the server's default (the group has none of its own)");
    assert.match(shown.get("COMMAND")!, /\S*node\S* \S+\/examples\/chat\/chat\.mjs$/);
    assert.equal(shown.get("HEALTH CHECK"), "http GET /healthz every 1s, timeout 1s, unhealthy after 3 failures, start timeout 10s");
    assert.equal(shown.get("SPEC"), `none yet: set one with 'client --server ${server.address} update <count> <version>'`);
    const document = await json(server, ["group", "show"]);
    assert.equal(document.isDefault, true);
    assert.equal(document.template.healthCheck.type, "HEALTH_CHECK_TYPE_HTTP");
  });

  test("update 2 1 starts two chat processes, and nodes ls --wide shows their pids and ports", async () => {
    assertExit(await server.client(["update", "2", "1"]), 0);
    const rows = table((await server.client(["nodes", "ls", "--wide"])).stdout);
    assert.deepEqual(rows[0], ["ID", "VERSION", "REVISION", "STATE", "AGE", "PID", "PORT", "CPU", "MEMORY", "UPTIME", "HEALTH"]);
    assert.equal(rows.length, 3);
    for (const [id, , , state, , pid, port, cpu, memory] of rows.slice(1)) {
      assert.match(id!, ULID);
      assert.equal(state, "running");
      assert.ok(processExists(Number(pid)), `process ${pid} exists`);
      assert.ok(Number(port) >= ports.first && Number(port) <= ports.last, `port ${port} is in the server's range`);
      assert.match(cpu!, /^\d+\.\d%$/);
      assert.match(memory!, /^\d+\.\d (KiB|MiB|GiB)$/);
    }
  });

  test("nodes stats shows the node's live process, healthy, and group show the spec", async () => {
    const [id] = await liveIds(server, "default");
    const result = await server.client(["nodes", "stats", id!]);
    assertExit(result, 0);
    const shown = fields(result.stdout);
    assert.ok(processExists(Number(shown.get("PID"))), `process ${shown.get("PID")} exists`);
    assert.equal(shown.get("HEALTH"), "healthy (ok)");
    assert.match(shown.get("MEMORY")!, / resident$/);
    assert.match(shown.get("LAST CHECK")!, /^\d+s ago$/);
    assert.equal(shown.get("RESTARTS"), "0");
    assert.equal(shown.get("STATE"), "running");
    assert.equal(fields((await server.client(["group", "show"])).stdout).get("SPEC"), "revision 1: 2 × v1 (surge 0, unavailable 1, min ready 200ms, on failure stop)");
  });

  test("nodes logs prints what the chat node wrote, its start first", async () => {
    const [id] = await liveIds(server, "default");
    const result = await server.client(["nodes", "logs", id!]);
    assertExit(result, 0);
    assert.match(lines(result.stdout)[0]!, new RegExp(`^\\[${id}\\] started: version 1, group default, listening on http://127\\.0\\.0\\.1:\\d+`));
  });

  test("nodes logs -f keeps following until Ctrl-C, which ends it quietly with exit 0", async () => {
    const [id] = await liveIds(server, "default");
    const following = server.start(["nodes", "logs", id!, "-f"]);
    await eventually("the log's first line", async () => (following.stdout().includes("started:") ? true : undefined));
    following.child.kill("SIGINT");
    const result = await following.exited;
    assertExit(result, 0);
    assert.equal(result.stderr, "");
  });

  test("nodes logs -f ends with exit 0 once nodes stop has stopped the node, with its last words", async () => {
    const [id, other] = await liveIds(server, "default");
    const following = server.start(["nodes", "logs", id!, "-f"]);
    await eventually("the log's first line", async () => (following.stdout().includes("started:") ? true : undefined));
    const stop = await server.client(["nodes", "stop", id!]);
    assertExit(stop, 0);
    const result = await following.exited;
    assertExit(result, 0);
    assert.match(result.stdout, /received SIGTERM, shutting down/);
    assert.deepEqual(await liveIds(server, "default"), [other]);
  });

  test("nodes logs --tail counts lines, --timestamps puts before each line when the server received it, --since keeps what came within a duration", async () => {
    groups.add("logs");
    const group = ["--group", "logs"];
    // Five lines at once, then one that arrives in two pieces, then nothing more.
    const script = [
      `for (let i = 1; i <= 5; i++) console.log("line " + i);`,
      `setTimeout(() => process.stdout.write("piece"), 300);`,
      `setTimeout(() => process.stdout.write("s joined\\n"), 600);`,
      `setInterval(() => {}, 1000);`,
    ].join(" ");
    assertExit(await server.client([...group, "update", "1", "1", "--command", process.execPath, "--arg", "-e", "--arg", script, "--health", "none"]), 0);
    const [id] = await liveIds(server, "logs");
    const whole = await eventually("the node's last line", async () => {
      const result = await server.client([...group, "nodes", "logs", id!]);
      return result.stdout.includes("pieces joined\n") ? result.stdout : undefined;
    });
    assert.equal(whole, "line 1\nline 2\nline 3\nline 4\nline 5\npieces joined\n");

    const tail = await server.client([...group, "nodes", "logs", id!, "--tail", "2"]);
    assertExit(tail, 0);
    assert.equal(tail.stdout, "line 5\npieces joined\n", "two lines, not two bytes");
    assert.equal((await server.client([...group, "nodes", "logs", id!, "--tail", "0"])).stdout, "");
    assert.equal((await server.client([...group, "nodes", "logs", id!, "--tail", "-1"])).stdout, whole);

    const stamped = await server.client([...group, "nodes", "logs", id!, "--timestamps", "--tail", "3"]);
    assertExit(stamped, 0);
    const stampedLines = lines(stamped.stdout);
    assert.deepEqual(stampedLines.map((line) => line.replace(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z /, "")), ["line 4", "line 5", "pieces joined"]);
    const times = stampedLines.map((line) => Date.parse(line.slice(0, 24)));
    assert.ok(times.every((time, index) => index === 0 || time >= times[index - 1]!), `times in order: ${stampedLines.join(" | ")}`);

    assert.equal((await server.client([...group, "nodes", "logs", id!, "--since", "1h"])).stdout, whole, "everything came within the hour");
    assert.equal((await server.client([...group, "nodes", "logs", id!, "--since", "1h", "--tail", "1"])).stdout, "pieces joined\n");
    assertOneLineError(await server.client([...group, "nodes", "logs", id!, "--since", "10"]), 2, 'since "10"', "a number needs a unit");
  });

  test("group set-template refuses a bad health path, locally with exit 2", async () => {
    const result = await server.client(["--group", "badpath", "group", "set-template", "--command", "node", "--health-path", "healthz"]);
    assertOneLineError(result, 2, 'health path "healthz"', "starting with '/'");
    assert.equal((await json(server, ["--group", "badpath", "group", "show"])).isDefault, true, "nothing was set");
  });

  test("an update to a broken template under --on-failure rollback fails, and the client follows the rollback that restores the good one", async () => {
    groups.add("broken");
    const group = ["--group", "broken"];
    assertExit(await server.client([...group, "update", "2", "1"]), 0);
    const result = await server.client([...group, "update", "2", "2", "--on-failure", "rollback", "--command", "/nonexistent", "--stop-grace", "1s"]);
    assertExit(result, 1);
    assert.match(lines(result.stdout)[1]!, /^template [0-9a-f]{8}: \/nonexistent$/);
    assert.match(result.stdout, /^error: .*command "\/nonexistent" of group broken's template was not found/m);
    assert.match(lines(result.stdout).at(-1)!, /^update failed; rolled back to revision 1 \(graph [0-9A-Z]{26}\)$/);
    const nodes = live(await allNodes(server, "broken"));
    assert.deepEqual(nodes.map((node) => [node.version, node.state]), [[1, "NODE_STATE_RUNNING"], [1, "NODE_STATE_RUNNING"]]);
    const wide = table((await server.client([...group, "nodes", "ls", "--wide"])).stdout).slice(1);
    assert.ok(wide.every((row) => processExists(Number(row[5]))), `each node runs the restored template: ${JSON.stringify(wide)}`);
    const [newest] = (await json(server, [...group, "history"])).revisions;
    assert.deepEqual([newest.reason, newest.restores], ["REVISION_REASON_AUTO_ROLLBACK", 1]);
  });

  test("a template whose command does not exist is stored, and update then exits 1 saying it was not found", async () => {
    groups.add("missing");
    const group = ["--group", "missing"];
    const set = await server.client([...group, "group", "set-template", "--command", "/nonexistent", "--arg", "{port}", "--stop-grace", "1s"]);
    assertExit(set, 0);
    assert.equal(fields(lines(set.stdout).slice(3).join("\n")).get("COMMAND"), "/nonexistent {port}");
    const shown = fields((await server.client([...group, "group", "show"])).stdout);
    assert.deepEqual([shown.get("TEMPLATE"), shown.get("STOP GRACE")], ["the group's own", "1s, then SIGKILL"]);
    const result = await server.client([...group, "update", "3", "1"]);
    assertExit(result, 1);
    assert.match(result.stdout, /^error: .*command "\/nonexistent" of group missing's template was not found/m);
  });
});
