import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, it } from "node:test";
import Database from "better-sqlite3";
import { StorageError } from "../src/errors.js";
import { DATABASE_FILE, openSqliteStore } from "../src/store/SqliteStore.js";
import { migrate, readMigrations } from "../src/store/migrate.js";
import { MIGRATIONS_DIR, openTestStore, temporaryDataDir } from "./support.js";

/** The committed dump of the migrated schema; regenerate with UPDATE_SCHEMA=1 when a migration is added. */
const SCHEMA_FILE = fileURLToPath(new URL("../../test/schema.sql", import.meta.url));

function dumpSchema(path: string): string {
  const db = new Database(path, { readonly: true });
  try {
    const rows = db.prepare("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY type, name").pluck().all() as string[];
    return rows.map((sql) => `${sql};\n`).join("\n");
  } finally {
    db.close();
  }
}

describe("store", () => {
  it("migrates a fresh file to the committed schema", async (t) => {
    const dir = temporaryDataDir(t);
    const store = openSqliteStore(dir, MIGRATIONS_DIR);
    await store.close();
    const schema = dumpSchema(join(dir, DATABASE_FILE));
    if (process.env.UPDATE_SCHEMA === "1") writeFileSync(SCHEMA_FILE, schema);
    assert.equal(schema, readFileSync(SCHEMA_FILE, "utf8"), "the migrated schema drifted from server/test/schema.sql");
  });

  it("changes nothing when started a second time", async (t) => {
    const dir = temporaryDataDir(t);
    await openSqliteStore(dir, MIGRATIONS_DIR).close();
    const path = join(dir, DATABASE_FILE);
    const schemaBefore = dumpSchema(path);
    const db = new Database(path);
    const ledgerBefore = db.prepare("SELECT * FROM schema_migrations ORDER BY version").all();
    assert.deepEqual(migrate(db, readMigrations(MIGRATIONS_DIR)), [], "a second run applies nothing");
    assert.deepEqual(db.prepare("SELECT * FROM schema_migrations ORDER BY version").all(), ledgerBefore);
    db.close();
    await openSqliteStore(dir, MIGRATIONS_DIR).close();
    assert.equal(dumpSchema(path), schemaBefore);
  });

  it("keeps every row when a later migration rebuilds a table others refer to", async (t) => {
    const dir = temporaryDataDir(t);
    const db = new Database(join(dir, DATABASE_FILE));
    const all = readMigrations(MIGRATIONS_DIR);
    migrate(db, all.slice(0, 3));
    db.exec(`INSERT INTO groups VALUES ('g', 1);
      INSERT INTO spec_revisions (group_name, revision, count, version, max_surge, max_unavailable, created_at) VALUES ('g', 1, 1, 1, 0, 1, 0);
      INSERT INTO graphs (id, group_name, revision, state, created_at, reason) VALUES ('G1', 'g', 1, 'succeeded', 0, 'repair');
      INSERT INTO tasks (graph_id, id, action, prerequisites, state) VALUES ('G1', 0, 'do_nothing', '[]', 'succeeded');`);
    assert.deepEqual(migrate(db, all), all.slice(3).map((migration) => migration.version));
    assert.deepEqual(db.prepare("SELECT id, reason FROM graphs").all(), [{ id: "G1", reason: "repair" }]);
    assert.equal(db.prepare("SELECT COUNT(*) FROM tasks WHERE graph_id = 'G1'").pluck().get(), 1);
    assert.deepEqual(db.pragma("foreign_key_check"), []);
    db.pragma("foreign_keys = ON");
    assert.throws(() => db.prepare("INSERT INTO tasks (graph_id, id, action, prerequisites, state) VALUES ('nope', 0, 'do_nothing', '[]', 'pending')").run(), /FOREIGN KEY/);
    db.close();
  });

  it("uses WAL with full synchronous durability", async (t) => {
    const dir = temporaryDataDir(t);
    await openSqliteStore(dir, MIGRATIONS_DIR).close();
    const db = new Database(join(dir, DATABASE_FILE));
    assert.equal(db.pragma("journal_mode", { simple: true }), "wal");
    db.close();
  });

  it("stores a revision with its graph and every task in one step, and numbers revisions per group", async (t) => {
    const store = openTestStore(t);
    const spec = { count: 2, version: 1, maxSurge: 0, maxUnavailable: 1 };
    const first = await store.storeRevision({
      group: "web",
      spec,
      graph: {
        id: "01ARZ3NDEKTSV4RRFFQ69G5FAV",
        tasks: [
          { id: 0, prerequisites: [], action: "start_node", version: 1 },
          { id: 1, prerequisites: [], action: "start_node", version: 1 },
          { id: 2, prerequisites: [0, 1], action: "do_nothing" },
        ],
      },
      now: 1000,
      liveGraphs: [],
    });
    assert.equal(first.revision, 1);
    assert.equal(first.graph?.tasks.length, 3);
    assert.deepEqual(first.graph?.tasks[2]?.prerequisites, [0, 1]);
    assert.equal(first.events.length, 1);
    const second = await store.storeRevision({ group: "web", spec: { ...spec, count: 0 }, now: 2000, liveGraphs: [] });
    assert.equal(second.revision, 2);
    assert.equal(second.graph, undefined);
    assert.equal((await store.storeRevision({ group: "other", spec, now: 3000, liveGraphs: [] })).revision, 1);
    assert.deepEqual((await store.getGroupSpec("web"))?.spec, {
      ...spec,
      count: 0,
      onFailure: "stop",
      taskTimeoutMs: 0,
      progressDeadlineMs: 0,
      cpuMillis: 0,
      memoryMb: 0,
      templateHash: "",
      minReadyMs: 0,
      canary: 0,
      autoPromoteAfterMs: 0,
    });
    assert.equal(await store.latestGraphId("web"), "01ARZ3NDEKTSV4RRFFQ69G5FAV");
  });

  it("applies transitions with gap-free increasing event sequence numbers", async (t) => {
    const store = openTestStore(t);
    const graphId = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
    await store.storeRevision({
      group: "g",
      spec: { count: 1, version: 1, maxSurge: 0, maxUnavailable: 1 },
      graph: { id: graphId, tasks: [{ id: 0, prerequisites: [], action: "start_node", version: 1 }] },
      now: 1,
      liveGraphs: [],
    });
    const events = await store.apply(
      [
        { type: "graph", graphId, group: "g", state: "running" },
        { type: "task", graphId, group: "g", taskId: 0, action: "start_node", state: "running", attempt: 1, nodeId: "N1" },
        { type: "node", nodeId: "N1", group: "g", state: "starting", version: 1, host: "h", graphId, taskId: 0 },
        { type: "node", nodeId: "N1", group: "g", state: "running", version: 1, host: "h", graphId, taskId: 0 },
        { type: "task", graphId, group: "g", taskId: 0, action: "start_node", state: "succeeded", nodeId: "N1" },
        { type: "graph", graphId, group: "g", state: "succeeded" },
      ],
      5,
    );
    const sequences = events.map((event) => event.sequence);
    assert.deepEqual(sequences, sequences.map((_, i) => sequences[0]! + i));
    const snapshot = await store.snapshotGraph(graphId);
    assert.equal(snapshot?.graph.state, "succeeded");
    assert.equal(snapshot?.tasks[0]?.nodeId, "N1");
    assert.equal(snapshot?.tasks[0]?.attempts, 1);
    assert.equal(snapshot?.sequence, sequences.at(-1));
    const nodes = await store.listNodes("g", { all: false });
    assert.deepEqual(nodes.map((node) => [node.id, node.state]), [["N1", "running"]]);
    const graphEvents = await store.graphEvents(graphId, 0, 100);
    assert.ok(graphEvents.every((event) => event.type !== "node"), "node events stay out of the graph's stream");
    assert.equal((await store.nodeEvents("g", 0, 100)).length, 2);
  });

  it("refuses a corrupt database with a message that names the file and advises a restore, not a fresh start", (t) => {
    const dir = temporaryDataDir(t);
    writeFileSync(join(dir, DATABASE_FILE), "this is not a database, it is a text file long enough to have a header".repeat(20));
    assert.throws(() => openSqliteStore(dir, MIGRATIONS_DIR), (error: Error) => {
      assert.ok(error instanceof StorageError);
      assert.match(error.message, /drover\.db is not a SQLite database/);
      assert.match(error.message, /restore drover\.db from a backup/);
      assert.doesNotMatch(error.message, /move it away|afresh/);
      return true;
    });
  });

  it("refuses a data directory that cannot be created", (t) => {
    const dir = temporaryDataDir(t);
    const file = join(dir, "plain-file");
    writeFileSync(file, "");
    assert.throws(() => openSqliteStore(join(file, "data"), MIGRATIONS_DIR), /data dir .*plain-file\/data cannot be created/);
  });

  it("refuses a data directory that is a file", (t) => {
    const dir = temporaryDataDir(t);
    const file = join(dir, "plain-file");
    writeFileSync(file, "");
    assert.throws(() => openSqliteStore(file, MIGRATIONS_DIR), /is not a directory/);
  });
});
