/**
 * Storage faults that are not a clean kill: a full disk, failing writes, a read-only mount,
 * corruption met at run time, a graph left with no run behind it. Issue 11 items 1, 2 and 6.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { EventType, FailurePolicy, GraphState, NodeState, TaskState, type DroverServiceClient, type WatchGraphResponse } from "@drover/shared";
import { ClientError, createChannel, createClient, Status } from "nice-grpc";
import { HealthDefinition } from "nice-grpc-server-health";
import { HealthCheckResponse_ServingStatus as Serving } from "nice-grpc-server-health/lib/proto/grpc/health/v1/health.js";
import { seededRandom } from "../src/clock.js";
import type { SqliteStore } from "../src/store/SqliteStore.js";
import type { Store } from "../src/store/Store.js";
import { eventually, expectStatus, openTestStore, startTestServer, temporaryDataDir, type TestServer } from "./support.js";

const CLIENT_BIN = fileURLToPath(new URL("../../../bin/client", import.meta.url));
const spec = (count: number, version: number) => ({ count, version, maxSurge: 1, maxUnavailable: 1 });

/** A SQLite error as better-sqlite3 throws it. */
function sqliteError(code: string): Error {
  return Object.assign(new Error(code === "SQLITE_FULL" ? "database or disk is full" : "disk I/O error"), { code });
}

const WRITES = new Set(["apply", "storeRevision", "storeGraph", "setTemplate", "probeWrite"]);

/** The real store, whose writes fail (before they touch the database) while `failing` says so for the operation. */
function faultyStore(store: SqliteStore, failing: (operation: string) => string | undefined): Store {
  return new Proxy(store, {
    get(target, property) {
      const value = Reflect.get(target, property) as unknown;
      if (typeof value !== "function") return value;
      const operation = (value as (...args: unknown[]) => unknown).bind(target);
      if (!WRITES.has(String(property))) return operation;
      return async (...args: unknown[]) => {
        const code = failing(String(property));
        if (code) throw sqliteError(code);
        return operation(...args);
      };
    },
  });
}

function healthOf(server: TestServer) {
  const health = createClient(HealthDefinition, createChannel(`127.0.0.1:${server.server.port}`));
  return async () => (await health.check({ service: "" })).status;
}

/** Records every health status seen, every 10 ms, until stopped. */
function sampleHealth(check: () => Promise<Serving>) {
  const seen: Serving[] = [];
  let stopped = false;
  const done = (async () => {
    while (!stopped) {
      seen.push(await check());
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  })();
  return {
    seen,
    stop: async () => {
      stopped = true;
      await done;
    },
  };
}

/** Calls setSpec until the server takes it, collecting the refusals (UNAVAILABLE while writes fail). */
async function updateUntilTaken(client: DroverServiceClient, group: string, count: number, version: number, refusals: string[]) {
  for (;;) {
    try {
      return await client.setSpec({ group, ...spec(count, version) });
    } catch (error) {
      if (!(error instanceof ClientError) || error.code !== Status.UNAVAILABLE) throw error;
      refusals.push(error.details);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

/**
 * Follows a graph to its end as the CLI does: on UNAVAILABLE it resumes after the sequence the
 * message names. Returns every event's sequence and the final graph state.
 */
async function followGraph(client: DroverServiceClient, graphId: string, breaks: string[]) {
  const sequences: number[] = [];
  let after: number | undefined;
  let last: GraphState | undefined;
  for (;;) {
    try {
      for await (const message of client.watchGraph({ graphId, afterSequence: after }) as AsyncIterable<WatchGraphResponse>) {
        if (message.snapshot && after === undefined) {
          after = message.snapshot.sequence;
          last = message.snapshot.state;
        }
        for (const event of message.events) {
          if (event.graphId !== graphId) continue;
          sequences.push(event.sequence);
          after = event.sequence;
          if (event.type === EventType.EVENT_TYPE_GRAPH) last = event.graphState;
        }
      }
      return { sequences, last };
    } catch (error) {
      if (!(error instanceof ClientError) || error.code !== Status.UNAVAILABLE) throw error;
      breaks.push(error.details);
      const resume = /resume after sequence (\d+)/.exec(error.details);
      assert.ok(resume, `the break says where to resume: ${error.details}`);
      assert.ok(after === undefined || Number(resume[1]) === after, `resume point ${resume[1]} is the last event seen (${after})`);
      after = Number(resume[1]);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

describe("storage faults", () => {
  it("a store whose commits fail at random for a while (full disk, I/O errors): every graph settles, nothing is lost or duplicated, health tells the truth", { timeout: 300_000 }, async (t) => {
    for (const seed of [1, 2, 3]) {
      await t.test(`seed ${seed}`, async () => {
        const random = seededRandom(seed);
        let mode: "ok" | "down" | "flaky" = "ok";
        const failing = () => {
          if (mode === "ok" || (mode === "flaky" && random() < 0.5)) return undefined;
          return random() < 0.5 ? "SQLITE_FULL" : "SQLITE_IOERR_WRITE";
        };
        const server = await startTestServer({
          wrapStore: (store) => faultyStore(store, failing),
          driver: { latency: { min: 1, max: 5 } },
          server: { storageProbeIntervalMs: 50, parallelism: 8 },
        });
        try {
          const { client } = server;
          const groups = ["a", "b", "c"];
          const first = await Promise.all(groups.map((group) => client.setSpec({ group, ...spec(20, 1) })));
          await Promise.all(first.map((update) => followGraph(client, update.graph!.id, [])));
          const health = sampleHealth(healthOf(server));
          const refusals: string[] = [];
          const breaks: string[] = [];
          // A rollout under way when the disk fills: it waits where it is and goes on afterwards.
          const rollouts = await Promise.all(groups.map((group, index) => client.setSpec({ group, ...spec(30 + index * 5, 2) })));
          const followed = rollouts.map((update) => followGraph(client, update.graph!.id, breaks));
          await new Promise((resolve) => setTimeout(resolve, 30));
          mode = "down";
          await eventually(async () => (health.seen.at(-1) === Serving.NOT_SERVING ? true : undefined), "health says NOT_SERVING");
          // New work is refused while writes fail, naming the cause.
          await expectStatus(client.setSpec({ group: "d", ...spec(2, 1) }), Status.UNAVAILABLE, /disk is full|disk failed an operation/);
          mode = "flaky";
          // Updates keep arriving; each is refused or taken, none is half stored.
          const latest = await Promise.all(groups.map((group, index) => updateUntilTaken(client, group, 10 + index * 7, 3, refusals)));
          mode = "ok";
          const outcomes = await Promise.all([...followed, ...latest.map((update) => followGraph(client, update.graph!.id, breaks))]);
          await health.stop();
          for (const { sequences } of outcomes) {
            assert.deepEqual(sequences, [...new Set(sequences)].sort((x, y) => x - y), "each event once, in order");
          }
          for (const [index, group] of groups.entries()) {
            const outcome = outcomes[groups.length + index]!;
            assert.equal(outcome.last, GraphState.GRAPH_STATE_SUCCEEDED, `group ${group}'s last update succeeded`);
            const nodes = (await client.listNodes({ group })).nodes;
            assert.equal(nodes.length, 10 + index * 7, `group ${group} is at its last spec's count`);
            assert.ok(nodes.every((node) => node.state === NodeState.NODE_STATE_RUNNING && node.version === 3), `group ${group} runs version 3 only`);
            assert.equal(new Set(nodes.map((node) => node.id)).size, nodes.length, "no node twice");
          }
          assert.ok(health.seen.includes(Serving.NOT_SERVING), "health said NOT_SERVING while writes failed");
          assert.equal(await healthOf(server)(), Serving.SERVING, "and SERVING once they work again");
          assert.ok(breaks.length > 0, "watchers were told");
          for (const message of [...refusals, ...breaks]) assert.match(message, /disk is full|disk failed an operation/);
        } finally {
          await server.stop();
        }
      });
    }
  });

  it("a storage fault that outlasts a rollout's progress deadline does not fail it: the deadline does not count time when nothing could be recorded", { timeout: 60_000 }, async () => {
    const progressDeadlineMs = 400;
    let down = false;
    const server = await startTestServer({
      wrapStore: (store) => faultyStore(store, () => (down ? "SQLITE_FULL" : undefined)),
      driver: { latency: { min: 10, max: 20 } },
      server: { storageProbeIntervalMs: 50 },
    });
    try {
      const { client, driver } = server;
      const first = await client.setSpec({ group: "g", ...spec(3, 1) });
      assert.equal((await followGraph(client, first.graph!.id, [])).last, GraphState.GRAPH_STATE_SUCCEEDED);
      // The disk fills as the rollout's first start is under way: its progress watchdog is running by then.
      const start = driver.start.bind(driver);
      driver.start = async (node, signal) => {
        if (node.version === 2) down = true;
        return start(node, signal);
      };
      const rollout = await client.setSpec({ group: "g", ...spec(3, 2), progressDeadlineMs, onFailure: FailurePolicy.FAILURE_POLICY_ROLLBACK });
      const breaks: string[] = [];
      const followed = followGraph(client, rollout.graph!.id, breaks);
      await eventually(async () => ((await healthOf(server)()) === Serving.NOT_SERVING ? true : undefined), "health says NOT_SERVING");
      await new Promise((resolve) => setTimeout(resolve, 3 * progressDeadlineMs));
      driver.start = start;
      down = false;
      const outcome = await followed;
      assert.equal(outcome.last, GraphState.GRAPH_STATE_SUCCEEDED, "the rollout succeeded once writes worked again");
      const graph = (await client.getGraph({ graphId: rollout.graph!.id })).graph!;
      assert.equal(graph.error, "");
      const nodes = (await client.listNodes({ group: "g" })).nodes;
      assert.equal(nodes.length, 3);
      assert.ok(nodes.every((node) => node.state === NodeState.NODE_STATE_RUNNING && node.version === 2), "the group runs version 2 only");
      const revisions = (await client.listRevisions({ group: "g" })).revisions;
      assert.deepEqual(revisions.map((revision) => revision.revision), [2, 1], "no rollback was stored");
    } finally {
      await server.stop();
    }
  });

  it("an update whose revision cannot be stored leaves no rollout stranded: the rollout it superseded is carried on once writes work again", { timeout: 60_000 }, async () => {
    let failRevision = false;
    const server = await startTestServer({
      wrapStore: (store) => faultyStore(store, (operation) => (failRevision && operation === "storeRevision" ? "SQLITE_FULL" : undefined)),
      driver: { latency: { min: 5, max: 10 } },
      server: { storageProbeIntervalMs: 50, reconcileIntervalMs: 100 },
    });
    try {
      const { client, driver } = server;
      const first = await client.setSpec({ group: "g", ...spec(3, 1) });
      assert.equal((await followGraph(client, first.graph!.id, [])).last, GraphState.GRAPH_STATE_SUCCEEDED);
      // Version 2's starts wait until the update below has been refused.
      let release!: () => void;
      const released = new Promise<void>((resolve) => (release = resolve));
      const start = driver.start.bind(driver);
      driver.start = async (node, signal) => {
        if (node.version === 2) await released;
        return start(node, signal);
      };
      const rollout = await client.setSpec({ group: "g", ...spec(3, 2) });
      await eventually(async () => ((await client.getGraph({ graphId: rollout.graph!.id })).graph!.tasks.some((task) => task.state === TaskState.TASK_STATE_RUNNING) ? true : undefined), "a start of the rollout under way");
      // The disk fills just as the next update is stored: health has not seen it yet, so the update gets as far as superseding the rollout.
      failRevision = true;
      await expectStatus(client.setSpec({ group: "g", ...spec(3, 3) }), Status.UNAVAILABLE, /disk is full/);
      failRevision = false;
      release();
      driver.start = start;
      await followGraph(client, rollout.graph!.id, []);
      await eventually(
        async () => {
          const nodes = (await client.listNodes({ group: "g" })).nodes;
          return nodes.length === 3 && nodes.every((node) => node.state === NodeState.NODE_STATE_RUNNING && node.version === 2) ? true : undefined;
        },
        "the group converged on revision 2, the last one stored",
        20_000,
      );
      const revisions = (await client.listRevisions({ group: "g" })).revisions;
      assert.deepEqual(revisions.map((revision) => revision.revision), [2, 1], "the refused update stored nothing");
    } finally {
      await server.stop();
    }
  });

  it("a database that turns read-only: writes are refused UNAVAILABLE naming the cause, health is NOT_SERVING, and both recover with it", { timeout: 60_000 }, async () => {
    let sqlite: SqliteStore | undefined;
    const server = await startTestServer({
      wrapStore: (store) => (sqlite = store),
      server: { storageProbeIntervalMs: 50 },
    });
    // SQLite's own read-only refusal (SQLITE_READONLY), as a file or mount that stops taking writes gives.
    const setQueryOnly = (on: boolean) => (sqlite as unknown as { db: { pragma(text: string): unknown } }).db.pragma(`query_only = ${on ? "ON" : "OFF"}`);
    try {
      const health = healthOf(server);
      await server.client.setSpec({ group: "g", ...spec(2, 1) });
      setQueryOnly(true);
      await eventually(async () => ((await health()) === Serving.NOT_SERVING ? true : undefined), "health says NOT_SERVING");
      await expectStatus(server.client.setSpec({ group: "g", ...spec(3, 1) }), Status.UNAVAILABLE, /drover\.db cannot be written \(SQLITE_READONLY\): check that the server's user owns the file/);
      // The refusal does not claim the request will be retried: it was not applied, and the client may send it again.
      await expectStatus(server.client.setSpec({ group: "g", ...spec(3, 1) }), Status.UNAVAILABLE, /; this request was not applied: retry it once the database can be written again \(health SERVING\)$/);
      setQueryOnly(false);
      await eventually(async () => ((await health()) === Serving.SERVING ? true : undefined), "health says SERVING again");
      assert.equal((await server.client.setSpec({ group: "g", ...spec(3, 1) })).revision, 2);
    } finally {
      await server.stop();
    }
  });

  it("corruption met at run time stops every write for good: NOT_SERVING and UNAVAILABLE naming the database", async () => {
    let corrupt = false;
    const server = await startTestServer({
      wrapStore: (store) => faultyStore(store, () => (corrupt ? "SQLITE_CORRUPT" : undefined)),
      server: { storageProbeIntervalMs: 50 },
    });
    try {
      const { client } = server;
      await client.setSpec({ group: "g", ...spec(3, 1) });
      corrupt = true;
      await eventually(async () => ((await healthOf(server)()) === Serving.NOT_SERVING ? true : undefined), "health says NOT_SERVING");
      corrupt = false;
      // Writes would work again, but a corrupt database is not written into until an operator restores it.
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.equal(await healthOf(server)(), Serving.NOT_SERVING);
      await expectStatus(client.setSpec({ group: "g", ...spec(4, 1) }), Status.UNAVAILABLE, /drover\.db is corrupt \(SQLITE_CORRUPT\).*restore the database from a backup/);
      await expectStatus(client.setSpec({ group: "other", ...spec(1, 1) }), Status.UNAVAILABLE, /corrupt/);
      await expectStatus(client.setSpec({ group: "other", ...spec(1, 1) }), Status.UNAVAILABLE, /; this request was not applied: retry it once the database is restored$/);
    } finally {
      await server.stop();
    }
  });

  it("storing a revision supersedes, in the same transaction, every unsettled graph of the group that no run works on", async (t) => {
    const store = openTestStore(t);
    const tasks = [0, 1, 2].map((id) => ({ id, prerequisites: [], action: "start_node" as const, version: 1 }));
    const stranded = "01JDX6AAAAAAAAAAAAAAAAAAA1";
    const live = "01JDX6AAAAAAAAAAAAAAAAAAA2";
    await store.storeRevision({ group: "g", spec: spec(3, 1), graph: { id: stranded, tasks }, now: 1, liveGraphs: [] });
    await store.apply([{ type: "graph", graphId: stranded, group: "g", state: "running" }], 2);
    // A run still works on `live`: it is left to end on its own.
    await store.storeGraph({ group: "g", revision: 1, reason: "heal", graph: { id: live, tasks }, now: 3, liveGraphs: [live, stranded] });
    assert.equal((await store.getGraph(stranded))!.state, "running", "a graph named live is left alone");
    const next = await store.storeRevision({ group: "g", spec: spec(300, 1), graph: { id: "01JDX6AAAAAAAAAAAAAAAAAAA3", tasks }, now: 4, liveGraphs: [live] });
    const old = (await store.snapshotGraph(stranded))!;
    assert.equal(old.graph.state, "superseded");
    assert.equal(old.graph.error, "superseded by spec revision 2: no run was working on it", "it names what superseded it");
    assert.equal(old.graph.nextGraphId, "01JDX6AAAAAAAAAAAAAAAAAAA3");
    assert.ok(old.tasks.every((task) => task.state === "cancelled"), "its open tasks are cancelled");
    assert.equal((await store.getGraph(live))!.state, "pending", "the live one is not");
    const ended = next.events.filter((event) => event.graphId === stranded);
    assert.equal(ended.at(-1)?.state, "superseded", "watchers hear of it in the same commit");
    assert.ok(ended.every((event) => event.sequence < next.events.at(-1)!.sequence), "before the new graph's first event");
    // A heal stored once no run works on `live` supersedes it too, and says that a heal did.
    await store.storeGraph({ group: "g", revision: 2, reason: "heal", graph: { id: "01JDX6AAAAAAAAAAAAAAAAAAA4", tasks }, now: 5, liveGraphs: [] });
    assert.equal((await store.getGraph(live))!.error, "superseded by graph 01JDX6AAAAAAAAAAAAAAAAAAA4 (a heal): no run was working on it");
  });

  it("a restart resumes only a group's newest graph at its current revision, never a stale one", async (t) => {
    const dataDir = temporaryDataDir(t);
    const store = openTestStore(t, dataDir);
    const tasks = Array.from({ length: 50 }, (_, id) => ({ id, prerequisites: [], action: "start_node" as const, version: 1 }));
    const stale = "01JDX6BBBBBBBBBBBBBBBBBBB1";
    const newer = "01JDX6BBBBBBBBBBBBBBBBBBB2";
    // As an older server left it: the revision-1 graph stranded "running", a newer revision's graph settled after it.
    await store.storeRevision({ group: "g", spec: spec(50, 1), graph: { id: stale, tasks }, now: 1, liveGraphs: [] });
    await store.apply([{ type: "graph", graphId: stale, group: "g", state: "running" }], 2);
    await store.storeRevision({ group: "g", spec: spec(0, 1), graph: { id: newer, tasks: [{ id: 0, prerequisites: [], action: "do_nothing" }] }, now: 3, liveGraphs: [stale] });
    await store.apply([{ type: "graph", graphId: newer, group: "g", state: "succeeded" }], 4);
    await store.close();
    const server = await startTestServer({ dataDir });
    try {
      const graph = await eventually(async () => {
        const found = (await server.client.getGraph({ graphId: stale })).graph;
        return found?.state === GraphState.GRAPH_STATE_SUPERSEDED ? found : undefined;
      }, "the stale graph is superseded");
      assert.equal(graph.counts?.succeeded ?? 0, 0, "none of its tasks ran");
      assert.equal(graph.error, "superseded by spec revision 2", "it names what superseded it");
      assert.equal((await server.client.listNodes({ group: "g" })).nodes.length, 0, "no node was started for it");
    } finally {
      await server.stop();
    }
  });
});

/** Mounts a tmpfs of `size` at a new directory, or says why it cannot (not root, no mount). */
function mountTmpfs(size: string): { dir: string; resize: (size: string) => void; unmount: () => void } | string {
  if (process.getuid?.() !== 0) return "mounting a tmpfs needs root";
  const dir = mkdtempSync(join(tmpdir(), "drover-tmpfs-"));
  const mounted = spawnSync("mount", ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir], { encoding: "utf8" });
  if (mounted.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    return `cannot mount a tmpfs here: ${mounted.stderr.trim() || mounted.error?.message}`;
  }
  const run = (args: string[]) => {
    const result = spawnSync("mount", args, { encoding: "utf8" });
    assert.equal(result.status, 0, result.stderr);
  };
  return {
    dir,
    resize: (next) => run(["-o", `remount,size=${next}`, dir]),
    unmount: () => {
      spawnSync("umount", ["-l", dir]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Runs bin/client against the server; resolves with its exit code and output. */
function client(port: number, args: string[]) {
  const child = spawn(CLIENT_BIN, ["--server", `127.0.0.1:${port}`, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, DROVER_TOKEN: "", XDG_CONFIG_HOME: join(tmpdir(), "drover-no-credentials") },
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.on("exit", (code) => resolve({ code, stdout, stderr })),
  );
  return { exited, stderr: () => stderr };
}

describe("a full disk, for real (a tmpfs)", () => {
  const probe = mountTmpfs("1m");
  const skip = typeof probe === "string" ? probe : false;
  if (typeof probe !== "string") probe.unmount();

  it("a rollout that fills the disk waits, says why, refuses new work, and goes on by itself once space is freed", { skip, timeout: 180_000 }, async () => {
    const disk = mountTmpfs("2m");
    assert.ok(typeof disk !== "string");
    const dataDir = join(disk.dir, "data");
    mkdirSync(dataDir);
    const server = await startTestServer({
      dataDir,
      driver: { latency: { min: 0, max: 5 } },
      server: { parallelism: 16, storageProbeIntervalMs: 100 },
    });
    try {
      const health = healthOf(server);
      const rollout = client(server.server.port, ["update", "3000", "1"]);
      await eventually(async () => ((await health()) === Serving.NOT_SERVING ? true : undefined), "the disk fills and health says NOT_SERVING", 60_000);
      const other = await client(server.server.port, ["--group", "other", "update", "2", "1"]).exited;
      assert.equal(other.code, 3, other.stderr);
      assert.match(other.stderr, /^client: .*the database's disk is full \(SQLITE_FULL\): .* free in .*: free space there/m);
      await expectStatus(server.client.setSpec({ group: "other", ...spec(2, 1) }), Status.UNAVAILABLE, /disk is full/);
      await eventually(async () => (/the watch stream broke .*disk is full.*resume after sequence \d+/.test(rollout.stderr()) ? true : undefined), "the watcher is told why");
      disk.resize("64m");
      const done = await rollout.exited;
      assert.equal(done.code, 0, done.stderr);
      assert.match(done.stdout, /succeeded/);
      assert.equal(await health(), Serving.SERVING);
      const nodes = (await server.client.listNodes({ group: "default" })).nodes;
      assert.equal(nodes.length, 3000);
      assert.equal(new Set(nodes.map((node) => node.id)).size, 3000);
      assert.equal((await server.client.setSpec({ group: "other", ...spec(2, 1) })).revision, 1, "new work is taken again");
    } finally {
      await server.stop();
      disk.unmount();
    }
  });

  it("below the free-space margin new work is refused, saying so", { skip, timeout: 60_000 }, async () => {
    const disk = mountTmpfs("8m");
    assert.ok(typeof disk !== "string");
    const server = await startTestServer({ dataDir: disk.dir, server: { storageProbeIntervalMs: 50, minFreeBytes: 16 * 1024 * 1024 } });
    try {
      await eventually(
        async () => {
          try {
            await server.client.setSpec({ group: "g", ...spec(2, 1) });
            return undefined;
          } catch (error) {
            return error instanceof ClientError ? error : undefined;
          }
        },
        "an update is refused",
      ).then((error) => {
        assert.equal(error.code, Status.UNAVAILABLE);
        assert.match(error.details, /disk is nearly full: .* free in .*, below the margin of 16\.0 MiB \(--min-free-space\)/);
      });
      assert.equal((await server.client.setSpec({ group: "g", ...spec(2, 1), dryRun: true })).revision, 0, "a dry run still answers");
    } finally {
      await server.stop();
      disk.unmount();
    }
  });
});
