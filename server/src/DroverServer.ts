import { availableParallelism, totalmem } from "node:os";
import { createServer, type Server } from "nice-grpc";
import { DroverServiceDefinition } from "@drover/shared";
import type { Logger } from "pino";
import { monotonicFactory } from "ulid";
import { droverService } from "./api/DroverService.js";
import { errorMiddleware } from "./api/errorMiddleware.js";
import type { Clock } from "./clock.js";
import type { Driver } from "./drivers/Driver.js";
import type { NodeTemplate } from "./domain.js";
import { type Failpoint, noFailpoints } from "./failpoints.js";
import { DEFAULT_TEMPLATE } from "./templates.js";

/** This host's cores (in thousandths) and memory (in MiB). */
export function detectCapacity(): { cpuMillis: number; memoryMb: number } {
  return { cpuMillis: availableParallelism() * 1000, memoryMb: Math.floor(totalmem() / 1048576) };
}
import { EventBus } from "./events/EventBus.js";
import { Journal } from "./events/Journal.js";
import { Reconciler } from "./reconciler/Reconciler.js";
import { Scheduler } from "./scheduler/Scheduler.js";
import type { Store } from "./store/Store.js";

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
  watcherCapacity: number;
  failpoint?: Failpoint;
  /** The template of a group that has none of its own (default: the chat example). */
  defaultTemplate?: NodeTemplate;
  /** What the host can hold, for specs that reserve cpu or memory (default: detected). */
  capacity?: { cpuMillis: number; memoryMb: number };
}

/**
 * The server's lifecycle: created → started (serving, unsettled graphs resumed) → stopped
 * (watch streams ended, runs interrupted and left stored for the next start, store closed).
 */
export class DroverServer {
  private state: "created" | "started" | "stopping" | "stopped" = "created";
  private readonly grpc: Server;
  private readonly scheduler: Scheduler;
  private readonly reconciler: Reconciler;
  private readonly shutdownController = new AbortController();
  private boundPort = 0;

  constructor(private readonly options: DroverServerOptions) {
    const { store, driver, clock, logger } = options;
    const bus = new EventBus();
    const failpoint = options.failpoint ?? noFailpoints;
    const journal = new Journal(store, bus, () => clock.now(), failpoint);
    const ulid = monotonicFactory();
    const newId = () => ulid();
    this.scheduler = new Scheduler({
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
      shutdownSignal: this.shutdownController.signal,
      capacity: options.capacity ?? detectCapacity(),
    });
    this.grpc = createServer().use(errorMiddleware(logger));
    this.grpc.add(
      DroverServiceDefinition,
      droverService({
        store,
        reconciler: this.reconciler,
        bus,
        watcherCapacity: options.watcherCapacity,
        defaultTemplate: options.defaultTemplate ?? DEFAULT_TEMPLATE,
        driver,
        shutdownSignal: this.shutdownController.signal,
      }),
    );
  }

  /** The port the server listens on (useful with port 0). */
  get port(): number {
    return this.boundPort;
  }

  async start(): Promise<void> {
    if (this.state !== "created") throw new Error(`server cannot start: it is ${this.state}`);
    this.boundPort = await this.grpc.listen(this.options.listen);
    this.state = "started";
    const resumed = await this.reconciler.recover();
    void this.reconciler.runPeriodically(this.options.reconcileIntervalMs, this.shutdownController.signal);
    this.options.logger.info({ listen: this.options.listen, port: this.boundPort, resumed, driver: this.options.driver.name }, "server started");
  }

  async stop(): Promise<void> {
    if (this.state === "stopping" || this.state === "stopped") return;
    this.state = "stopping";
    // Watch streams end first, since the gRPC server's shutdown waits for open calls.
    this.shutdownController.abort();
    this.options.driver.close();
    await this.scheduler.interruptAll();
    await this.grpc.shutdown();
    await this.options.store.close();
    this.state = "stopped";
    this.options.logger.info("server stopped");
  }
}
