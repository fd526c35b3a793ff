import type { NodeTemplate } from "./domain.js";
import type { Store } from "./store/Store.js";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Command, Option } from "commander";
import { applyBooleanEnvironment } from "@drover/shared";
import { pino, transport } from "pino";
import { systemClock } from "./clock.js";
import { allowedCommands, byteSizeIn, durationIn, integerIn, listenAddress, parseLatencyRange, portRange, probability } from "./config.js";
import type { CommandPolicy } from "./drivers/CommandPolicy.js";
import { lookUpNodeUser } from "./drivers/NodeUser.js";
import type { Driver } from "./drivers/Driver.js";
import { ProcessDriver } from "./drivers/ProcessDriver.js";
import { DEFAULT_TEMPLATE } from "./templates.js";
import { delayPointFromSetting, failpointFromSetting } from "./failpoints.js";
import { isLoopback, loadOrCreateToken, localAddresses, recordCredentials } from "./auth/tokens.js";
import { metricsListenProblem } from "./metrics/metricsEndpoint.js";
import { DroverServer, detectCapacity } from "./DroverServer.js";
import { MockDriver } from "./drivers/MockDriver.js";
import { DEFAULT_SUBSCRIBER_CAPACITY, DEFAULT_TOTAL_CAPACITY } from "./events/EventBus.js";
import { DEFAULT_DRAIN_TIMEOUT_MS } from "./api/StreamOutlet.js";
import { DEFAULT_MAX_WATCHERS_PER_CONNECTION } from "./api/watcherLimitMiddleware.js";
import { DEFAULT_HANDSHAKE_TIMEOUT_MS, DEFAULT_MAX_CONNECTIONS } from "./net/ConnectionGate.js";
import { openSqliteStore } from "./store/SqliteStore.js";
import { prepareDataDir } from "./store/dataDir.js";
import { DEFAULT_RETENTION_MS } from "./store/Retention.js";

const MIGRATIONS_DIR = fileURLToPath(new URL("../../../migrations/", import.meta.url));

const option = (flags: string, description: string, env: string) => new Option(flags, description).env(env);

const program = new Command("server")
  .description("Drover's server: keeps groups of nodes at their spec, and serves the gRPC API.")
  .addOption(option("--listen <host:port>", "address to serve gRPC on", "DROVER_LISTEN").default("127.0.0.1:8888").argParser(listenAddress))
  .addOption(option("--data-dir <dir>", "directory of the SQLite database, created on first start", "DROVER_DATA_DIR").default("./data"))
  .addOption(option("--driver <name>", "what starts nodes: mock (simulated) or process (real processes from each group's template)", "DROVER_DRIVER").choices(["mock", "process"]).default("mock"))
  .addOption(option("--port-range <first..last>", "process driver: the ports nodes are given, one each", "DROVER_PORT_RANGE").default({ first: 20000, last: 20999 }, "20000..20999").argParser(portRange))
  .addOption(option("--parallelism <n>", "tasks run at once, over all graphs", "DROVER_PARALLELISM").default(10).argParser(integerIn(1, 10_000)))
  .addOption(option("--max-attempts <n>", "attempts a task gets before its graph fails", "DROVER_MAX_ATTEMPTS").default(3).argParser(integerIn(1, 100)))
  .addOption(option("--retry-backoff <min..max>", "wait after a failed attempt: doubles from min up to max", "DROVER_RETRY_BACKOFF").default({ min: 200, max: 10_000 }, "200ms..10s").argParser(parseLatencyRange))
  .addOption(option("--mock-latency <min..max>", "mock driver: each start and stop takes a random time in this range", "DROVER_MOCK_LATENCY").default({ min: 500, max: 2000 }, "500ms..2s").argParser(parseLatencyRange))
  .addOption(option("--mock-failure-rate <p>", "mock driver: probability from 0 to 1 that a start or stop fails", "DROVER_MOCK_FAILURE_RATE").default(0).argParser(probability))
  .addOption(option("--mock-crash-rate <p>", "mock driver: probability from 0 to 1 that a running node crashes in any one second", "DROVER_MOCK_CRASH_RATE").default(0).argParser(probability))
  .addOption(option("--task-timeout <duration>", "how long one attempt of a task may take, unless the spec says", "DROVER_TASK_TIMEOUT").default(300_000, "5m").argParser(durationIn(1, 86_400_000)))
  .addOption(option("--progress-deadline <duration>", "how long a graph may go without a task finishing before it fails, unless the spec says", "DROVER_PROGRESS_DEADLINE").default(600_000, "10m").argParser(durationIn(1, 86_400_000)))
  .addOption(option("--min-ready <duration>", "how long a started node must stay up and healthy before it counts as available, unless the spec says (default: 10s with the process driver, 0 with mock)", "DROVER_MIN_READY").argParser(durationIn(0, 86_400_000)))
  .addOption(option("--crash-loop-backoff <min..max>", "wait between replacements of a group's failed nodes: doubles from min up to max, reset after a replacement runs 10m", "DROVER_CRASH_LOOP_BACKOFF").default({ min: 10_000, max: 300_000 }, "10s..5m").argParser(parseLatencyRange))
  .addOption(option("--reconcile-interval <duration>", "how often every group is compared with its spec and repaired", "DROVER_RECONCILE_INTERVAL").default(10_000, "10s").argParser(durationIn(10, 86_400_000)))
  .addOption(option("--seed <n>", "seed of the mock driver's randomness (default: from the clock)", "DROVER_SEED").argParser(integerIn(0, 2 ** 32 - 1)))
  .addOption(option("--watcher-buffer <n>", "events a watcher may fall behind before its stream is ended", "DROVER_WATCHER_BUFFER").default(DEFAULT_SUBSCRIBER_CAPACITY).argParser(integerIn(1, 10_000_000)))
  .addOption(option("--watcher-buffer-total <n>", "events all watchers together may fall behind; beyond it, those furthest behind are ended", "DROVER_WATCHER_BUFFER_TOTAL").default(DEFAULT_TOTAL_CAPACITY).argParser(integerIn(1, 1_000_000_000)))
  .addOption(option("--watcher-drain-timeout <duration>", "how long a stream (watch, followed log) may hold data its client does not read before it is ended", "DROVER_WATCHER_DRAIN_TIMEOUT").default(DEFAULT_DRAIN_TIMEOUT_MS, "30s").argParser(durationIn(100, 86_400_000)))
  .addOption(option("--max-watchers-per-connection <n>", "streams (watches, followed logs) one gRPC connection may hold open at once", "DROVER_MAX_WATCHERS_PER_CONNECTION").default(DEFAULT_MAX_WATCHERS_PER_CONNECTION).argParser(integerIn(1, 100_000)))
  .addOption(option("--max-connections <n>", "connections each port (gRPC, HTTP) keeps open at once; more are closed as they arrive", "DROVER_MAX_CONNECTIONS").default(DEFAULT_MAX_CONNECTIONS).argParser(integerIn(1, 1_000_000)))
  .addOption(option("--handshake-timeout <duration>", "how long a new connection may take to complete TLS and start HTTP/2 (gRPC) or send its first request (HTTP) before it is closed", "DROVER_HANDSHAKE_TIMEOUT").default(DEFAULT_HANDSHAKE_TIMEOUT_MS, "10s").argParser(durationIn(100, 3_600_000)))
  .addOption(option("--capacity-cpu <millis>", "cpu the host offers nodes, in thousandths of a core (default: detected)", "DROVER_CAPACITY_CPU").argParser(integerIn(1, 1_024_000_000)))
  .addOption(option("--capacity-memory <MiB>", "memory the host offers nodes, in MiB (default: detected)", "DROVER_CAPACITY_MEMORY").argParser(integerIn(1, 1_073_741_824)))
  .addOption(option("--insecure-no-auth", "serve without a token (refused unless --listen is a loopback address)", "DROVER_INSECURE_NO_AUTH"))
  .addOption(option("--tls-cert <file>", "serve over TLS with this certificate (PEM); needs --tls-key", "DROVER_TLS_CERT"))
  .addOption(option("--tls-key <file>", "the TLS certificate's private key (PEM)", "DROVER_TLS_KEY"))
  .addOption(option("--http-listen <host:port>", "also serve the HTTP/JSON API (same token, same TLS) on this address", "DROVER_HTTP_LISTEN").argParser(listenAddress))
  .addOption(option("--metrics-listen <host:port>", "serve Prometheus metrics at http://host:port/metrics; off loopback, https with --tls-cert and the token as a bearer header", "DROVER_METRICS_LISTEN").argParser(listenAddress))
  .addOption(option("--log-dir <dir>", "process driver: directory of the nodes' logs (default: <data dir>/logs)", "DROVER_LOG_DIR"))
  .addOption(option("--node-log-max-size <size>", "process driver: a node's log is rotated before it grows past this size (like 10MiB, 512KiB)", "DROVER_NODE_LOG_MAX_SIZE").default(10 * 1024 * 1024, "10MiB").argParser(byteSizeIn(1024, 1024 ** 4)))
  .addOption(option("--node-log-max-files <n>", "process driver: log files kept per node, the current one included (2: <id>.log and <id>.log.1)", "DROVER_NODE_LOG_MAX_FILES").default(2).argParser(integerIn(1, 100)))
  .addOption(option("--allow-commands <list>", "process driver: the only programs templates may run, absolute paths or globs, comma-separated (default: any)", "DROVER_ALLOW_COMMANDS").argParser(allowedCommands))
  .addOption(option("--node-user <user>", "process driver: run nodes as this user, not the server's (the server must run as root)", "DROVER_NODE_USER"))
  .addOption(option("--min-free-space <size>", "free space the data dir's disk must keep: below it new work (updates, rollbacks, node operations) is refused until space is freed; 0 turns it off", "DROVER_MIN_FREE_SPACE").default(64 * 1024 * 1024, "64MiB").argParser(byteSizeIn(0, 1024 ** 5)))
  .addOption(option("--stop-unknown-processes", "at start, stop node processes the database does not know (default: log their pids and leave them running); never on a new database's first start", "DROVER_STOP_UNKNOWN_PROCESSES"))
  .addOption(option("--skip-integrity-check", "at start, skip PRAGMA quick_check of the database (it reads every page: for databases too big to read at each start)", "DROVER_SKIP_INTEGRITY_CHECK"))
  // No environment variable: a one-time recovery step must not stay set in a service's environment.
  .addOption(new Option("--force-new-database", "start with a new, empty database although the data dir shows earlier use (its database lost or emptied, no backup to restore): the nodes it ran are unknown to the new one"))
  .addOption(option("--event-retention <duration>", "how long what settled is kept: a settled graph's events, graphs no revision needs, stopped nodes and node events (like 168h or 7d; 0 keeps everything)", "DROVER_EVENT_RETENTION").default(DEFAULT_RETENTION_MS, "7d").argParser(durationIn(0, 36_500 * 86_400_000)))
  .addOption(option("--log-level <level>", "least severe log level written", "DROVER_LOG_LEVEL").choices(["debug", "info", "warn", "error"]).default("info"))
  .addHelpText("after", "\nExample:\n  $ bin/server --data-dir /var/lib/drover --parallelism 4 --mock-latency 1s..2s\n")
  .showHelpAfterError(false)
  .configureOutput({ outputError: (text, write) => write(text.split("\n")[0] + "\n") })
  .exitOverride((error) => process.exit(error.exitCode === 0 ? 0 : 2));

try {
  applyBooleanEnvironment(program, process.env);
} catch (error) {
  process.stderr.write(`server: ${(error as Error).message}\n`);
  process.exit(2);
}
program.parse();
const flags = program.opts<{
  listen: string;
  dataDir: string;
  driver: "mock" | "process";
  portRange: { first: number; last: number };
  parallelism: number;
  maxAttempts: number;
  retryBackoff: { min: number; max: number };
  mockLatency: { min: number; max: number };
  mockFailureRate: number;
  mockCrashRate: number;
  taskTimeout: number;
  progressDeadline: number;
  reconcileInterval: number;
  minReady?: number;
  crashLoopBackoff: { min: number; max: number };
  seed?: number;
  capacityCpu?: number;
  capacityMemory?: number;
  watcherBuffer: number;
  watcherBufferTotal: number;
  watcherDrainTimeout: number;
  maxWatchersPerConnection: number;
  maxConnections: number;
  handshakeTimeout: number;
  insecureNoAuth?: boolean;
  tlsCert?: string;
  tlsKey?: string;
  metricsListen?: string;
  httpListen?: string;
  logLevel: string;
  minFreeSpace: number;
  logDir?: string;
  nodeLogMaxSize: number;
  nodeLogMaxFiles: number;
  allowCommands?: CommandPolicy;
  nodeUser?: string;
  stopUnknownProcesses?: boolean;
  skipIntegrityCheck?: boolean;
  forceNewDatabase?: boolean;
  eventRetention: number;
}>();
// Absolute from here on: the server hands these paths out (a node's peers file, its log, its
// command found from the data dir, the token file in hints), and each node runs in its own dir,
// where a path relative to the server's working directory would name nothing.
flags.dataDir = resolve(flags.dataDir);
if (flags.logDir !== undefined) flags.logDir = resolve(flags.logDir);

// JSON lines for machines; the same lines made readable when a person watches a terminal.
const logger = pino(
  { level: flags.logLevel, base: { service: "drover" } },
  process.stdout.isTTY ? transport({ target: "pino-pretty", options: { translateTime: "SYS:HH:MM:ss.l", ignore: "pid,hostname,service" } }) : undefined,
);

/** Refuses flag combinations that would be unsafe, with one line naming the flags and the rule. */
function checkSecurityFlags(): void {
  const usage = (message: string) => {
    process.stderr.write(`server: ${message}\n`);
    process.exit(2);
  };
  if (flags.insecureNoAuth && !isLoopback(flags.listen)) {
    usage(`--insecure-no-auth is refused with --listen ${flags.listen}: without a token only a loopback address (127.0.0.1, localhost, [::1]) is allowed`);
  }
  if (flags.insecureNoAuth && flags.httpListen && !isLoopback(flags.httpListen)) {
    usage(`--insecure-no-auth is refused with --http-listen ${flags.httpListen}: without a token only a loopback address (127.0.0.1, localhost, [::1]) is allowed`);
  }
  if (Boolean(flags.tlsCert) !== Boolean(flags.tlsKey)) usage("--tls-cert and --tls-key go together: give both, or neither");
  if (flags.metricsListen) {
    const problem = metricsListenProblem(flags.metricsListen, { withToken: !flags.insecureNoAuth, withTls: Boolean(flags.tlsCert) });
    if (problem) usage(problem);
  }
}

function readTls(): { cert: Buffer; key: Buffer } | undefined {
  if (!flags.tlsCert || !flags.tlsKey) return undefined;
  const read = (flag: string, path: string) => {
    try {
      return readFileSync(path);
    } catch (error) {
      throw new Error(`${flag} ${path} cannot be read: ${(error as Error).message}`);
    }
  };
  return { cert: read("--tls-cert", flags.tlsCert), key: read("--tls-key", flags.tlsKey) };
}

/** The template a node of `revision` runs (absent: the group's current one); undefined for the server's default. */
async function templateOfRevision(store: Store, group: string, revision: number | undefined): Promise<NodeTemplate | undefined> {
  if (revision !== undefined) {
    const stored = await store.getRevision(group, revision);
    if (stored) return stored.spec.template;
  }
  const current = await store.getGroupSpec(group);
  return current ? current.spec.template : store.getTemplate(group);
}

/** Refuses the process driver's security flags with another driver: they would protect nothing, silently. */
function checkProcessDriverFlags(): void {
  const given = [flags.allowCommands && "--allow-commands", flags.nodeUser && "--node-user"].filter(Boolean);
  if (flags.driver !== "process" && given.length > 0) {
    process.stderr.write(`server: ${given.join(" and ")} ${given.length > 1 ? "apply" : "applies"} to the process driver only: add --driver process, or leave them out\n`);
    process.exit(2);
  }
}

async function main(): Promise<void> {
  checkSecurityFlags();
  checkProcessDriverFlags();
  const nodeUser = flags.nodeUser === undefined ? undefined : lookUpNodeUser(flags.nodeUser);
  const seed = flags.seed ?? Date.now() % 2 ** 32;
  const tls = readTls();
  const { earlierUse } = prepareDataDir(flags.dataDir, logger, nodeUser?.gid);
  if (flags.skipIntegrityCheck) logger.warn("skipping the database's integrity check (--skip-integrity-check)");
  const store = openSqliteStore(flags.dataDir, MIGRATIONS_DIR, {
    integrityCheck: !flags.skipIntegrityCheck,
    earlierUse: flags.forceNewDatabase ? [] : earlierUse,
    migrationLog: {
      applying: (migration) => logger.info({ migration: `${migration.version}_${migration.name}` }, "applying migration"),
      applied: (migration, durationMs) => logger.info({ migration: `${migration.version}_${migration.name}`, durationMs }, "migration applied"),
    },
  });
  logger.info({ dataDir: flags.dataDir, created: store.created }, "store opened");
  if (store.created && earlierUse.length > 0) {
    logger.warn({ earlierUse }, "made a new, empty database in a data dir used before (--force-new-database): the nodes the old one ran are unknown to it");
  } else if (flags.forceNewDatabase) {
    logger.warn("--force-new-database had nothing to replace: remove the flag, or a database lost later would be replaced silently");
  }
  if (flags.stopUnknownProcesses && store.created) {
    logger.warn("not stopping unknown node processes on the database's first start, despite --stop-unknown-processes: the new database knows none");
  }
  let token: string | undefined;
  if (!flags.insecureNoAuth) {
    const loaded = loadOrCreateToken(flags.dataDir);
    token = loaded.token;
    logger.info({ tokenFile: loaded.path, created: loaded.created }, "clients must send the token in this file");
  } else {
    logger.warn({ listen: flags.listen }, "serving without authentication: anyone who can reach the address may change nodes");
  }
  const failpoint = failpointFromSetting(process.env.DROVER_FAILPOINT);
  const delayPoint = delayPointFromSetting(process.env.DROVER_FAILPOINT, systemClock.sleep);
  const driver: Driver =
    flags.driver === "process"
      ? new ProcessDriver({
          dataDir: flags.dataDir,
          logDir: flags.logDir,
          logLimits: { maxBytes: flags.nodeLogMaxSize, maxFiles: flags.nodeLogMaxFiles },
          commands: flags.allowCommands,
          nodeUser,
          ports: flags.portRange,
          templateOf: async (group, revision) => (await templateOfRevision(store, group, revision)) ?? DEFAULT_TEMPLATE,
          clock: systemClock,
          logger,
        })
      : new MockDriver({
          latency: flags.mockLatency,
          failureRate: flags.mockFailureRate,
          crashRate: flags.mockCrashRate,
          seed,
          clock: systemClock,
        });
  const server = new DroverServer({
    store,
    driver,
    clock: systemClock,
    logger,
    listen: flags.listen,
    parallelism: flags.parallelism,
    maxAttempts: flags.maxAttempts,
    retryBaseDelayMs: flags.retryBackoff.min,
    retryMaxDelayMs: flags.retryBackoff.max,
    taskTimeoutMs: flags.taskTimeout,
    progressDeadlineMs: flags.progressDeadline,
    reconcileIntervalMs: flags.reconcileInterval,
    // Nomad's min_healthy_time default for real processes; simulated ones do not crash after their start.
    defaultMinReadyMs: flags.minReady ?? (flags.driver === "process" ? 10_000 : 0),
    crashLoop: { initialMs: flags.crashLoopBackoff.min, maxMs: flags.crashLoopBackoff.max, resetAfterMs: 600_000 },
    watcherCapacity: flags.watcherBuffer,
    watcherTotalCapacity: flags.watcherBufferTotal,
    watcherDrainTimeoutMs: flags.watcherDrainTimeout,
    maxWatchersPerConnection: flags.maxWatchersPerConnection,
    maxConnections: flags.maxConnections,
    handshakeTimeoutMs: flags.handshakeTimeout,
    failpoint,
    delayPoint,
    capacity: {
      cpuMillis: flags.capacityCpu ?? detectCapacity().cpuMillis,
      memoryMb: flags.capacityMemory ?? detectCapacity().memoryMb,
    },
    token,
    tls,
    metricsListen: flags.metricsListen,
    httpListen: flags.httpListen,
    minFreeBytes: flags.minFreeSpace,
    stopUnknownProcesses: flags.stopUnknownProcesses === true && !store.created,
    retention: { retentionMs: flags.eventRetention },
  });
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "shutting down");
    server.stop().then(
      () => process.exit(0),
      (error) => {
        logger.error({ err: error }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGTERM", () => stop("SIGTERM"));
  try {
    await server.start();
  } catch (error) {
    await store.close();
    throw error;
  }
  // Stopped while it recovered: the stop exits (0), as at any other time.
  if (stopping) return;
  if (token) {
    // Best effort: the server serves whether or not the user's config directory can be written.
    try {
      const file = recordCredentials(localAddresses(flags.listen, server.port), token);
      logger.info({ credentialsFile: file }, "recorded this server's address and token for the local user");
    } catch (error) {
      logger.warn({ err: error }, "could not record the token for the local user; clients need --token or --token-file");
    }
  }
  logger.info({ seed, mockLatency: flags.mockLatency, parallelism: flags.parallelism, tls: Boolean(tls), metrics: flags.metricsListen }, "ready");
}

main().catch((error: Error) => {
  const message = /EADDRINUSE/.test(error.message)
    ? `listen address ${flags.listen} is in use: stop the other server or choose another --listen`
    : error.message;
  logger.fatal({ err: error }, "server cannot start");
  process.stderr.write(`server: ${message}\n`);
  process.exit(1);
});
