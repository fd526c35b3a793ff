import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import DatabaseConstructor from "better-sqlite3";
import { ulidFactory } from "../src/ids.js";
import { plan } from "../src/planner/plan.js";
import { DATABASE_FILE, openSqliteStore } from "../src/store/SqliteStore.js";
import { BENCH_GROUP, BENCH_HOST, MIGRATIONS_DIR } from "./seedDataDir.js";

const newId = ulidFactory();

export interface SqliteCeiling {
  tasksPerSecond: number;
  rowChanges: number;
  transactions: number;
}

/**
 * The raw ceiling beside figure 3: how fast this machine's SQLite (same schema, WAL,
 * synchronous=FULL) commits the row changes a start task costs the server, from a plain
 * loop with nothing else going on. Each task is four transitions — task running, node
 * starting, node running, task succeeded — each one row update or upsert plus one event
 * row, as the store writes them. Transactions hold 2 × parallelism transitions: the most
 * one event-loop tick of the journal can group when every one of `parallelism` running
 * tasks records its next two transitions at once.
 */
export async function measureSqliteCeiling(tasks: number, parallelism: number): Promise<SqliteCeiling> {
  const dataDir = mkdtempSync(join(tmpdir(), "drover-bench-ceiling-"));
  try {
    const graphId = newId();
    const store = openSqliteStore(dataDir, MIGRATIONS_DIR);
    const spec = { count: tasks, version: 1, maxSurge: 0, maxUnavailable: 1 };
    await store.storeRevision({ group: BENCH_GROUP, spec, graph: { id: graphId, tasks: plan([], spec).tasks }, now: Date.now(), liveGraphs: [] });
    await store.close();

    const db = new DatabaseConstructor(join(dataDir, DATABASE_FILE));
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = FULL");
    db.pragma("foreign_keys = ON");
    const taskRunning = db.prepare(`UPDATE tasks SET state = 'running', attempts = ?, started_at = COALESCE(started_at, ?),
      node_id = COALESCE(?, node_id), error = NULL WHERE graph_id = ? AND id = ?`);
    const taskSettled = db.prepare(`UPDATE tasks SET state = ?, finished_at = ?, error = ?, node_id = COALESCE(?, node_id)
      WHERE graph_id = ? AND id = ?`);
    const upsertNode = db.prepare(`INSERT INTO nodes (id, group_name, version, state, host, created_at, updated_at, error)
      VALUES (?, ?, ?, ?, ?, ?, ?, NULL)
      ON CONFLICT (id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at, error = excluded.error`);
    const insertEvent = db.prepare(`INSERT INTO events (time, type, group_name, graph_id, task_id, node_id, state, action,
      version, attempt, error, retry_delay_ms, message, next_graph_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL, NULL)`);
    const nodeIds = Array.from({ length: tasks }, () => newId());
    const apply = (transition: number, now: number) => {
      const taskId = Math.floor(transition / 4);
      const nodeId = nodeIds[taskId]!;
      switch (transition % 4) {
        case 0:
          taskRunning.run(1, now, nodeId, graphId, taskId);
          insertEvent.run(now, "task", BENCH_GROUP, graphId, taskId, nodeId, "running", "start_node", 1, 1);
          break;
        case 1:
          upsertNode.run(nodeId, BENCH_GROUP, 1, "starting", BENCH_HOST, now, now);
          insertEvent.run(now, "node", BENCH_GROUP, null, null, nodeId, "starting", null, 1, null);
          break;
        case 2:
          upsertNode.run(nodeId, BENCH_GROUP, 1, "running", BENCH_HOST, now, now);
          insertEvent.run(now, "node", BENCH_GROUP, null, null, nodeId, "running", null, 1, null);
          break;
        case 3:
          taskSettled.run("succeeded", now, null, nodeId, graphId, taskId);
          insertEvent.run(now, "task", BENCH_GROUP, graphId, taskId, nodeId, "succeeded", "start_node", 1, null);
          break;
      }
    };
    const perTransaction = 2 * parallelism;
    const transitions = 4 * tasks;
    const commit = db.transaction((first: number, last: number, now: number) => {
      for (let transition = first; transition < last; transition++) apply(transition, now);
    });
    let transactions = 0;
    const started = performance.now();
    for (let first = 0; first < transitions; first += perTransaction) {
      commit(first, Math.min(transitions, first + perTransaction), Date.now());
      transactions++;
    }
    const seconds = (performance.now() - started) / 1000;
    db.close();
    return { tasksPerSecond: tasks / seconds, rowChanges: 2 * transitions, transactions };
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}
