import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { DroverServiceDefinition, type DroverServiceClient, GraphState, HealthCheckType, NodeState } from "@drover/shared";
import { createChannel, createClient, Status } from "nice-grpc";
import { DATABASE_FILE, openSqliteStore } from "../src/store/SqliteStore.js";
import { type Exited, freePort, freePortWindow, startServer, waitUntilServing } from "./processes.js";
import { eventually, expectStatus, MIGRATIONS_DIR, temporaryDataDir } from "./support.js";

/**
 * Faults found at start that must not cost a workload: a lost or emptied database, a second
 * server, a database that is read-only, corrupt or not Drover's, files others own or can
 * write, and booleans from the environment. Each test runs the real server program on a
 * temporary data dir and reads its exit code and its one line on stderr.
 */

const NOBODY = 65534;
const SERVER_BIN = fileURLToPath(new URL("../../../bin/server", import.meta.url));
const mode = (path: string) => statSync(path).mode & 0o777;

/** The one line a refused server wrote on stderr, after checking that it exited with `code` and wrote one line only. */
function refusal(exited: Exited, code = 1): string {
  assert.equal(exited.code, code, `exit code (stderr: ${exited.stderr})`);
  const lines = exited.stderr.trim().split("\n");
  assert.equal(lines.length, 1, `one line on stderr: ${exited.stderr}`);
  return lines[0]!;
}

/** Starts the server on `dir` and waits for its exit: for starts that are refused. */
async function refusedStart(dir: string, flags: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<Exited> {
  const { child, exited } = startServer(["--data-dir", dir, "--listen", `127.0.0.1:${await freePort()}`, ...flags], env);
  const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
  const result = await exited;
  clearTimeout(timer);
  return result;
}

/** The JSON log lines a server wrote on stdout (its logs are JSON when stdout is not a terminal). */
function logLines(stdout: string): { level: number; msg: string; [field: string]: unknown }[] {
  return stdout
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as { level: number; msg: string });
}

/** A server the test starts, stops and starts again on one data dir. */
interface RunningServer {
  client: DroverServiceClient;
  /** SIGTERM, as an operator stops it (node processes outlive it); resolves with what it wrote. */
  stop(): Promise<Exited>;
}

async function serve(dir: string, flags: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<RunningServer> {
  const port = await freePort();
  const { child, exited } = startServer(["--data-dir", dir, "--listen", `127.0.0.1:${port}`, ...flags], env);
  const early = exited.then((result) => {
    throw new Error(`the server exited before serving (code ${result.code}): ${result.stderr}`);
  });
  early.catch(() => {});
  const client = await Promise.race([waitUntilServing(port, dir), early]);
  return {
    client,
    stop: async () => {
      child.kill("SIGTERM");
      const result = await exited;
      assert.equal(result.code, 0, `the server stops cleanly: ${result.stderr}`);
      return result;
    },
  };
}

// ---------------------------------------------------------------- node processes

/** The live node processes whose peers file is under `dataDir`, by node id. */
function nodeProcessesUnder(dataDir: string): Map<string, number> {
  const found = new Map<string, number>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let environ: string;
    let stat: string;
    try {
      environ = readFileSync(`/proc/${entry}/environ`, "utf8");
      stat = readFileSync(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue;
    }
    if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")) continue;
    const env = new Map(environ.split("\0").map((pair) => [pair.slice(0, pair.indexOf("=")), pair.slice(pair.indexOf("=") + 1)] as const));
    const nodeId = env.get("DROVER_NODE_ID");
    if (nodeId !== undefined && (env.get("DROVER_PEERS_FILE") ?? "").startsWith(join(dataDir, "/"))) found.set(nodeId, Number(entry));
  }
  return found;
}

/** Kills every node process under the data dir when the test ends: they outlive their servers by design. */
function killNodesAfter(t: { after: (fn: () => void) => void }, dataDir: string): void {
  t.after(() => {
    for (const pid of nodeProcessesUnder(dataDir).values()) {
      try {
        process.kill(-pid, "SIGKILL");
      } catch {
        // Gone already.
      }
    }
  });
}

const SLEEPER = {
  command: "sleep",
  args: ["600"],
  env: {},
  healthCheck: { type: HealthCheckType.HEALTH_CHECK_TYPE_NONE, path: "", intervalMs: 200, timeoutMs: 200, failureThreshold: 3, startTimeoutMs: 5000 },
  stopGraceMs: 1000,
};

/** Flags of a process-driver server whose nodes count as available at once. */
async function processFlags(): Promise<string[]> {
  const ports = await freePortWindow(10);
  return ["--driver", "process", "--port-range", `${ports.first}..${ports.last}`, "--min-ready", "0"];
}

/** Brings the group to `count` sleeping node processes and waits until its graph succeeds. */
async function scale(client: DroverServiceClient, group: string, count: number): Promise<void> {
  const { graph } = await client.setSpec({ group, count, version: 1, template: SLEEPER });
  for await (const _ of client.watchGraph({ graphId: graph!.id })) {
    // Drained: the stream ends when the graph settles.
  }
  assert.equal(GraphState[(await client.getGraph({ graphId: graph!.id })).graph!.state], GraphState[GraphState.GRAPH_STATE_SUCCEEDED]);
}

// ---------------------------------------------------------------- the tests

describe("faults found at start", { timeout: 120_000 }, () => {
  describe("a lost or emptied database (item 3)", () => {
    it("refuses to start on an emptied or missing database when the data dir shows earlier use, and the nodes keep running", async (t) => {
      const dir = temporaryDataDir(t);
      killNodesAfter(t, dir);
      const flags = await processFlags();
      const first = await serve(dir, flags);
      await scale(first.client, "web", 3);
      await first.stop();
      const pids = [...nodeProcessesUnder(dir).values()];
      assert.equal(pids.length, 3, "the nodes outlive a clean stop");

      truncateSync(join(dir, DATABASE_FILE), 0);
      const emptied = refusal(await refusedStart(dir, flags));
      assert.equal(
        emptied,
        `server: database ${join(dir, DATABASE_FILE)} is empty (0 bytes) but data dir ${dir} was used before (it holds a token file, 3 node records in nodes/, 1 group dir in groups/): ` +
          "restore drover.db from a backup (and remove drover.db-wal and drover.db-shm beside it); to start with a new, empty database instead " +
          "(the nodes the old one ran are then unknown to it, and left running), pass --force-new-database",
      );
      rmSync(join(dir, DATABASE_FILE));
      assert.match(refusal(await refusedStart(dir, flags)), /^server: database \S+drover\.db is missing but data dir \S+ was used before \(it holds a token file, 3 node records in nodes\/, 1 group dir in groups\/\)/);
      assert.ok(!existsSync(join(dir, DATABASE_FILE)), "no database was made");

      // A new SQLite file put in its place is as empty.
      new Database(join(dir, DATABASE_FILE)).pragma("journal_mode = WAL");
      assert.match(refusal(await refusedStart(dir, flags)), /drover\.db is empty \(it holds no tables\) but data dir/);
      assert.deepEqual([...nodeProcessesUnder(dir).values()].sort(), pids.sort(), "every node process still runs");
    });

    it("with --force-new-database starts afresh and leaves the old nodes running, even with --stop-unknown-processes; a later start with the flag stops them", async (t) => {
      const dir = temporaryDataDir(t);
      killNodesAfter(t, dir);
      const flags = await processFlags();
      const first = await serve(dir, flags);
      await scale(first.client, "web", 2);
      await first.stop();
      const pids = new Map(nodeProcessesUnder(dir));
      assert.equal(pids.size, 2);
      truncateSync(join(dir, DATABASE_FILE), 0);

      const fresh = await serve(dir, [...flags, "--force-new-database", "--stop-unknown-processes"]);
      // The new database knows no node: not even the group.
      await expectStatus(fresh.client.listNodes({ group: "web" }), Status.NOT_FOUND, /group web does not exist/);
      const freshLog = logLines((await fresh.stop()).stdout);
      assert.ok(freshLog.some((line) => /made a new, empty database in a data dir used before/.test(line.msg)));
      assert.ok(freshLog.some((line) => /not stopping unknown node processes on the database's first start/.test(line.msg)));
      const left = freshLog.find((line) => /left running node processes the database does not know/.test(line.msg));
      assert.ok(left, "the unknown processes are logged");
      assert.equal(left.level, 40, "at warn");
      assert.deepEqual(
        (left.processes as { node: string; pid: number }[]).map(({ node, pid }) => [node, pid]).sort(),
        [...pids].sort(),
        "with their node ids and pids",
      );
      assert.deepEqual(new Map(nodeProcessesUnder(dir)), pids, "both still run");

      // Without the flag, a later start leaves them too.
      const again = await serve(dir, flags);
      await again.stop();
      assert.deepEqual(new Map(nodeProcessesUnder(dir)), pids);

      // With it, on a database that is not new, they are stopped.
      const sweeping = await serve(dir, [...flags, "--stop-unknown-processes"]);
      await eventually(async () => (nodeProcessesUnder(dir).size === 0 ? true : undefined), "the unknown processes are stopped");
      const sweptLog = logLines((await sweeping.stop()).stdout);
      assert.ok(sweptLog.some((line) => line.msg === "stopped node processes that had no live node"));
    });

    it("refuses to make a new database beside the WAL of a lost one, even with --force-new-database", async (t) => {
      const dir = temporaryDataDir(t);
      const port = await freePort();
      const crashed = startServer(["--data-dir", dir, "--listen", `127.0.0.1:${port}`]);
      const client = await waitUntilServing(port, dir);
      await client.setSpec({ group: "web", count: 2, version: 1 });
      crashed.child.kill("SIGKILL");
      await crashed.exited;
      const database = join(dir, DATABASE_FILE);
      assert.ok(statSync(`${database}-wal`).size > 0, "a SIGKILLed server leaves its WAL");
      truncateSync(database, 0);
      assert.match(refusal(await refusedStart(dir)), /was used before \(it holds a token file, drover\.db-wal, drover\.db-shm\)/);
      assert.equal(
        refusal(await refusedStart(dir, ["--force-new-database"])),
        `server: database ${database} is blank but ${database}-wal beside it holds changes of the lost database, which a new one would replay: ` +
          `restore drover.db from a backup (and remove drover.db-wal and drover.db-shm beside it), or move ${database}-wal and ${database}-shm away to start with a new database`,
      );
      for (const suffix of ["-wal", "-shm"]) renameSync(`${database}${suffix}`, join(dir, `moved${suffix}`));
      const fresh = await serve(dir, ["--force-new-database"]);
      // A new database: the group does not exist.
      await expectStatus(fresh.client.listRevisions({ group: "web" }), Status.NOT_FOUND, /group web does not exist/);
      await fresh.stop();
    });

    it("stops at start a process whose node the database knows as stopped, and one it does not know only with --stop-unknown-processes", async (t) => {
      const dir = temporaryDataDir(t);
      killNodesAfter(t, dir);
      const flags = await processFlags();
      const server = await serve(dir, flags);
      await scale(server.client, "web", 2);
      await scale(server.client, "web", 1);
      const nodes = (await server.client.listNodes({ group: "web", all: true })).nodes;
      const stopped = nodes.find((node) => node.state === NodeState.NODE_STATE_STOPPED)!;
      const live = nodes.find((node) => node.state === NodeState.NODE_STATE_RUNNING)!;
      await server.stop();

      // What a crash between committing a stop and stopping the process leaves, and a process
      // of a node this database never had (say, started after the backup it was restored from).
      const record = JSON.parse(readFileSync(join(dir, "nodes", `${live.id}.json`), "utf8")) as Record<string, unknown>;
      const leftBehind = (id: string) => {
        const child = spawn("sleep", ["600"], {
          detached: true,
          stdio: "ignore",
          env: { PATH: process.env.PATH, DROVER_NODE_ID: id, DROVER_PEERS_FILE: join(dir, "groups", "web", "peers.json") },
        });
        child.unref();
        const stat = readFileSync(`/proc/${child.pid}/stat`, "utf8");
        const startTime = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]);
        writeFileSync(join(dir, "nodes", `${id}.json`), JSON.stringify({ ...record, id, pid: child.pid, startTime, port: (record.port as number) + 5 }));
        return child.pid!;
      };
      leftBehind(stopped.id);
      const unknownId = "01JZZZZZZZZZZZZZZZZZZZZZZZ";
      const unknownPid = leftBehind(unknownId);

      const restarted = await serve(dir, flags);
      await eventually(async () => (nodeProcessesUnder(dir).has(stopped.id) ? undefined : true), "the stopped node's process is stopped");
      const log = logLines((await restarted.stop()).stdout);
      assert.ok(nodeProcessesUnder(dir).has(live.id), "the live node keeps its process");
      assert.equal(nodeProcessesUnder(dir).get(unknownId), unknownPid, "the unknown process is left running");
      const left = log.find((line) => /left running node processes the database does not know/.test(line.msg));
      assert.deepEqual(left?.processes, [{ node: unknownId, group: "web", pid: unknownPid }]);

      const sweeping = await serve(dir, [...flags, "--stop-unknown-processes"]);
      await eventually(async () => (nodeProcessesUnder(dir).has(unknownId) ? undefined : true), "the unknown process is stopped");
      await sweeping.stop();
      assert.ok(nodeProcessesUnder(dir).has(live.id), "the live node still keeps its process");
    });
  });

  describe("two servers on one data dir (item 4)", () => {
    it("refuses a second server on the same data dir, naming the first one's pid", async (t) => {
      const dir = temporaryDataDir(t);
      const port = await freePort();
      const first = startServer(["--data-dir", dir, "--listen", `127.0.0.1:${port}`]);
      t.after(() => first.child.kill("SIGKILL"));
      await waitUntilServing(port, dir);
      const line = refusal(await refusedStart(dir));
      assert.equal(line, `server: data dir ${dir} is in use by pid ${first.child.pid}: stop that server first, or give this one another --data-dir`);
      assert.equal(readFileSync(join(dir, "drover.pid"), "utf8").trim(), String(first.child.pid));
    });

    it("takes over the data dir of a server that was SIGKILLed", async (t) => {
      const dir = temporaryDataDir(t);
      const port = await freePort();
      const first = startServer(["--data-dir", dir, "--listen", `127.0.0.1:${port}`]);
      await waitUntilServing(port, dir);
      first.child.kill("SIGKILL");
      await first.exited;
      const second = await serve(dir);
      await second.stop();
      assert.ok(!existsSync(join(dir, "drover.pid")), "a clean stop removes the pid file");
    });

    it("lets exactly one of two servers started at once on a fresh data dir run", async (t) => {
      for (let round = 0; round < 3; round++) {
        const dir = temporaryDataDir(t);
        const ports = [await freePort(), await freePort()];
        const servers = ports.map((port) => startServer(["--data-dir", dir, "--listen", `127.0.0.1:${port}`]));
        t.after(() => servers.forEach((server) => server.child.kill("SIGKILL")));
        const loser = await Promise.race(servers.map((server, index) => server.exited.then((exited) => ({ index, exited }))));
        const winner = servers[1 - loser.index]!;
        assert.match(refusal(loser.exited), new RegExp(`^server: data dir ${dir} is in use by pid ${winner.child.pid}:`));
        await waitUntilServing(ports[1 - loser.index]!, dir);
        winner.child.kill("SIGKILL");
        await winner.exited;
      }
    });
  });

  describe("a database that cannot be written (item 7)", () => {
    it("refuses a database its user cannot write, saying how to fix it", async (t) => {
      const dir = temporaryDataDir(t);
      await openSqliteStore(dir, MIGRATIONS_DIR).close();
      const database = join(dir, DATABASE_FILE);
      execFileSync("chown", ["-R", `${NOBODY}:${NOBODY}`, dir]);
      chmodSync(database, 0o400);
      // Run as that user: root may write any file.
      const child = spawn(SERVER_BIN, ["--data-dir", dir, "--listen", `127.0.0.1:${await freePort()}`], {
        uid: NOBODY,
        gid: NOBODY,
        stdio: ["ignore", "pipe", "pipe"],
        env: { PATH: process.env.PATH, HOME: "/nonexistent", XDG_CONFIG_HOME: dir },
      });
      let stderr = "";
      child.stderr.on("data", (chunk) => (stderr += chunk));
      child.stdout.resume();
      const code = await new Promise<number | null>((resolve) => child.on("exit", (exitCode) => resolve(exitCode)));
      assert.equal(
        refusal({ code, signal: null, stdout: "", stderr }),
        `server: database ${database} is read-only for this server's user (uid ${NOBODY}): make it writable (chmod 600 ${database}), or run the server as the file's owner`,
      );
    });

    it("refuses a data dir on a read-only file system", async (t) => {
      const mountPoint = mkdtempSync(join(tmpdir(), "drover-ro-"));
      try {
        execFileSync("mount", ["-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", mountPoint], { stdio: "ignore" });
      } catch {
        rmSync(mountPoint, { recursive: true, force: true });
        t.skip("cannot mount a tmpfs here (it needs root and CAP_SYS_ADMIN)");
        return;
      }
      t.after(() => {
        execFileSync("umount", ["-l", mountPoint]);
        rmSync(mountPoint, { recursive: true, force: true });
      });
      const dir = join(mountPoint, "data");
      await (await serve(dir)).stop();
      execFileSync("mount", ["-o", "remount,ro", mountPoint]);
      assert.equal(
        refusal(await refusedStart(dir)),
        `server: data dir ${dir} is on a read-only file system: remount it read-write, or choose another --data-dir`,
      );
    });
  });

  describe("a database that is corrupt or not Drover's (item 8)", () => {
    /** A Drover database with a table of filler rows at its end, one page of which is overwritten. */
    function corruptDatabase(dir: string): string {
      const path = join(dir, DATABASE_FILE);
      const db = new Database(path);
      db.exec("CREATE TABLE filler (id INTEGER PRIMARY KEY, payload TEXT)");
      const insert = db.prepare("INSERT INTO filler (payload) VALUES (?)");
      for (let i = 0; i < 500; i++) insert.run("x".repeat(200));
      db.pragma("wal_checkpoint(TRUNCATE)");
      db.close();
      const pageSize = 4096;
      const pages = statSync(path).size / pageSize;
      const bytes = readFileSync(path);
      bytes.fill(0xa5, (pages - 2) * pageSize, (pages - 1) * pageSize);
      writeFileSync(path, bytes);
      return path;
    }

    it("refuses a database that fails its integrity check, naming the file and advising a restore; --skip-integrity-check starts it", async (t) => {
      const dir = temporaryDataDir(t);
      await (await serve(dir)).stop();
      const path = corruptDatabase(dir);
      const line = refusal(await refusedStart(dir));
      assert.match(line, new RegExp(`^server: database ${path} is corrupt \\(.+\\): restore drover\\.db from a backup \\(and remove drover\\.db-wal and drover\\.db-shm beside it\\); do not start afresh`));
      assert.doesNotMatch(line, /move it away/);
      // The damage is in a table the server does not read: skipping the check, it starts.
      const skipped = await serve(dir, ["--skip-integrity-check"]);
      const log = logLines((await skipped.stop()).stdout);
      assert.ok(log.some((entry) => entry.level === 40 && /skipping the database's integrity check/.test(entry.msg)));
    });

    it("refuses a SQLite file that is not Drover's, and leaves it exactly as it was", async (t) => {
      const cases = [
        { setup: "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users VALUES (1, 'ada');", says: /is not Drover's: it has tables \(users\) but no schema_migrations ledger; point --data-dir at Drover's data dir/ },
        {
          setup: `CREATE TABLE users (id INTEGER PRIMARY KEY);
            CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL);
            INSERT INTO schema_migrations VALUES (1, 'create_users', 0);`,
          says: /is not Drover's: its schema_migrations ledger records 1_create_users where Drover's migration 1 is 1_initial/,
        },
        {
          setup: "CREATE TABLE schema_migrations (id INTEGER PRIMARY KEY, migrated_on TEXT);",
          says: /is not Drover's: its schema_migrations table has the columns id, migrated_on, not Drover's version, name and applied_at/,
        },
      ];
      for (const { setup, says } of cases) {
        const dir = temporaryDataDir(t);
        const path = join(dir, DATABASE_FILE);
        const db = new Database(path);
        db.exec(setup);
        db.close();
        const before = readFileSync(path);
        assert.match(refusal(await refusedStart(dir)), says);
        assert.ok(readFileSync(path).equals(before), "the file is unchanged");
        assert.ok(!existsSync(join(dir, "token")), "nothing was made beside it");
      }
    });

    it("refuses a file that is not a SQLite database without advising to start afresh", async (t) => {
      const dir = temporaryDataDir(t);
      writeFileSync(join(dir, DATABASE_FILE), "not a database ".repeat(400));
      const line = refusal(await refusedStart(dir));
      assert.match(line, /^server: database \S+drover\.db is not a SQLite database \(file is not a database\): restore drover\.db from a backup/);
      assert.doesNotMatch(line, /afresh|move it away/);
    });
  });

  describe("least privilege on disk (item 11)", () => {
    it("makes the data dir 0700 and its database, WAL, token, lock and node records 0600", async (t) => {
      const dir = join(temporaryDataDir(t), "new");
      killNodesAfter(t, dir);
      const server = await serve(dir, await processFlags());
      await scale(server.client, "web", 1);
      assert.equal(mode(dir), 0o700);
      const files = [DATABASE_FILE, `${DATABASE_FILE}-wal`, `${DATABASE_FILE}-shm`, "token", "drover.lock", "drover.pid"];
      const records = readdirSync(join(dir, "nodes")).filter((name) => name.endsWith(".json"));
      assert.equal(records.length, 1);
      for (const file of [...files, ...records.map((record) => join("nodes", record))]) {
        assert.equal(mode(join(dir, file)).toString(8), "600", `${file} is private`);
      }
      await server.stop();
    });

    it("tightens a data dir and files that others can read, and logs each", async (t) => {
      const dir = temporaryDataDir(t);
      await (await serve(dir)).stop();
      chmodSync(dir, 0o755);
      chmodSync(join(dir, "token"), 0o644);
      chmodSync(join(dir, DATABASE_FILE), 0o640);
      const log = logLines((await (await serve(dir)).stop()).stdout);
      assert.equal(mode(dir), 0o700);
      assert.equal(mode(join(dir, "token")), 0o600);
      assert.equal(mode(join(dir, DATABASE_FILE)), 0o600);
      const tightened = log.filter((line) => /tightened/.test(line.msg)).map((line) => [line.file, line.from, line.to]);
      assert.deepEqual(tightened, [
        [dir, "0755", "0700"],
        [join(dir, "token"), "0644", "0600"],
        [join(dir, DATABASE_FILE), "0640", "0600"],
      ]);
    });

    it("refuses a data dir, token or database that another user owns or that others can write", async (t) => {
      const cases: { what: string; spoil: (dir: string) => void; says: (dir: string) => string }[] = [
        {
          what: "a token planted by another user",
          spoil: (dir) => chownSync(join(dir, "token"), NOBODY, NOBODY),
          says: (dir) =>
            `token file ${join(dir, "token")} is owned by uid ${NOBODY}, not by this server's user (uid 0): someone may have planted it: remove it (a new token is made at start), or run chown 0 ${join(dir, "token")} if it is yours`,
        },
        {
          what: "a token others can write",
          spoil: (dir) => chmodSync(join(dir, "token"), 0o606),
          says: (dir) => `token file ${join(dir, "token")} is writable by others (mode 0606): someone may have planted it: remove it (a new token is made at start), or run chmod 600 ${join(dir, "token")} if it is yours`,
        },
        {
          what: "a database another user owns",
          spoil: (dir) => chownSync(join(dir, DATABASE_FILE), NOBODY, NOBODY),
          says: (dir) => `database ${join(dir, DATABASE_FILE)} is owned by uid ${NOBODY}, not by this server's user (uid 0): run chown 0 ${join(dir, DATABASE_FILE)}, or run the server as the file's owner`,
        },
        {
          what: "a database its group can write",
          spoil: (dir) => chmodSync(join(dir, DATABASE_FILE), 0o660),
          says: (dir) => `database ${join(dir, DATABASE_FILE)} is writable by group (mode 0660): run chmod 600 ${join(dir, DATABASE_FILE)}`,
        },
        {
          what: "a data dir another user owns",
          spoil: (dir) => chownSync(dir, NOBODY, NOBODY),
          says: (dir) => `data dir ${dir} is owned by uid ${NOBODY}, not by this server's user (uid 0): run chown -R 0 ${dir}, or run the server as the dir's owner`,
        },
        {
          what: "a data dir anyone can write",
          spoil: (dir) => chmodSync(dir, 0o777),
          says: (dir) => `data dir ${dir} is writable by group and others (mode 0777): run chmod 700 ${dir}`,
        },
      ];
      for (const { what, spoil, says } of cases) {
        const dir = temporaryDataDir(t);
        await (await serve(dir)).stop();
        const token = readFileSync(join(dir, "token"), "utf8");
        spoil(dir);
        assert.equal(refusal(await refusedStart(dir)), `server: ${says(dir)}`, what);
        assert.equal(readFileSync(join(dir, "token"), "utf8"), token, `${what}: the token is untouched`);
      }
    });
  });

  describe("booleans from the environment (item 13)", () => {
    it("reads DROVER_INSECURE_NO_AUTH=false, 0 and empty as off: the token is required", async (t) => {
      for (const value of ["false", "0", "", "FALSE"]) {
        const dir = temporaryDataDir(t);
        const server = await serve(dir, [], { DROVER_INSECURE_NO_AUTH: value });
        assert.ok(existsSync(join(dir, "token")), `DROVER_INSECURE_NO_AUTH=${JSON.stringify(value)}: a token is made`);
        await server.stop();
      }
      // And a call without the token is refused.
      const dir = temporaryDataDir(t);
      const port = await freePort();
      const { child } = startServer(["--data-dir", dir, "--listen", `127.0.0.1:${port}`], { DROVER_INSECURE_NO_AUTH: "false" });
      t.after(() => child.kill("SIGKILL"));
      await waitUntilServing(port, dir);
      const anonymous = createClient(DroverServiceDefinition, createChannel(`127.0.0.1:${port}`));
      await expectStatus(anonymous.listNodes({}), Status.UNAUTHENTICATED, /missing token/);
    });

    it("reads DROVER_INSECURE_NO_AUTH=1 and TRUE as on", async (t) => {
      for (const value of ["1", "TRUE"]) {
        const dir = temporaryDataDir(t);
        const port = await freePort();
        const { child } = startServer(["--data-dir", dir, "--listen", `127.0.0.1:${port}`], { DROVER_INSECURE_NO_AUTH: value });
        t.after(() => child.kill("SIGKILL"));
        const anonymous = createClient(DroverServiceDefinition, createChannel(`127.0.0.1:${port}`));
        await eventually(() => anonymous.listGroups({}).then(() => true, () => undefined), `DROVER_INSECURE_NO_AUTH=${value}: a call without a token is served`);
        assert.ok(!existsSync(join(dir, "token")));
      }
    });

    it("refuses a boolean variable that is not 1, true, 0, false or empty, with exit code 2 and one line", async (t) => {
      const cases = [
        ["DROVER_INSECURE_NO_AUTH", "yes", "--insecure-no-auth"],
        ["DROVER_INSECURE_NO_AUTH", "off", "--insecure-no-auth"],
        ["DROVER_STOP_UNKNOWN_PROCESSES", "2", "--stop-unknown-processes"],
        ["DROVER_SKIP_INTEGRITY_CHECK", "enabled", "--skip-integrity-check"],
      ];
      for (const [name, value, flag] of cases) {
        const dir = temporaryDataDir(t);
        assert.equal(
          refusal(await refusedStart(dir, [], { [name!]: value }), 2),
          `server: ${name}=${JSON.stringify(value)} is not a boolean (it sets ${flag}): use 1 or true, 0 or false, or leave it empty`,
        );
        assert.deepEqual(readdirSync(dir), [], "nothing was made");
      }
    });
  });

  describe("migrations (item 18)", () => {
    it("logs each migration it applies with how long it took, and none on the next start", async (t) => {
      const dir = temporaryDataDir(t);
      const first = logLines((await (await serve(dir)).stop()).stdout);
      const migrations = readdirSync(MIGRATIONS_DIR).filter((file) => file.endsWith(".sql")).map((file) => file.replace(/\.sql$/, "").replace(/^0+/, ""));
      const applying = first.filter((line) => line.msg === "applying migration").map((line) => line.migration);
      const applied = first.filter((line) => line.msg === "migration applied");
      assert.deepEqual(applying, migrations);
      assert.deepEqual(applied.map((line) => line.migration), migrations);
      for (const line of applied) assert.ok(Number.isInteger(line.durationMs) && (line.durationMs as number) >= 0, `${line.migration} says how long it took`);
      assert.equal(first.find((line) => line.msg === "store opened")?.created, true);

      const second = logLines((await (await serve(dir)).stop()).stdout);
      assert.deepEqual(second.filter((line) => /migration/.test(line.msg)), []);
      assert.equal(second.find((line) => line.msg === "store opened")?.created, false);
    });
  });
});
