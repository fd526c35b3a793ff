import { estimateDuration, planBounds } from "./planner/preview.js";
import type { CrashLoopOptions } from "./reconciler/CrashLoopBackoff.js";
import { NodeCensus } from "./scheduler/NodeCensus.js";
import { existsSync, readFileSync } from "node:fs";
import type { Server as HttpServer } from "node:http";
import { availableParallelism, totalmem } from "node:os";
import { fileURLToPath } from "node:url";
import { composeServerMiddleware } from "nice-grpc";
import { HealthDefinition, HealthServiceImpl, HealthState } from "nice-grpc-server-health";
import { authMiddleware } from "./api/authMiddleware.js";
import { GrpcOutlets } from "./api/GrpcOutlets.js";
import { GrpcServer } from "./api/GrpcServer.js";
import { DEFAULT_DRAIN_TIMEOUT_MS } from "./api/StreamOutlet.js";
import { DEFAULT_MAX_WATCHERS_PER_CONNECTION, watcherLimitMiddleware } from "./api/watcherLimitMiddleware.js";
import { ConnectionGate, DEFAULT_HANDSHAKE_TIMEOUT_MS, DEFAULT_MAX_CONNECTIONS } from "./net/ConnectionGate.js";
import { Metrics } from "./metrics/Metrics.js";
import { DroverServiceDefinition } from "@drover/shared";
import { wireDefinition } from "./api/wire.js";
import { refuseUndecodableRequests } from "./api/requestDecoding.js";
import { HEALTH_SERVICE, reflectionServices } from "./api/reflection.js";

/** How many of a group's recent start and stop times a plan's estimated duration is the median of. */
const RECENT_DURATIONS = 200;

/** The median of the values (undefined for none). */
function median(values: readonly number[]): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)];
}

/** How long committed events wait for more before they go to watchers together (see EventBus). */
const WATCH_LINGER_MS = 10;
/** A gRPC connection with no call for this long is closed (GOAWAY: clients reconnect when they next call). */
const IDLE_CONNECTION_MS = 300_000;
/** Calls besides its watch streams that one gRPC connection may have open at once (HTTP/2's concurrent streams are the sum). */
const UNARY_CALLS_PER_CONNECTION = 100;
import type { Logger } from "pino";
import { ulidFactory } from "./ids.js";
import { droverService } from "./api/DroverService.js";
import { errorMiddleware } from "./api/errorMiddleware.js";
import { HttpApi } from "./http/HttpApi.js";
import type { Clock } from "./clock.js";
import type { Driver } from "./drivers/Driver.js";
import type { NodeTemplate } from "./domain.js";
import { type DelayPoint, type Failpoint, noFailpoints } from "./failpoints.js";
import { DEFAULT_TEMPLATE } from "./templates.js";

/** This host's cores (in thousandths) and memory (in MiB). */
export function detectCapacity(): { cpuMillis: number; memoryMb: number } {
  return { cpuMillis: availableParallelism() * 1000, memoryMb: Math.floor(totalmem() / 1048576) };
}
import { DEFAULT_TOTAL_CAPACITY, EventBus } from "./events/EventBus.js";
import { Journal } from "./events/Journal.js";
import { Reconciler } from "./reconciler/Reconciler.js";
import { Scheduler } from "./scheduler/Scheduler.js";
import type { Store } from "./store/Store.js";
import { guardStore } from "./store/guardStore.js";
import { StorageHealth } from "./health/StorageHealth.js";
import { DEFAULT_RETENTION_MS, Retention } from "./store/Retention.js";

export interface DroverServerOptions {
  store: Store;
  driver: Driver;
  clock: Clock;
  logger: Logger;
  listen: string;
  parallelism: number;
  maxAttempts: number;
  retryBaseDelayMs: number;
  retryMaxDelayMs: number;
  taskTimeoutMs: number;
  progressDeadlineMs: number;
  /** How often every group is compared with its spec, besides after every node exit and graph. */
  reconcileIntervalMs: number;
  /** The min-ready of a spec that does not say. */
  defaultMinReadyMs?: number;
  /** How replacements of a group's failed nodes back off. */
  crashLoop?: CrashLoopOptions;
  watcherCapacity: number;
  /** How many unsent events all watchers together may hold before those furthest behind are ended (default 2,000,000). */
  watcherTotalCapacity?: number;
  failpoint?: Failpoint;
  /** Where tests hold the server up (see failpoints.ts); default nowhere. */
  delayPoint?: DelayPoint;
  /** The template of a group that has none of its own (default: the chat example). */
  defaultTemplate?: NodeTemplate;
  /** What the host can hold, for specs that reserve cpu or memory (default: detected). */
  capacity?: { cpuMillis: number; memoryMb: number };
  /** The bearer token every call must carry; absent: no authentication (loopback only, by the caller's choice). */
  token?: string;
  /** Serve over TLS with this certificate and key (PEM). */
  tls?: { cert: Buffer; key: Buffer };
  /** Serve Prometheus metrics on this address (host:port): off loopback, only with the token and TLS. */
  metricsListen?: string;
  /** Serve the HTTP/JSON API on this address (host:port), with the same token and TLS. */
  httpListen?: string;
  /** Free space the database's file system must keep, in bytes: below it new work is refused (default 0: no margin). */
  minFreeBytes?: number;
  /** How often health probes a write and reads free space, in milliseconds (default 5 s). */
  storageProbeIntervalMs?: number;
  /** At start, stop node processes of nodes the store has never heard of (see Reconciler.sweepStrays); default: leave them running. */
  stopUnknownProcesses?: boolean;
  /** How long what settled is kept (0: forever; default a week), how often it is looked for, and rows per step. */
  retention?: { retentionMs?: number; intervalMs?: number; batchRows?: number };
  /** Connections each listening port (gRPC, HTTP) keeps open at once (default 2048). */
  maxConnections?: number;
  /** How long a new connection may take to complete its TLS handshake and start HTTP/2 (gRPC) or send its first request (HTTP) (default 10 s). */
  handshakeTimeoutMs?: number;
  /** A gRPC connection with no call for this long is closed (default 5 min). */
  idleConnectionTimeoutMs?: number;
  /** How long a stream may hold data its client does not read before it is ended (default 30 s). */
  watcherDrainTimeoutMs?: number;
  /** Response streams one gRPC connection may hold open at once (default 100). */
  maxWatchersPerConnection?: number;
}

/** The API's file descriptor set (ours and grpc.health.v1), made by `buf build` at build time, for server reflection. */
const DESCRIPTOR_SET = fileURLToPath(new URL("../../../shared/src/gen/drover.binpb", import.meta.url));
const STORAGE_PROBE_INTERVAL_MS = 5000;
/** How long open calls may take to finish once the server stops, before they are cut. */
const SHUTDOWN_GRACE_MS = 2000;

/**
 * The server's lifecycle: created → started (serving; unsettled graphs resumed as soon as
 * their group is recovered, see Reconciler.recover) → stopped (watch streams ended, runs
 * interrupted and left stored for the next start, store closed). A stop during recovery
 * cuts it short, waits for it, and is as clean as any other: start then returns quietly.
 */
export class DroverServer {
  private state: "created" | "started" | "stopping" | "stopped" = "created";
  private readonly grpc: GrpcServer;
  private readonly scheduler: Scheduler;
  private readonly reconciler: Reconciler;
  private readonly shutdownController = new AbortController();
  private boundPort = 0;
  private readonly health = HealthState();
  private readonly metrics: Metrics;
  private metricsServer: HttpServer | undefined;
  private readonly http: HttpApi | undefined;
  private boundHttpPort = 0;
  private readonly storage: StorageHealth;
  private readonly store: Store;
  private readonly retention: Retention;
  /** Recovery, while it runs: a stop waits for it before it closes the store. */
  private recovery: Promise<number> | undefined;

  constructor(private readonly options: DroverServerOptions) {
    const { driver, clock, logger } = options;
    this.storage = new StorageHealth({
      store: options.store,
      clock,
      logger,
      minFreeBytes: options.minFreeBytes ?? 0,
      probeIntervalMs: options.storageProbeIntervalMs ?? STORAGE_PROBE_INTERVAL_MS,
      onChange: (writable) => {
        if (this.state === "started") this.health.setStatus(writable ? "healthy" : "unhealthy");
      },
    });
    // Every storage fault, met anywhere, is an UNAVAILABLE with its cause and turns health NOT_SERVING.
    const store = guardStore(options.store, (fault) => this.storage.reportFault(fault));
    this.store = store;
    const bus = new EventBus(WATCH_LINGER_MS, options.watcherTotalCapacity ?? DEFAULT_TOTAL_CAPACITY);
    const failpoint = options.failpoint ?? noFailpoints;
    const journal = new Journal({
      store,
      bus,
      now: () => clock.now(),
      failpoint,
      health: this.storage,
      sleep: (milliseconds, signal) => clock.sleep(milliseconds, signal),
      signal: this.shutdownController.signal,
    });
    const newId = ulidFactory();
    const census = new NodeCensus((group) => store.snapshotNodes(group));
    bus.listen(census.observe);
    this.scheduler = new Scheduler({
      census,
      journal,
      driver,
      clock,
      newId,
      logger,
      failpoint,
      parallelism: options.parallelism,
      maxAttempts: options.maxAttempts,
      retryBaseDelayMs: options.retryBaseDelayMs,
      retryMaxDelayMs: options.retryMaxDelayMs,
      taskTimeoutMs: options.taskTimeoutMs,
      progressDeadlineMs: options.progressDeadlineMs,
      // A storage fault stalls every run (its changes wait in the journal): not a lack of progress.
      storageWritableSince: () => this.storage.writableSince(),
    });
    this.reconciler = new Reconciler({
      store,
      scheduler: this.scheduler,
      journal,
      bus,
      driver,
      clock,
      newId,
      logger,
      failpoint,
      delayPoint: options.delayPoint,
      shutdownSignal: this.shutdownController.signal,
      capacity: options.capacity ?? detectCapacity(),
      defaultMinReadyMs: options.defaultMinReadyMs,
      crashLoop: options.crashLoop,
      storage: this.storage,
      stopUnknownProcesses: options.stopUnknownProcesses,
      onReplacement: (group) => this.metrics.replacement(group),
      preview: async (group, nodes, tasks, spec) => {
        const bounds = planBounds(nodes, tasks, spec);
        const [starts, stops] = await Promise.all([
          store.recentTaskDurations(group, "start_node", RECENT_DURATIONS),
          store.recentTaskDurations(group, "shut_down_node", RECENT_DURATIONS),
        ]);
        return { ...bounds, estimatedDurationMs: estimateDuration(tasks, { startMs: median(starts), stopMs: median(stops) }, options.parallelism) };
      },
    });
    this.metrics = new Metrics(store, bus);
    const maxWatchersPerConnection = options.maxWatchersPerConnection ?? DEFAULT_MAX_WATCHERS_PER_CONNECTION;
    const drainTimeoutMs = options.watcherDrainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS;
    let middleware = composeServerMiddleware(this.metrics.middleware(), errorMiddleware(logger));
    if (options.token) middleware = composeServerMiddleware(middleware, authMiddleware(options.token));
    middleware = composeServerMiddleware(middleware, refuseUndecodableRequests);
    middleware = composeServerMiddleware(middleware, watcherLimitMiddleware(maxWatchersPerConnection));
    this.grpc = new GrpcServer({
      middleware,
      gate: this.connectionGate("grpc"),
      outlets: new GrpcOutlets({ drainTimeoutMs, onStalled: () => this.metrics.watcherDropped("stalled") }),
      maxConcurrentStreams: maxWatchersPerConnection + UNARY_CALLS_PER_CONNECTION,
      idleTimeoutMs: options.idleConnectionTimeoutMs ?? IDLE_CONNECTION_MS,
      tls: options.tls,
    });
    this.grpc.add(HealthDefinition, HealthServiceImpl(this.health));
    if (existsSync(DESCRIPTOR_SET)) {
      for (const { definition, implementation } of reflectionServices(readFileSync(DESCRIPTOR_SET), [DroverServiceDefinition.fullName, HEALTH_SERVICE])) {
        this.grpc.add(definition, implementation);
      }
    } else {
      logger.warn({ path: DESCRIPTOR_SET }, "server reflection is off: the descriptor set was not built (run make)");
    }
    const service = droverService({
      store,
      reconciler: this.reconciler,
      bus,
      watcherCapacity: options.watcherCapacity,
      defaultTemplate: options.defaultTemplate ?? DEFAULT_TEMPLATE,
      driver,
      clock,
      shutdownSignal: this.shutdownController.signal,
      storage: this.storage,
      onWatcherDropped: () => this.metrics.watcherDropped("behind"),
    });
    this.grpc.add(wireDefinition, service);
    if (options.httpListen) {
      this.http = new HttpApi({
        service,
        logger,
        token: options.token,
        tls: options.tls,
        gate: this.connectionGate("http"),
        drainTimeoutMs,
        onStreamStalled: () => this.metrics.watcherDropped("stalled"),
        onAnswered: (answered) => this.metrics.httpRequest(answered),
        health: () => this.storage.current?.message,
      });
    }
    this.retention = new Retention({
      store,
      clock,
      logger,
      retentionMs: options.retention?.retentionMs ?? DEFAULT_RETENTION_MS,
      intervalMs: options.retention?.intervalMs,
      batchRows: options.retention?.batchRows,
      onRun: (report) => this.metrics.retentionRan(report),
      nodeFiles: driver,
    });
  }

  /** The limits on one listening port's connections. */
  private connectionGate(port: "grpc" | "http"): ConnectionGate {
    const gate = new ConnectionGate({
      name: port === "grpc" ? "gRPC" : "HTTP",
      maxConnections: this.options.maxConnections ?? DEFAULT_MAX_CONNECTIONS,
      handshakeTimeoutMs: this.options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
      logger: this.options.logger,
      onClosed: (reason) => this.metrics.connectionClosed(port, reason),
    });
    this.metrics.countConnections(port, () => gate.openConnections);
    return gate;
  }

  /** The port the server listens on (useful with port 0). */
  get port(): number {
    return this.boundPort;
  }

  /** The port the HTTP API listens on, if it does. */
  get httpPort(): number {
    return this.boundHttpPort;
  }

  async start(): Promise<void> {
    if (this.state !== "created") throw new Error(`server cannot start: it is ${this.state}`);
    this.boundPort = await this.grpc.listen(this.options.listen);
    if (this.http) this.boundHttpPort = await this.http.listen(this.options.httpListen!);
    if (this.options.metricsListen) this.metricsServer = await this.metrics.listen(this.options.metricsListen, { token: this.options.token, tls: this.options.tls });
    this.state = "started";
    // A fault met before (a full disk at recovery) keeps it NOT_SERVING until a write works.
    this.health.setStatus(this.storage.current ? "unhealthy" : "healthy");
    void this.storage.run(this.shutdownController.signal);
    this.recovery = this.reconciler.recover();
    let resumed: number;
    try {
      resumed = await this.recovery;
    } catch (error) {
      // A stop cut recovery short (a wait, a commit retried on a full disk): it is no failure to start.
      if (this.shutdownController.signal.aborted) return;
      throw error;
    }
    if (this.shutdownController.signal.aborted) return;
    void this.reconciler.runPeriodically(this.options.reconcileIntervalMs, this.shutdownController.signal);
    void this.retention.runPeriodically(this.shutdownController.signal);
    this.options.logger.info(
      { listen: this.options.listen, port: this.boundPort, httpListen: this.options.httpListen, httpPort: this.http && this.boundHttpPort, resumed, driver: this.options.driver.name },
      "server started",
    );
  }

  async stop(): Promise<void> {
    if (this.state === "stopping" || this.state === "stopped") return;
    this.state = "stopping";
    this.health.setStatus("unhealthy");
    this.metricsServer?.close();
    // Watch streams end first, since the gRPC server's shutdown waits for open calls.
    this.shutdownController.abort();
    // Recovery stops at its next wait: what it launched must be there to interrupt, and it must be done with the store.
    await this.recovery?.catch(() => undefined);
    // HTTP streams end with an error that says where to resume; the HTTP API closes before gRPC.
    await this.http?.close();
    this.options.driver.close();
    await this.scheduler.interruptAll();
    // Calls that never end on their own (a health Watch) must not hold the shutdown forever.
    const graceful = this.grpc.shutdown();
    const timer = setTimeout(() => this.grpc.forceShutdown(), SHUTDOWN_GRACE_MS);
    await graceful;
    clearTimeout(timer);
    await this.store.close();
    this.state = "stopped";
    this.health.setStatus("unknown");
    this.options.logger.info("server stopped");
  }
}
