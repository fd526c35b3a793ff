import { NodeCensus } from "../src/scheduler/NodeCensus.js";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { pino } from "pino";
import { monotonicFactory } from "ulid";
import { DroverServiceDefinition, type DroverServiceClient } from "@drover/shared";
import { ClientError, createChannel, createClient, Status } from "nice-grpc";
import { systemClock } from "../src/clock.js";
import { DroverServer, type DroverServerOptions } from "../src/DroverServer.js";
import { MockDriver, type MockDriverOptions } from "../src/drivers/MockDriver.js";
import type { Driver, NodeHandle } from "../src/drivers/Driver.js";
import { EventBus } from "../src/events/EventBus.js";
import { Journal } from "../src/events/Journal.js";
import { noFailpoints } from "../src/failpoints.js";
import { Scheduler } from "../src/scheduler/Scheduler.js";
import { openSqliteStore, type SqliteStore } from "../src/store/SqliteStore.js";
import type { Store } from "../src/store/Store.js";

export const MIGRATIONS_DIR = fileURLToPath(new URL("../../../migrations/", import.meta.url));
export const silentLogger = pino({ level: "silent" });

/** A fresh data directory, removed when the test ends. */
export function temporaryDataDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), "drover-test-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export function openTestStore(t: { after: (fn: () => void) => void }, dir = temporaryDataDir(t)): SqliteStore {
  const store = openSqliteStore(dir, MIGRATIONS_DIR);
  t.after(() => void store.close());
  return store;
}

/**
 * A driver for scheduler tests: each call waits `latencyMs`, fails while `failures` says so,
 * and records how many calls ran at once and in what order they finished.
 */
export class RecordingDriver implements Driver {
  readonly name = "recording";
  readonly host = "test-host";
  inFlight = 0;
  maxInFlight = 0;
  readonly calls: { op: "start" | "stop"; nodeId: string }[] = [];
  readonly started = new Set<string>();
  /** How many more times each node id's calls fail; "always" fails every call. */
  failures = new Map<string, number | "always">();
  failEveryStart = false;
  /** How many of the next calls fail, whatever their node. */
  failNextCalls = 0;

  constructor(private readonly latencyMs = 5) {}

  async start(node: NodeHandle, signal: AbortSignal) {
    await this.call("start", node, signal);
    this.started.add(node.id);
  }

  async stop(node: NodeHandle, signal: AbortSignal) {
    await this.call("stop", node, signal);
    this.started.delete(node.id);
  }

  async inspect(node: NodeHandle) {
    return this.started.has(node.id) ? ("running" as const) : ("stopped" as const);
  }

  onNodeFailure() {}

  async kill() {
    return false;
  }

  stats() {
    return undefined;
  }

  logFile() {
    return undefined;
  }

  async strays() {
    return [];
  }

  async sweep() {
    return [];
  }

  async nodesWithFiles() {
    return [];
  }

  async removeNodeFiles() {
    return [];
  }

  close() {}

  private async call(op: "start" | "stop", node: NodeHandle, signal: AbortSignal) {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      await systemClock.sleep(this.latencyMs, signal);
      this.calls.push({ op, nodeId: node.id });
      const left = this.failures.get(node.id);
      if (this.failNextCalls > 0) {
        this.failNextCalls--;
        throw new Error(`planned failure of ${op} ${node.id}`);
      }
      if ((op === "start" && this.failEveryStart) || left === "always" || (typeof left === "number" && left > 0)) {
        if (typeof left === "number") this.failures.set(node.id, left - 1);
        throw new Error(`planned failure of ${op} ${node.id}`);
      }
    } finally {
      this.inFlight--;
    }
  }
}

export function testScheduler(
  store: SqliteStore,
  driver: Driver,
  options: { parallelism?: number; maxAttempts?: number; taskTimeoutMs?: number; progressDeadlineMs?: number; retryBaseDelayMs?: number } = {},
) {
  const bus = new EventBus();
  const journal = new Journal({ store, bus, now: () => Date.now() });
  const newId = monotonicFactory();
  const census = new NodeCensus((group) => store.snapshotNodes(group));
  bus.listen(census.observe);
  const scheduler = new Scheduler({
    census,
    journal,
    driver,
    clock: systemClock,
    newId: () => newId(),
    logger: silentLogger,
    failpoint: noFailpoints,
    parallelism: options.parallelism ?? 4,
    maxAttempts: options.maxAttempts ?? 3,
    retryBaseDelayMs: options.retryBaseDelayMs ?? 1,
    retryMaxDelayMs: Math.max(5, options.retryBaseDelayMs ?? 1),
    taskTimeoutMs: options.taskTimeoutMs ?? 60_000,
    progressDeadlineMs: options.progressDeadlineMs ?? 60_000,
  });
  return { scheduler, journal, bus, newId: () => newId() };
}

export interface TestServer {
  server: DroverServer;
  client: DroverServiceClient;
  driver: MockDriver;
  dataDir: string;
  stop: () => Promise<void>;
}

/**
 * A real server on a free port, with a fresh data dir and the simulated driver. The
 * caller stops it (`stop`), which also removes the data dir.
 */
export async function startTestServer(
  options: {
    driver?: Partial<MockDriverOptions>;
    server?: Partial<DroverServerOptions>;
    dataDir?: string;
    /** Puts something in front of the real store (a delay, a fault) that the server then uses. */
    wrapStore?: (store: SqliteStore) => Store;
  } = {},
): Promise<TestServer> {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), "drover-test-"));
  const sqlite = openSqliteStore(dataDir, MIGRATIONS_DIR);
  const store = options.wrapStore ? options.wrapStore(sqlite) : sqlite;
  const driver = new MockDriver({ latency: { min: 5, max: 20 }, failureRate: 0, seed: 7, clock: systemClock, ...options.driver });
  const server = new DroverServer({
    store,
    driver,
    clock: systemClock,
    logger: silentLogger,
    listen: "127.0.0.1:0",
    parallelism: 4,
    maxAttempts: 3,
    retryBaseDelayMs: 5,
    retryMaxDelayMs: 20,
    taskTimeoutMs: 60_000,
    progressDeadlineMs: 60_000,
    reconcileIntervalMs: 60_000,
    watcherCapacity: 10_000,
    ...options.server,
  });
  await server.start();
  const client = createClient(DroverServiceDefinition, createChannel(`127.0.0.1:${server.port}`));
  return {
    server,
    client,
    driver,
    dataDir,
    stop: async () => {
      await server.stop();
      if (!options.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Reads a stream to its end. */
export async function drain<T>(stream: AsyncIterable<T>): Promise<T[]> {
  const messages: T[] = [];
  for await (const message of stream) messages.push(message);
  return messages;
}

/** Polls `check` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function eventually<T>(check: () => Promise<T | undefined>, what: string, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** What a read of a group answers, or undefined when the group does not exist (NOT_FOUND). */
export async function unlessNotFound<T>(read: Promise<T>): Promise<T | undefined> {
  try {
    return await read;
  } catch (error) {
    if (error instanceof ClientError && error.code === Status.NOT_FOUND) return undefined;
    throw error;
  }
}

/** Asserts that a call fails with the gRPC status `code`, and (when given) a message matching `message`. */
export async function expectStatus(call: Promise<unknown>, code: Status, message?: RegExp): Promise<void> {
  await assert.rejects(call, (error: unknown) => {
    assert.ok(error instanceof ClientError, `expected a ClientError, got ${String(error)}`);
    assert.equal(Status[error.code], Status[code], error.details);
    if (message) assert.match(error.details, message);
    return true;
  });
}

/** Reads the database directly: the event log has no gaps and no repeated task transition; no node was started twice. */
export function expectConsistentLog(dataDir: string, what: string) {
  const db = new Database(join(dataDir, "drover.db"), { readonly: true });
  try {
    const sequences = db.prepare("SELECT sequence FROM events ORDER BY sequence").pluck().all() as number[];
    assert.deepEqual(sequences, sequences.map((_, i) => i + 1), `${what}: event sequence numbers have no gaps`);
    const repeated = db
      .prepare(`SELECT graph_id, task_id, state, attempt, COUNT(*) AS n FROM events WHERE type = 'task'
        GROUP BY graph_id, task_id, state, attempt HAVING n > 1`)
      .all();
    assert.deepEqual(repeated, [], `${what}: no task transition is logged twice`);
    const sharedNodes = db
      .prepare(`SELECT node_id, COUNT(*) AS n FROM tasks WHERE action = 'start_node' AND node_id IS NOT NULL GROUP BY node_id HAVING n > 1`)
      .all();
    assert.deepEqual(sharedNodes, [], `${what}: no node was made by two start tasks`);
    const orphans = db.prepare(`SELECT id FROM nodes WHERE id NOT IN (SELECT node_id FROM tasks WHERE action = 'start_node' AND node_id IS NOT NULL)`).all();
    assert.deepEqual(orphans, [], `${what}: every node was made by a start task that still names it`);
    const stuck = db.prepare(`SELECT id, state FROM nodes WHERE state IN ('starting', 'stopping')`).all();
    assert.deepEqual(stuck, [], `${what}: no node is left starting or stopping`);
  } finally {
    db.close();
  }
}
