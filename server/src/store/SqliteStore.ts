import { existsSync, statfsSync } from "node:fs";
import { join } from "node:path";
import DatabaseConstructor, { type Database } from "better-sqlite3";
import type {
  Event,
  EventType,
  FailurePolicy,
  GraphReason,
  GraphState,
  GraphWithTasks,
  Node,
  NodeState,
  NodeTemplate,
  PlannedTask,
  Revision,
  RevisionGraph,
  RevisionReason,
  Spec,
  Task,
  TaskAction,
  TaskState,
} from "../domain.js";
import { graphReasonInWords, pendingTask } from "../domain.js";
import { asPercent, formatBytes, percentOf, resolveRolloutBounds } from "@drover/shared";
import { FailedPreconditionError, StorageError } from "../errors.js";
import {
  assertIntact,
  assertWritableDataDir,
  createDataDir,
  assertWritable,
  corruptError,
  createPrivately,
  foreignDatabaseError,
  hasNoTables,
  isBlank,
  notADatabaseError,
  readOnlyError,
  refuseBlankDatabase,
  refuseLeftoverWal,
} from "./databaseFile.js";
import { assertDroversLedger, ForeignDatabaseError, migrate, type MigrationLog, readMigrations } from "./migrate.js";
import { SqliteRetention } from "./SqliteRetention.js";
import type {
  EventCompactionStep,
  GraphExpiryStep,
  GraphSummary,
  GroupForgetting,
  GroupSpec,
  GroupStatus,
  NewGraph,
  NewRevision,
  RetentionPeriod,
  Store,
  StorageFault,
  StoredRevision,
  TaskCounts,
  Transition,
} from "./Store.js";

export const DATABASE_FILE = "drover.db";

/** The most graphs of one revision a list of revisions carries (a crash loop heals under one revision many times). */
export const REVISION_GRAPHS_LISTED = 20;

/** Below this much free space a failed write (SQLITE_IOERR_WRITE) is taken for a full disk. */
const LOW_SPACE_BYTES = 1024 * 1024;


/** The nodes columns in the order `toNode` reads them from a raw row. */
const NODE_COLUMNS = "id, group_name, version, state, host, created_at, updated_at, error, revision, template_hash, exit_status";

type NodeRow = [
  id: string,
  group_name: string,
  version: number,
  state: NodeState,
  host: string,
  created_at: number,
  updated_at: number,
  error: string | null,
  revision: number | null,
  template_hash: string | null,
  exit_status: string | null,
];

interface SpecColumns {
  count: number;
  version: number;
  max_surge: number;
  max_unavailable: number;
  /** The bound as given, when it was a percent; max_surge then holds it resolved. */
  max_surge_percent: number | null;
  max_unavailable_percent: number | null;
  on_failure: FailurePolicy;
  task_timeout_ms: number;
  progress_deadline_ms: number;
  cpu_millis: number;
  memory_mb: number;
  template: string | null;
  template_hash: string;
  min_ready_ms: number;
  canary: number;
  auto_promote_after_ms: number;
}

interface RevisionRow extends SpecColumns {
  group_name: string;
  revision: number;
  created_at: number;
  reason: RevisionReason;
  restores: number | null;
  graph_id: string | null;
  graph_state: GraphState | null;
}

interface GraphRow extends SpecColumns {
  id: string;
  group_name: string;
  revision: number;
  state: GraphState;
  reason: GraphReason;
  paused_at: number | null;
  message: string | null;
  next_graph_id: string | null;
  revision_reason: RevisionReason;
  revision_restores: number | null;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
  error: string | null;
  retries: number;
}

/** A raw row of the tasks columns `toTask` reads, in this order. */
type TaskRow = [
  id: number,
  action: TaskAction,
  prerequisites: string,
  node_id: string | null,
  version: number | null,
  state: TaskState,
  attempts: number,
  error: string | null,
  started_at: number | null,
  finished_at: number | null,
  revision: number | null,
  template_hash: string | null,
  gated: number,
  waiting: string | null,
];

/** The tasks columns in the order `toTask` reads them from a raw row. */
const TASK_COLUMNS = "id, action, prerequisites, node_id, version, state, attempts, error, started_at, finished_at, revision, template_hash, gated, waiting";

/** A raw row of EVENT_COLUMNS. */
type EventRowValues = [
  sequence: number,
  time: number,
  type: EventType,
  group_name: string,
  graph_id: string | null,
  task_id: number | null,
  node_id: string | null,
  state: string | null,
  action: TaskAction | null,
  version: number | null,
  attempt: number | null,
  error: string | null,
  retry_delay_ms: number | null,
  message: string | null,
  next_graph_id: string | null,
];

const LIVE_NODE_STATES = "('starting', 'running', 'unhealthy', 'stopping', 'failed')";
const SPEC_COLUMNS =
  `r.count, r.version, r.max_surge, r.max_unavailable, r.on_failure, r.task_timeout_ms, r.progress_deadline_ms, r.cpu_millis, r.memory_mb,
  r.template, r.template_hash, r.min_ready_ms, r.canary, r.auto_promote_after_ms, r.max_surge_percent, r.max_unavailable_percent`;
/** Whether the revision `r` is its group's deletion (its own reason column predates deletions). */
const IS_DELETION = `EXISTS (SELECT 1 FROM group_deletions d WHERE d.group_name = r.group_name AND d.revision = r.revision)`;
const GRAPH_COLUMNS = `g.id, g.group_name, g.revision, g.state, g.reason, g.paused_at, g.created_at, g.started_at,
  g.finished_at, g.error, g.retries, g.message, g.next_graph_id, CASE WHEN ${IS_DELETION} THEN 'delete' ELSE r.reason END AS revision_reason,
  r.restores AS revision_restores, ${SPEC_COLUMNS}`;
const REVISION_SELECT = `SELECT r.group_name, r.revision, r.created_at, CASE WHEN ${IS_DELETION} THEN 'delete' ELSE r.reason END AS reason,
    r.restores, ${SPEC_COLUMNS}, g.id AS graph_id, g.state AS graph_state
  FROM spec_revisions r
  LEFT JOIN graphs g ON g.id = (
    SELECT MAX(id) FROM graphs WHERE group_name = r.group_name AND revision = r.revision AND reason IN ('update', 'repair'))`;
const GRAPH_FROM = `graphs g JOIN spec_revisions r ON r.group_name = g.group_name AND r.revision = g.revision`;

const orUndefined = <T>(value: T | null): T | undefined => (value === null ? undefined : value);

/** The nodes a group's status counts: up or coming up, and failed. */
const COUNTED_NODE_STATES = "('starting', 'running', 'unhealthy', 'failed')";

/** A row of a group's current spec, as `groupStatus` statements read it. */
interface GroupStatusRow extends SpecColumns {
  name: string;
  revision: number;
  created_at: number;
  updated_at: number;
  deleting: number;
}

/**
 * The statements that read groups' statuses, of every group (`where` empty) or of one (`where`
 * naming it by the `group` parameter): kept apart so that one group's read uses the indexes.
 * Four small reads, however many groups: specs, node counts by state and version, newest graphs,
 * and those graphs' task counts.
 */
function groupStatusStatements(db: Database, one: boolean) {
  const where = (column: string) => (one ? `WHERE ${column} = @group` : "");
  const and = (column: string) => (one ? `AND ${column} = @group` : "");
  const newestGraphs = `SELECT MAX(id) FROM graphs ${where("group_name")} GROUP BY group_name`;
  return {
    specs: db.prepare(`SELECT g.name, g.revision, ${SPEC_COLUMNS}, r.created_at AS updated_at,
        (SELECT first.created_at FROM spec_revisions first WHERE first.group_name = g.name ORDER BY first.revision LIMIT 1) AS created_at,
        ${IS_DELETION} AS deleting
      FROM groups g JOIN spec_revisions r ON r.group_name = g.name AND r.revision = g.revision
      ${where("g.name")} ORDER BY g.name`),
    nodeCounts: db.prepare(`SELECT group_name, state, version, template_hash, COUNT(*) AS n FROM nodes
      WHERE state IN ${COUNTED_NODE_STATES} ${and("group_name")} GROUP BY group_name, state, version, template_hash`).raw(true),
    graphs: db.prepare(`SELECT ${GRAPH_COLUMNS} FROM ${GRAPH_FROM} WHERE g.id IN (${newestGraphs})`),
    taskCounts: db.prepare(`SELECT graph_id, state, COUNT(*) AS n, SUM(waiting IS NOT NULL AND waiting <> '') AS waiting FROM tasks
      WHERE graph_id IN (${newestGraphs}) GROUP BY graph_id, state`).raw(true),
  };
}

// Rows of nodes, tasks and events are read raw (arrays, not objects): better-sqlite3 naming
// every column of every row was 40% of reading 10,000 nodes or replaying 200,000 events.
function toNode(row: NodeRow): Node {
  return {
    id: row[0],
    group: row[1],
    version: row[2],
    state: row[3],
    host: row[4],
    createdAt: row[5],
    updatedAt: row[6],
    error: orUndefined(row[7]),
    revision: orUndefined(row[8]),
    templateHash: orUndefined(row[9]),
    exitStatus: orUndefined(row[10]),
  };
}

/**
 * Converts rows one at a time as SQLite steps to them: each row object is garbage at once,
 * rather than 100,000 of them living together (and surviving into the old generation).
 */
function mapRows<Row, T>(rows: IterableIterator<Row>, convert: (row: Row) => T): T[] {
  const out: T[] = [];
  for (const row of rows) out.push(convert(row));
  return out;
}

function toTask(row: TaskRow): Task {
  return {
    id: row[0],
    prerequisites: JSON.parse(row[2]) as number[],
    action: row[1],
    nodeId: orUndefined(row[3]),
    version: orUndefined(row[4]),
    state: row[5],
    attempts: row[6],
    error: orUndefined(row[7]),
    startedAt: orUndefined(row[8]),
    finishedAt: orUndefined(row[9]),
    revision: orUndefined(row[10]),
    templateHash: orUndefined(row[11]),
    gated: row[12] === 1 ? true : undefined,
    waiting: orUndefined(row[13]),
  };
}

/** The events columns in the order `toEvent` reads them from a raw row. */
const EVENT_COLUMNS =
  "sequence, time, type, group_name, graph_id, task_id, node_id, state, action, version, attempt, error, retry_delay_ms, message, next_graph_id";

/** An event from a raw row of EVENT_COLUMNS. */
function toEvent(row: unknown[]): Event {
  const r = row as EventRowValues;
  return {
    sequence: r[0],
    time: r[1],
    type: r[2],
    group: r[3],
    graphId: orUndefined(r[4]),
    taskId: orUndefined(r[5]),
    nodeId: orUndefined(r[6]),
    state: orUndefined(r[7]),
    action: orUndefined(r[8]),
    version: orUndefined(r[9]),
    attempt: orUndefined(r[10]),
    error: orUndefined(r[11]),
    retryDelayMs: orUndefined(r[12]),
    message: orUndefined(r[13]),
    nextGraphId: orUndefined(r[14]),
  };
}

function toSpec(row: SpecColumns): Spec {
  const spec: Spec = {
    count: row.count,
    version: row.version,
    maxSurge: row.max_surge_percent === null ? row.max_surge : asPercent(row.max_surge_percent),
    maxUnavailable: row.max_unavailable_percent === null ? row.max_unavailable : asPercent(row.max_unavailable_percent),
    onFailure: row.on_failure,
    taskTimeoutMs: row.task_timeout_ms,
    progressDeadlineMs: row.progress_deadline_ms,
    cpuMillis: row.cpu_millis,
    memoryMb: row.memory_mb,
    template: row.template === null ? undefined : (JSON.parse(row.template) as NodeTemplate),
    templateHash: row.template_hash,
    minReadyMs: row.min_ready_ms,
    canary: row.canary,
    autoPromoteAfterMs: row.auto_promote_after_ms,
  };
  if (spec.template === undefined) delete spec.template;
  return spec;
}

function toRevision(row: RevisionRow): Revision {
  return {
    group: row.group_name,
    revision: row.revision,
    spec: toSpec(row),
    createdAt: row.created_at,
    reason: row.reason,
    restores: orUndefined(row.restores),
    graphId: orUndefined(row.graph_id),
    graphState: orUndefined(row.graph_state),
  };
}

function emptyCounts(): TaskCounts {
  return { total: 0, pending: 0, running: 0, succeeded: 0, failed: 0, skipped: 0, cancelled: 0 };
}

function toGraph(row: GraphRow, counts: TaskCounts): GraphSummary {
  return {
    id: row.id,
    group: row.group_name,
    revision: row.revision,
    spec: toSpec(row),
    // A pause is a flag on a running graph, so that a paused graph is still one the server resumes.
    state: row.paused_at !== null && row.state === "running" ? "paused" : row.state,
    reason: row.reason,
    revisionReason: row.revision_reason,
    restores: orUndefined(row.revision_restores),
    createdAt: row.created_at,
    startedAt: orUndefined(row.started_at),
    finishedAt: orUndefined(row.finished_at),
    error: orUndefined(row.error),
    retries: row.retries,
    message: orUndefined(row.message),
    nextGraphId: orUndefined(row.next_graph_id),
    counts,
  };
}

export interface OpenOptions {
  /** Run `PRAGMA quick_check` before anything is written (default: yes). */
  integrityCheck?: boolean;
  /**
   * What shows that the data dir was used before (see dataDir.ts); a missing, empty or
   * table-less database is then refused rather than created afresh. Empty: a first start.
   */
  earlierUse?: readonly string[];
  /** Told of each migration applied, and how long it took. */
  migrationLog?: MigrationLog;
}

/**
 * Opens (creating if need be) the data directory's database, with every migration applied,
 * after checking that it can be written, is intact and is Drover's (see databaseFile.ts).
 */
export function openSqliteStore(dataDir: string, migrationsDir: string, options: OpenOptions = {}): SqliteStore {
  createDataDir(dataDir);
  assertWritableDataDir(dataDir);
  const path = join(dataDir, DATABASE_FILE);
  const earlierUse = options.earlierUse ?? [];
  if (isBlank(path)) {
    refuseBlankDatabase(path, dataDir, existsSync(path) ? "empty (0 bytes)" : "missing", earlierUse);
    refuseLeftoverWal(path);
  }
  if (!existsSync(path)) createPrivately(path);
  assertWritable(path);
  let db: Database | undefined;
  try {
    db = new DatabaseConstructor(path);
    if (hasNoTables(db)) refuseBlankDatabase(path, dataDir, "empty (it holds no tables)", earlierUse);
    if (options.integrityCheck ?? true) assertIntact(db, path);
    const migrations = readMigrations(migrationsDir);
    // Before anything writes to the file: another program's database is left exactly as it was.
    assertDroversLedger(db, migrations);
    // Only a new file takes this (an existing one keeps its mode until a VACUUM): retention's
    // deletes can then give free pages back (releaseFreePages). It must precede WAL, which
    // writes the file's header.
    db.pragma("auto_vacuum = INCREMENTAL");
    // WAL with synchronous=FULL: every committed transition survives a power cut.
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = FULL");
    db.pragma("foreign_keys = ON");
    db.pragma("busy_timeout = 5000");
    const applied = migrate(db, migrations, options.migrationLog);
    return new SqliteStore(db, dataDir, migrations.length > 0 && applied.length === migrations.length);
  } catch (cause) {
    db?.close();
    if (cause instanceof StorageError) throw cause;
    const reason = (cause as Error).message;
    const code = (cause as { code?: string }).code ?? "";
    if (cause instanceof ForeignDatabaseError) throw foreignDatabaseError(path, reason, cause);
    if (code === "SQLITE_NOTADB") throw notADatabaseError(path, reason, cause);
    if (code.startsWith("SQLITE_CORRUPT") || /malformed/i.test(reason)) throw corruptError(path, reason, cause);
    if (code.startsWith("SQLITE_READONLY")) throw readOnlyError(path, undefined, cause);
    throw new StorageError(`database ${path} cannot be opened: ${reason}`, { cause });
  }
}

export class SqliteStore implements Store {
  private readonly statements: ReturnType<SqliteStore["prepareStatements"]>;
  private readonly retention: SqliteRetention;
  private readonly allGroupStatuses: ReturnType<typeof groupStatusStatements>;
  private readonly oneGroupStatus: ReturnType<typeof groupStatusStatements>;

  /**
   * @param dataDir the directory the database file is in, for free space and for messages.
   * @param created whether this open made the database (applied every migration to an empty
   *   file): nothing it knows can have run before.
   */
  constructor(
    private readonly db: Database,
    private readonly dataDir: string,
    readonly created = false,
  ) {
    this.statements = this.prepareStatements();
    this.retention = new SqliteRetention(db);
    this.allGroupStatuses = groupStatusStatements(db, false);
    this.oneGroupStatus = groupStatusStatements(db, true);
  }

  private prepareStatements() {
    const db = this.db;
    return {
      groupSpec: db.prepare(`SELECT g.name, g.revision, ${SPEC_COLUMNS}, ${IS_DELETION} AS deleting
        FROM groups g JOIN spec_revisions r ON r.group_name = g.name AND r.revision = g.revision
        WHERE g.name = ?`),
      insertDeletion: db.prepare(`INSERT INTO group_deletions (group_name, revision, requested_at) VALUES (?, ?, ?)`),
      waitingTasks: db.prepare(`SELECT ${TASK_COLUMNS} FROM tasks
        WHERE graph_id = ? AND state = 'pending' AND waiting IS NOT NULL AND waiting <> '' ORDER BY id LIMIT ?`).raw(true),
      nodesNotStopped: db.prepare(`SELECT COUNT(*) FROM nodes WHERE group_name = ? AND state <> 'stopped'`).pluck(),
      // Children before parents, as the foreign keys want; the group's events stay (see forgetGroup).
      forgetGroup: [
        `DELETE FROM tasks WHERE graph_id IN (SELECT id FROM graphs WHERE group_name = @group)`,
        `DELETE FROM compacted_graph_events WHERE graph_id IN (SELECT id FROM graphs WHERE group_name = @group)`,
        `DELETE FROM graphs WHERE group_name = @group`,
        `DELETE FROM group_deletions WHERE group_name = @group`,
        `DELETE FROM spec_revisions WHERE group_name = @group`,
        `DELETE FROM compacted_node_events WHERE group_name = @group`,
        `DELETE FROM groups WHERE name = @group`,
        `DELETE FROM group_templates WHERE group_name = @group`,
        `DELETE FROM nodes WHERE group_name = @group`,
      ].map((sql) => db.prepare(sql)),
      template: db.prepare(`SELECT template FROM group_templates WHERE group_name = ?`).pluck(),
      setTemplate: db.prepare(`INSERT INTO group_templates (group_name, template, updated_at) VALUES (?, ?, ?)
        ON CONFLICT (group_name) DO UPDATE SET template = excluded.template, updated_at = excluded.updated_at`),
      currentRevision: db.prepare(`SELECT revision FROM groups WHERE name = ?`).pluck(),
      groups: db.prepare(`SELECT name FROM groups ORDER BY name`).pluck(),
      revisions: db.prepare(`${REVISION_SELECT} WHERE r.group_name = ? ORDER BY r.revision DESC LIMIT ?`),
      revision: db.prepare(`${REVISION_SELECT} WHERE r.group_name = ? AND r.revision = ?`),
      // Every graph of the revisions listed, by the revision index: a crash loop's heals are
      // at most a few thousand a week, and retention deletes older ones.
      graphsOfRevisions: db.prepare(`SELECT id, revision, reason, state, paused_at, created_at FROM graphs
        WHERE group_name = ? AND revision BETWEEN ? AND ? ORDER BY revision DESC, id DESC`),
      // A deletion (one cancelled by a later update) is nothing to roll back to.
      lastReachedRevision: db.prepare(`${REVISION_SELECT}
        WHERE r.group_name = ? AND r.revision < ? AND (g.id IS NULL OR g.state = 'succeeded') AND NOT ${IS_DELETION}
        ORDER BY r.revision DESC LIMIT 1`),
      liveNodes: db.prepare(`SELECT ${NODE_COLUMNS} FROM nodes WHERE group_name = ? AND state IN ${LIVE_NODE_STATES} ORDER BY created_at, id`).raw(true),
      allNodes: db.prepare(`SELECT ${NODE_COLUMNS} FROM nodes WHERE group_name = ? ORDER BY created_at, id`).raw(true),
      maxSequence: db.prepare(`SELECT COALESCE(MAX(sequence), 0) FROM events`).pluck(),
      upsertGroup: db.prepare(`INSERT INTO groups (name, revision) VALUES (?, 1)
        ON CONFLICT (name) DO UPDATE SET revision = revision + 1 RETURNING revision`).pluck(),
      insertRevision: db.prepare(`INSERT INTO spec_revisions (group_name, revision, count, version, max_surge,
        max_unavailable, on_failure, task_timeout_ms, progress_deadline_ms, cpu_millis, memory_mb, reason, restores, created_at,
        template, template_hash, min_ready_ms, canary, auto_promote_after_ms, max_surge_percent, max_unavailable_percent)
        VALUES (@group, @revision, @count, @version, @maxSurge, @maxUnavailable, @onFailure, @taskTimeoutMs,
        @progressDeadlineMs, @cpuMillis, @memoryMb, @reason, @restores, @now, @template, @templateHash, @minReadyMs, @canary,
        @autoPromoteAfterMs, @maxSurgePercent, @maxUnavailablePercent)`),
      node: db.prepare(`SELECT ${NODE_COLUMNS} FROM nodes WHERE id = ?`).raw(true),
      countNodes: db.prepare(`SELECT group_name AS "group", state, version, COUNT(*) AS count FROM nodes
        WHERE state <> 'stopped' GROUP BY group_name, state, version`),
      ping: db.prepare(`SELECT COUNT(*) FROM schema_migrations`).pluck(),
      probeWrite: db.prepare(`INSERT INTO storage_probe (id, written_at) VALUES (1, ?)
        ON CONFLICT (id) DO UPDATE SET written_at = excluded.written_at`),
      unsettledOfGroup: db.prepare(`SELECT id FROM graphs WHERE group_name = ? AND state IN ('pending', 'running')`).pluck(),
      openTasks: db.prepare(`SELECT id, action, node_id FROM tasks WHERE graph_id = ? AND state IN ('pending', 'running')`).raw(true),
      startAttempts: db.prepare(`SELECT COALESCE(SUM(attempts), 0) FROM tasks WHERE action = 'start_node' AND node_id = ?`).pluck(),
      reservations: db.prepare(`SELECT COALESCE(SUM(r.count * r.cpu_millis), 0) AS cpu, COALESCE(SUM(r.count * r.memory_mb), 0) AS memory
        FROM groups g JOIN spec_revisions r ON r.group_name = g.name AND r.revision = g.revision WHERE g.name <> ?`),
      insertGraph: db.prepare(`INSERT INTO graphs (id, group_name, revision, state, reason, created_at, message)
        VALUES (?, ?, ?, 'pending', ?, ?, ?)`),
      // Three shapes of one insert, so that the common ones bind only six values: binding the
      // three more every row cost a quarter of storing a 200,001-task graph (1,741 ms against 2,226).
      insertTask: db.prepare(`INSERT INTO tasks (graph_id, id, action, prerequisites, node_id, version, state)
        VALUES (?, ?, ?, ?, ?, ?, 'pending')`),
      insertGatedTask: db.prepare(`INSERT INTO tasks (graph_id, id, action, prerequisites, node_id, version, state, gated)
        VALUES (?, ?, ?, ?, ?, ?, 'pending', 1)`),
      insertTaskWithRevision: db.prepare(`INSERT INTO tasks (graph_id, id, action, prerequisites, node_id, version, state, revision,
        template_hash, gated)
        VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?)`),
      graph: db.prepare(`SELECT ${GRAPH_COLUMNS} FROM ${GRAPH_FROM} WHERE g.id = ?`),
      graphs: db.prepare(`SELECT ${GRAPH_COLUMNS} FROM ${GRAPH_FROM} WHERE g.group_name = ? ORDER BY g.id DESC LIMIT ?`),
      unsettledGraphs: db.prepare(`SELECT ${GRAPH_COLUMNS} FROM ${GRAPH_FROM} WHERE g.state IN ('pending', 'running') ORDER BY g.id`),
      unsettledGraphsOf: db.prepare(`SELECT ${GRAPH_COLUMNS} FROM ${GRAPH_FROM} WHERE g.state IN ('pending', 'running') AND g.group_name = ?
        ORDER BY g.id`),
      latestGraphId: db.prepare(`SELECT id FROM graphs WHERE group_name = ? ORDER BY id DESC LIMIT 1`).pluck(),
      // By the index of unsettled graphs (the `+` keeps SQLite off the group's index): a group
      // may have thousands of settled graphs, the whole server only a few unsettled ones.
      currentGraphId: db.prepare(`SELECT id FROM graphs WHERE +group_name = ? AND state IN ('pending', 'running')
        ORDER BY reason = 'heal', id DESC LIMIT 1`).pluck(),
      // A range on the primary key: ids that begin with the prefix sort between it and the
      // prefix followed by '~', above every character of an id.
      graphsMatching: db.prepare(`SELECT id, group_name AS "group" FROM graphs
        WHERE id >= @prefix AND id < @prefix || '~' AND (@suffix = '' OR substr(id, -length(@suffix)) = @suffix)
        ORDER BY id LIMIT @limit`),
      nodesMatching: db.prepare(`SELECT id, group_name AS "group" FROM nodes
        WHERE id >= @prefix AND id < @prefix || '~' AND (@suffix = '' OR substr(id, -length(@suffix)) = @suffix)
        ORDER BY id LIMIT @limit`),
      latestRolloutGraphId: db.prepare(`SELECT id FROM graphs WHERE group_name = ? AND reason IN ('update', 'repair')
        ORDER BY id DESC LIMIT 1`).pluck(),
      eventsOfNode: db.prepare(`SELECT * FROM (SELECT ${EVENT_COLUMNS} FROM events
        WHERE group_name = ? AND type = 'node' AND node_id = ? ORDER BY sequence DESC LIMIT ?) ORDER BY sequence`).raw(true),
      recentTaskDurations: db.prepare(`SELECT t.finished_at - t.started_at FROM graphs g JOIN tasks t ON t.graph_id = g.id
        WHERE g.group_name = ? AND t.action = ? AND t.state = 'succeeded' AND t.attempts = 1 AND t.started_at IS NOT NULL
        ORDER BY g.id DESC, t.finished_at DESC LIMIT ?`).pluck(),
      taskCounts: db.prepare(`SELECT state, COUNT(*) AS n FROM tasks WHERE graph_id = ? GROUP BY state`),
      tasks: db.prepare(`SELECT ${TASK_COLUMNS} FROM tasks WHERE graph_id = ? ORDER BY id`).raw(true),
      graphEvents: db.prepare(`SELECT ${EVENT_COLUMNS} FROM events WHERE graph_id = ? AND sequence > ? AND sequence < ? ORDER BY sequence LIMIT ?`).raw(true),
      nodeEvents: db.prepare(`SELECT ${EVENT_COLUMNS} FROM events WHERE group_name = ? AND type = 'node' AND sequence > ? ORDER BY sequence LIMIT ?`).raw(true),
      insertEvent: db.prepare(`INSERT INTO events
        (time, type, group_name, graph_id, task_id, node_id, state, action, version, attempt, error, retry_delay_ms,
        message, next_graph_id)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
      graphRunning: db.prepare(`UPDATE graphs SET state = 'running', started_at = COALESCE(started_at, ?), paused_at = NULL
        WHERE id = ?`),
      graphPaused: db.prepare(`UPDATE graphs SET paused_at = ? WHERE id = ?`),
      graphSettled: db.prepare(`UPDATE graphs SET state = ?, finished_at = ?, error = ?, message = ?, next_graph_id = ? WHERE id = ?`),
      taskRunning: db.prepare(`UPDATE tasks SET state = 'running', attempts = ?, started_at = COALESCE(started_at, ?),
        node_id = COALESCE(?, node_id), error = NULL, waiting = NULL WHERE graph_id = ? AND id = ?`),
      taskWaiting: db.prepare(`UPDATE tasks SET waiting = ? WHERE graph_id = ? AND id = ?`),
      taskSettled: db.prepare(`UPDATE tasks SET state = ?, finished_at = ?, error = ?, node_id = COALESCE(?, node_id),
        waiting = NULL WHERE graph_id = ? AND id = ?`),
      taskRetry: db.prepare(`UPDATE tasks SET state = 'pending', error = ? WHERE graph_id = ? AND id = ?`),
      graphRetried: db.prepare(`UPDATE graphs SET retries = retries + 1 WHERE id = ?`),
      upsertNode: db.prepare(`INSERT INTO nodes (id, group_name, version, state, host, created_at, updated_at, error, revision,
        template_hash, exit_status)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at,
          -- A failed node that is then stopped keeps why it failed: its last state's story.
          error = CASE WHEN excluded.state = 'stopped' THEN COALESCE(excluded.error, error) ELSE excluded.error END,
          revision = COALESCE(excluded.revision, revision), template_hash = COALESCE(excluded.template_hash, template_hash),
          exit_status = COALESCE(excluded.exit_status, exit_status)`),
    };
  }

  async getGroupSpec(group: string): Promise<GroupSpec | undefined> {
    const row = this.statements.groupSpec.get(group) as (SpecColumns & { name: string; revision: number; deleting: number }) | undefined;
    if (!row) return undefined;
    return { group: row.name, revision: row.revision, spec: toSpec(row), deleting: row.deleting === 1 };
  }

  async listGroupStatuses(): Promise<GroupStatus[]> {
    return this.readGroupStatuses(this.allGroupStatuses, {});
  }

  async getGroupStatus(group: string): Promise<GroupStatus | undefined> {
    return this.readGroupStatuses(this.oneGroupStatus, { group })[0];
  }

  /** The statuses the statements read, in one read transaction so that they agree. */
  private readGroupStatuses(statements: ReturnType<typeof groupStatusStatements>, parameters: { group?: string }): GroupStatus[] {
    return this.db.transaction(() => {
      const statuses = new Map<string, GroupStatus>();
      for (const row of statements.specs.all(parameters) as GroupStatusRow[]) {
        statuses.set(row.name, {
          group: row.name,
          revision: row.revision,
          spec: toSpec(row),
          deleting: row.deleting === 1,
          createdAt: row.created_at,
          updatedAt: row.updated_at,
          nodes: { total: 0, upToDate: 0, available: 0, failed: 0 },
          waitingTasks: 0,
        });
      }
      type NodeCountRow = [group: string, state: NodeState, version: number, templateHash: string | null, count: number];
      for (const [group, state, version, templateHash, count] of statements.nodeCounts.all(parameters) as NodeCountRow[]) {
        const status = statuses.get(group);
        if (!status) continue;
        if (state === "failed") {
          status.nodes.failed += count;
          continue;
        }
        status.nodes.total += count;
        if (state === "running") status.nodes.available += count;
        // As the planner judges a node outdated: another version, or another template (a node with no hash predates them).
        if (version === status.spec.version && (templateHash === null || templateHash === (status.spec.templateHash ?? ""))) status.nodes.upToDate += count;
      }
      const counts = new Map<string, { counts: TaskCounts; waiting: number }>();
      type TaskCountRow = [graphId: string, state: TaskState, count: number, waiting: number];
      for (const [graphId, state, count, waiting] of statements.taskCounts.all(parameters) as TaskCountRow[]) {
        let entry = counts.get(graphId);
        if (!entry) counts.set(graphId, (entry = { counts: emptyCounts(), waiting: 0 }));
        entry.counts[state] = count;
        entry.counts.total += count;
        entry.waiting += waiting;
      }
      for (const row of statements.graphs.all(parameters) as GraphRow[]) {
        const status = statuses.get(row.group_name);
        if (!status) continue;
        const entry = counts.get(row.id);
        status.graph = toGraph(row, entry?.counts ?? emptyCounts());
        status.waitingTasks = entry?.waiting ?? 0;
      }
      return [...statuses.values()];
    })();
  }

  async waitingTasks(graphId: string, limit: number): Promise<Task[]> {
    return (this.statements.waitingTasks.all(graphId, limit) as TaskRow[]).map(toTask);
  }

  /**
   * One transaction, however large the group: never half a group. Measured here (2 busy shared
   * cores): a group with a 100,000-task graph and 100,000 stopped nodes is forgotten in 221 ms,
   * one pause of the writer per deletion (its status reads in 85 ms, as a getGraph of it does).
   */
  async forgetGroup(input: GroupForgetting): Promise<{ forgotten: boolean; events: Event[] }> {
    const s = this.statements;
    return this.db.transaction(() => {
      const events = this.insertEvents(input.settle, input.now);
      const current = s.currentRevision.get(input.group) as number | undefined;
      if (current !== input.revision || (s.nodesNotStopped.get(input.group) as number) > 0) return { forgotten: false, events };
      for (const statement of s.forgetGroup) statement.run({ group: input.group });
      return { forgotten: true, events };
    })();
  }

  async listNodes(group: string, options: { all: boolean }): Promise<Node[]> {
    const statement = options.all ? this.statements.allNodes : this.statements.liveNodes;
    return mapRows(statement.iterate(group) as IterableIterator<NodeRow>, toNode);
  }

  async snapshotNodes(group: string): Promise<{ nodes: Node[]; sequence: number }> {
    return this.db.transaction(() => ({
      nodes: mapRows(this.statements.liveNodes.iterate(group) as IterableIterator<NodeRow>, toNode),
      sequence: this.statements.maxSequence.get() as number,
    }))();
  }

  async storeRevision(input: NewRevision): Promise<StoredRevision> {
    const { group, spec, graph, now } = input;
    const s = this.statements;
    return this.db.transaction((): StoredRevision => {
      if (input.expectRevision !== undefined) {
        const current = (s.currentRevision.get(group) as number | undefined) ?? 0;
        if (current !== input.expectRevision) {
          throw new FailedPreconditionError(
            `group ${group} is at revision ${current}, not the expected ${input.expectRevision}: look at 'client history' and update again`,
          );
        }
      }
      const settled = input.settle ? this.insertEvents(input.settle, now) : [];
      const revision = s.upsertGroup.get(group) as number;
      const bounds = resolveRolloutBounds(spec);
      s.insertRevision.run({
        group,
        revision,
        count: spec.count,
        version: spec.version,
        ...bounds,
        maxSurgePercent: percentOf(spec.maxSurge) ?? null,
        maxUnavailablePercent: percentOf(spec.maxUnavailable) ?? null,
        onFailure: spec.onFailure ?? "stop",
        taskTimeoutMs: spec.taskTimeoutMs ?? 0,
        progressDeadlineMs: spec.progressDeadlineMs ?? 0,
        cpuMillis: spec.cpuMillis ?? 0,
        memoryMb: spec.memoryMb ?? 0,
        template: spec.template === undefined ? null : JSON.stringify(spec.template),
        templateHash: spec.templateHash ?? "",
        minReadyMs: spec.minReadyMs ?? 0,
        canary: spec.canary ?? 0,
        autoPromoteAfterMs: spec.autoPromoteAfterMs ?? 0,
        // A deletion is recorded beside the revision (see migration 012).
        reason: input.reason === "delete" ? "update" : (input.reason ?? "update"),
        restores: input.restores ?? null,
        now,
      });
      if (input.reason === "delete") s.insertDeletion.run(group, revision, now);
      const superseded = this.supersedeStranded(group, input.liveGraphs, graph?.id, `spec revision ${revision}`, now);
      if (!graph) return { revision, events: [...settled, ...superseded] };
      const inserted = this.insertGraph(group, revision, "update", graph, now, undefined);
      return { revision, graph: inserted.graph, events: [...settled, ...superseded, ...inserted.events] };
    })();
  }

  async storeGraph(input: NewGraph): Promise<StoredRevision> {
    return this.db.transaction((): StoredRevision => {
      const by = `graph ${input.graph.id} (${graphReasonInWords[input.reason]})`;
      const superseded = this.supersedeStranded(input.group, input.liveGraphs, input.graph.id, by, input.now);
      const inserted = this.insertGraph(input.group, input.revision, input.reason, input.graph, input.now, input.message);
      return { revision: input.revision, graph: inserted.graph, events: [...superseded, ...inserted.events] };
    })();
  }

  /**
   * Supersedes the group's unsettled graphs that no run works on (not in `live`): their open
   * tasks are cancelled and the graph ends, pointing at `next`, its error naming what
   * superseded it (`by`: "spec revision 4"). Call inside a transaction.
   */
  private supersedeStranded(group: string, live: readonly string[], next: string | undefined, by: string, now: number): Event[] {
    const stranded = (this.statements.unsettledOfGroup.all(group) as string[]).filter((id) => !live.includes(id));
    if (stranded.length === 0) return [];
    const transitions: Transition[] = [];
    for (const graphId of stranded) {
      for (const [taskId, action, nodeId] of this.statements.openTasks.all(graphId) as [number, TaskAction, string | null][]) {
        transitions.push({ type: "task", graphId, group, taskId, action, state: "cancelled", nodeId: nodeId ?? undefined });
      }
      transitions.push({
        type: "graph",
        graphId,
        group,
        state: "superseded",
        error: `superseded by ${by}: no run was working on it`,
        nextGraphId: next,
      });
    }
    return this.insertEvents(transitions, now);
  }

  async getNode(nodeId: string): Promise<Node | undefined> {
    const row = this.statements.node.get(nodeId) as NodeRow | undefined;
    return row && toNode(row);
  }

  async countNodes() {
    return this.statements.countNodes.all() as { group: string; state: NodeState; version: number; count: number }[];
  }

  async ping(): Promise<void> {
    this.statements.ping.get();
  }

  async probeWrite(now: number): Promise<void> {
    this.statements.probeWrite.run(now);
  }

  freeSpace(): { path: string; bytes: number } | undefined {
    try {
      const stats = statfsSync(this.dataDir);
      return { path: this.dataDir, bytes: stats.bavail * stats.bsize };
    } catch {
      return undefined;
    }
  }

  describeFault(error: unknown): StorageFault | undefined {
    const code = (error as { code?: unknown } | undefined)?.code;
    if (typeof code !== "string") return undefined;
    const path = join(this.dataDir, DATABASE_FILE);
    const free = this.freeSpace();
    const freeText = free ? `${formatBytes(free.bytes)} free in ${free.path}` : `free space in ${this.dataDir} unknown`;
    if (code === "SQLITE_FULL" || code === "ENOSPC" || code === "SQLITE_IOERR_WRITE" && free !== undefined && free.bytes < LOW_SPACE_BYTES) {
      return { kind: "full", retryable: true, message: `the database's disk is full (${code}): ${freeText}: free space there` };
    }
    if (code.startsWith("SQLITE_IOERR") || code === "EIO") {
      return { kind: "io", retryable: true, message: `the database's disk failed an operation on ${path} (${code}), ${freeText}: check the disk and the kernel log` };
    }
    if (code.startsWith("SQLITE_READONLY") || code === "EROFS") {
      return {
        kind: "read_only",
        retryable: true,
        message: `the database ${path} cannot be written (${code}): check that the server's user owns the file and its directory and that the mount is writable`,
      };
    }
    if (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED")) {
      return { kind: "busy", retryable: true, message: `the database ${path} is locked by another process (${code}): stop whatever else opened it` };
    }
    if (code.startsWith("SQLITE_CORRUPT") || code === "SQLITE_NOTADB") {
      return {
        kind: "corrupt",
        retryable: false,
        message: `the database ${path} is corrupt (${code}): writes are stopped; stop the server, keep the node processes running, and restore the database from a backup`,
      };
    }
    return undefined;
  }

  async startAttempts(nodeId: string): Promise<number> {
    return this.statements.startAttempts.get(nodeId) as number;
  }

  async reservedByOtherGroups(group: string): Promise<{ cpuMillis: number; memoryMb: number }> {
    const row = this.statements.reservations.get(group) as { cpu: number; memory: number };
    return { cpuMillis: row.cpu, memoryMb: row.memory };
  }

  /** Inserts a graph and its tasks, pending; call inside a transaction. */
  private insertGraph(
    group: string,
    revision: number,
    reason: GraphReason,
    graph: { id: string; tasks: readonly PlannedTask[] },
    now: number,
    message: string | undefined,
  ) {
    const s = this.statements;
    {
      s.insertGraph.run(graph.id, group, revision, reason, now, message ?? null);
      for (const task of graph.tasks) {
        const prerequisites = JSON.stringify(task.prerequisites);
        if (task.revision !== undefined || task.templateHash !== undefined) {
          s.insertTaskWithRevision.run(graph.id, task.id, task.action, prerequisites, task.nodeId ?? null, task.version ?? null,
            task.revision ?? null, task.templateHash ?? null, task.gated ? 1 : 0);
        } else {
          (task.gated ? s.insertGatedTask : s.insertTask).run(graph.id, task.id, task.action, prerequisites, task.nodeId ?? null, task.version ?? null);
        }
      }
      const events = this.insertEvents([{ type: "graph", graphId: graph.id, group, state: "pending" }], now);
      // The rows just written, without reading them back (a tenth of the time for a large graph).
      const tasks = graph.tasks.map(pendingTask);
      const counts = { ...emptyCounts(), total: tasks.length, pending: tasks.length };
      const stored = toGraph(s.graph.get(graph.id) as GraphRow, counts);
      return { graph: { ...stored, tasks }, events };
    }
  }

  async listRevisions(group: string, limit: number): Promise<Revision[]> {
    return this.db.transaction(() => {
      const revisions = (this.statements.revisions.all(group, limit) as RevisionRow[]).map(toRevision);
      if (revisions.length === 0) return revisions;
      const byNumber = new Map(revisions.map((revision) => [revision.revision, { ...revision, graphs: [] as RevisionGraph[], graphCount: 0 }]));
      const rows = this.statements.graphsOfRevisions.iterate(group, revisions.at(-1)!.revision, revisions[0]!.revision) as IterableIterator<{
        id: string;
        revision: number;
        reason: GraphReason;
        state: GraphState;
        paused_at: number | null;
        created_at: number;
      }>;
      for (const row of rows) {
        const revision = byNumber.get(row.revision)!;
        revision.graphCount++;
        if (revision.graphs.length >= REVISION_GRAPHS_LISTED) continue;
        const state = row.paused_at !== null && row.state === "running" ? "paused" : row.state;
        revision.graphs.push({ id: row.id, reason: row.reason, state, createdAt: row.created_at });
      }
      return [...byNumber.values()];
    })();
  }

  async getRevision(group: string, revision: number): Promise<Revision | undefined> {
    const row = this.statements.revision.get(group, revision) as RevisionRow | undefined;
    return row && toRevision(row);
  }

  async lastReachedRevision(group: string, before: number): Promise<Revision | undefined> {
    const row = this.statements.lastReachedRevision.get(group, before) as RevisionRow | undefined;
    return row && toRevision(row);
  }

  async listGroups(): Promise<string[]> {
    return this.statements.groups.all() as string[];
  }

  async getTemplate(group: string): Promise<NodeTemplate | undefined> {
    const text = this.statements.template.get(group) as string | undefined;
    return text === undefined ? undefined : (JSON.parse(text) as NodeTemplate);
  }

  async setTemplate(group: string, template: NodeTemplate, now: number): Promise<void> {
    this.statements.setTemplate.run(group, JSON.stringify(template), now);
  }

  private countTasks(graphId: string): TaskCounts {
    const counts = emptyCounts();
    for (const { state, n } of this.statements.taskCounts.all(graphId) as { state: TaskState; n: number }[]) {
      counts[state] = n;
      counts.total += n;
    }
    return counts;
  }

  async getGraph(graphId: string): Promise<GraphSummary | undefined> {
    const row = this.statements.graph.get(graphId) as GraphRow | undefined;
    return row && toGraph(row, this.countTasks(graphId));
  }

  snapshotGraph(graphId: string): Promise<{ graph: GraphSummary; tasks: Task[]; sequence: number } | undefined>;
  snapshotGraph<T>(graphId: string, mapTask: (task: Task) => T): Promise<{ graph: GraphSummary; tasks: T[]; sequence: number } | undefined>;
  async snapshotGraph<T>(graphId: string, mapTask?: (task: Task) => T) {
    return this.db.transaction(() => {
      const row = this.statements.graph.get(graphId) as GraphRow | undefined;
      if (!row) return undefined;
      const counts = emptyCounts();
      const tasks: (T | Task)[] = [];
      for (const taskRow of this.statements.tasks.iterate(graphId) as IterableIterator<TaskRow>) {
        const task = toTask(taskRow);
        counts[task.state]++;
        tasks.push(mapTask ? mapTask(task) : task);
      }
      counts.total = tasks.length;
      return { graph: toGraph(row, counts), tasks, sequence: this.statements.maxSequence.get() as number };
    })();
  }

  async listGraphs(group: string, limit: number): Promise<GraphSummary[]> {
    return (this.statements.graphs.all(group, limit) as GraphRow[]).map((row) => toGraph(row, this.countTasks(row.id)));
  }

  async latestGraphId(group: string): Promise<string | undefined> {
    return this.statements.latestGraphId.get(group) as string | undefined;
  }

  async currentGraph(group: string): Promise<GraphSummary | undefined> {
    const id = this.statements.currentGraphId.get(group) as string | undefined;
    return id === undefined ? undefined : this.getGraph(id);
  }

  async idsMatching(kind: "graph" | "node", prefix: string, suffix: string, limit: number): Promise<{ id: string; group: string }[]> {
    const statement = kind === "graph" ? this.statements.graphsMatching : this.statements.nodesMatching;
    return statement.all({ prefix, suffix, limit }) as { id: string; group: string }[];
  }

  async latestRolloutGraph(group: string): Promise<GraphSummary | undefined> {
    const id = this.statements.latestRolloutGraphId.get(group) as string | undefined;
    return id === undefined ? undefined : this.getGraph(id);
  }

  async eventsOfNode(nodeId: string, limit: number): Promise<Event[]> {
    const node = this.statements.node.get(nodeId) as NodeRow | undefined;
    if (!node) return [];
    return (this.statements.eventsOfNode.all(node[1], nodeId, limit) as unknown[][]).map(toEvent);
  }

  async recentTaskDurations(group: string, action: TaskAction, limit: number): Promise<number[]> {
    return this.statements.recentTaskDurations.all(group, action, limit) as number[];
  }

  async unsettledGraphs(group?: string): Promise<GraphWithTasks[]> {
    const rows = () => (group === undefined ? this.statements.unsettledGraphs.all() : this.statements.unsettledGraphsOf.all(group)) as GraphRow[];
    return this.db.transaction(() =>
      rows().map((row) => {
        const tasks = mapRows(this.statements.tasks.iterate(row.id) as IterableIterator<TaskRow>, toTask);
        return { ...toGraph(row, emptyCounts()), tasks };
      }),
    )();
  }

  async apply(transitions: readonly Transition[], now: number): Promise<Event[]> {
    return this.db.transaction(() => this.insertEvents(transitions, now))();
  }

  /** Applies each transition to its row and appends its event; call inside a transaction. */
  private insertEvents(transitions: readonly Transition[], now: number): Event[] {
    const s = this.statements;
    const events: Event[] = [];
    for (const t of transitions) {
      let event: Event;
      switch (t.type) {
        case "graph":
          if (t.state === "running") s.graphRunning.run(now, t.graphId);
          else if (t.state === "paused") s.graphPaused.run(now, t.graphId);
          else if (t.state !== "pending") s.graphSettled.run(t.state, now, t.error ?? null, t.message ?? null, t.nextGraphId ?? null, t.graphId);
          event = { sequence: 0, time: now, type: t.type, group: t.group, graphId: t.graphId, state: t.state, error: t.error, message: t.message, nextGraphId: t.nextGraphId };
          break;
        case "task":
          if (t.state === "running") s.taskRunning.run(t.attempt ?? 1, now, t.nodeId ?? null, t.graphId, t.taskId);
          else if (t.state === "pending") s.taskWaiting.run(t.waiting ?? null, t.graphId, t.taskId);
          else s.taskSettled.run(t.state, now, t.error ?? null, t.nodeId ?? null, t.graphId, t.taskId);
          event = {
            sequence: 0,
            time: now,
            type: t.type,
            group: t.group,
            graphId: t.graphId,
            taskId: t.taskId,
            action: t.action,
            state: t.state,
            attempt: t.attempt,
            error: t.error,
            nodeId: t.nodeId,
            version: t.version,
            message: t.message,
          };
          break;
        case "task_retry":
          s.taskRetry.run(t.error, t.graphId, t.taskId);
          s.graphRetried.run(t.graphId);
          event = {
            sequence: 0,
            time: now,
            type: t.type,
            group: t.group,
            graphId: t.graphId,
            taskId: t.taskId,
            action: t.action,
            state: "pending",
            attempt: t.attempt,
            error: t.error,
            retryDelayMs: t.retryDelayMs,
            nodeId: t.nodeId,
          };
          break;
        case "node":
          s.upsertNode.run(t.nodeId, t.group, t.version, t.state, t.host, now, now, t.error ?? null, t.revision ?? null,
            t.templateHash ?? null, t.exitStatus ?? null);
          // Node events belong to the group's node stream, not to the graph's task stream.
          event = { sequence: 0, time: now, type: t.type, group: t.group, nodeId: t.nodeId, state: t.state, version: t.version, error: t.error };
          break;
      }
      // Positional parameters: this runs for every transition, and named ones cost an object each.
      const result = s.insertEvent.run(
        event.time,
        event.type,
        event.group,
        event.graphId ?? null,
        event.taskId ?? null,
        event.nodeId ?? null,
        event.state ?? null,
        event.action ?? null,
        event.version ?? null,
        event.attempt ?? null,
        event.error ?? null,
        event.retryDelayMs ?? null,
        event.message ?? null,
        event.nextGraphId ?? null,
      );
      event.sequence = Number(result.lastInsertRowid);
      events.push(event);
    }
    return events;
  }

  async graphEvents(graphId: string, afterSequence: number, limit: number, beforeSequence = Number.MAX_SAFE_INTEGER): Promise<Event[]> {
    return (this.statements.graphEvents.all(graphId, afterSequence, beforeSequence, limit) as unknown[][]).map(toEvent);
  }

  async nodeEvents(group: string, afterSequence: number, limit: number): Promise<Event[]> {
    return (this.statements.nodeEvents.all(group, afterSequence, limit) as unknown[][]).map(toEvent);
  }

  async compactEvents(period: RetentionPeriod, afterSequence: number, limit: number): Promise<EventCompactionStep> {
    return this.retention.compactEvents(period, afterSequence, limit);
  }

  async expireGraphs(cutoff: number, afterGraphId: string, limit: number): Promise<GraphExpiryStep> {
    return this.retention.expireGraphs(cutoff, afterGraphId, limit);
  }

  async expireStoppedNodes(cutoff: number, limit: number): Promise<string[]> {
    return this.retention.expireStoppedNodes(cutoff, limit);
  }

  async unknownNodeIds(nodeIds: readonly string[]): Promise<string[]> {
    return this.retention.unknownNodeIds(nodeIds);
  }

  async releaseFreePages(pages: number): Promise<{ released: number; free: number }> {
    return this.retention.releaseFreePages(pages);
  }

  async graphEventsCompactedThrough(graphId: string): Promise<number> {
    return this.retention.graphEventsCompactedThrough(graphId);
  }

  async nodeEventsCompactedThrough(group: string): Promise<number> {
    return this.retention.nodeEventsCompactedThrough(group);
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}
