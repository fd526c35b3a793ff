import type { Server } from "node:http";
import { type CallContext, type ServerMiddleware, ServerError, Status } from "nice-grpc";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { Event } from "../domain.js";
import { isFinalGraphState } from "../domain.js";
import type { EventBus } from "../events/EventBus.js";
import type { Store } from "../store/Store.js";
import { registerGroupGauges } from "./groupGauges.js";
import { type MetricsEndpointOptions, serveMetrics } from "./metricsEndpoint.js";
import type { RetentionReport } from "../store/Retention.js";

/**
 * Prometheus metrics, derived from what the server commits (the event log) rather than
 * counted beside it, so that they cannot disagree with the store.
 */
export class Metrics {
  readonly registry = new Registry();
  private readonly tasks = new Counter({
    name: "drover_tasks_total",
    help: "Task attempts that ended, by action and outcome (succeeded, failed, retried, skipped, cancelled).",
    labelNames: ["action", "outcome"] as const,
    registers: [this.registry],
  });
  private readonly taskDuration = new Histogram({
    name: "drover_task_duration_seconds",
    help: "How long task attempts took, from running to their end, by action.",
    labelNames: ["action"] as const,
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300],
    registers: [this.registry],
  });
  private readonly graphDuration = new Histogram({
    name: "drover_graph_duration_seconds",
    help: "How long graphs took, from running to settled, by outcome.",
    labelNames: ["outcome"] as const,
    buckets: [0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800],
    registers: [this.registry],
  });
  private readonly rpcs = new Counter({
    name: "drover_rpcs_total",
    help: "RPCs handled, by method and gRPC status code.",
    labelNames: ["method", "code"] as const,
    registers: [this.registry],
  });
  private readonly httpRequests = new Counter({
    name: "drover_http_requests_total",
    help: "HTTP API requests answered, refusals included, by method, route (its pattern; none when no route matched) and HTTP status code.",
    labelNames: ["method", "route", "code"] as const,
    registers: [this.registry],
  });
  private readonly replacements = new Counter({
    name: "drover_node_replacements_total",
    help: "Replacements of failed nodes (heals and repairs) started, by group; they back off in a crash loop.",
    labelNames: ["group"] as const,
    registers: [this.registry],
  });
  private readonly droppedWatchers = new Counter({
    name: "drover_watchers_dropped_total",
    help: "Streams ended because their client did not keep up: it fell more events behind than --watcher-buffer, or furthest behind when all together held --watcher-buffer-total (behind); or it did not read for --watcher-drain-timeout (stalled).",
    labelNames: ["reason"] as const,
    registers: [this.registry],
  });
  private readonly retentionDeleted = new Counter({
    name: "drover_retention_deleted_rows_total",
    help: "Rows retention deleted, by table: events, tasks, graphs, nodes.",
    labelNames: ["table"] as const,
    registers: [this.registry],
  });
  private readonly retentionLongestStep = new Gauge({
    name: "drover_retention_longest_step_seconds",
    help: "How long the longest step (one transaction) of the last retention run held the event loop.",
    registers: [this.registry],
  });
  private readonly closedConnections = new Counter({
    name: "drover_connections_closed_total",
    help: "Connections the server closed on a port (grpc, http): over --max-connections (limit), or no handshake within --handshake-timeout (handshake).",
    labelNames: ["port", "reason"] as const,
    registers: [this.registry],
  });
  private readonly openConnections = new Map<string, () => number>();
  private readonly attemptStarted = new Map<string, number>();
  private readonly graphStarted = new Map<string, number>();

  constructor(store: Store, bus: EventBus) {
    new Gauge({
      name: "drover_nodes",
      help: "Nodes by group, state and version (stopped nodes are not counted).",
      labelNames: ["group", "state", "version"] as const,
      registers: [this.registry],
      async collect() {
        this.reset();
        for (const row of await store.countNodes()) this.set({ group: row.group, state: row.state, version: String(row.version) }, row.count);
      },
    });
    registerGroupGauges(this.registry, store);
    const openConnections = this.openConnections;
    new Gauge({
      name: "drover_connections",
      help: "Open connections by port (grpc, http).",
      labelNames: ["port"] as const,
      registers: [this.registry],
      collect() {
        for (const [port, count] of openConnections) this.set({ port }, count());
      },
    });
    new Gauge({
      name: "drover_event_subscribers",
      help: "Open event subscriptions (watch streams and internal listeners).",
      registers: [this.registry],
      collect() {
        this.set(bus.subscriberCount);
      },
    });
    bus.listen((events) => {
      for (const event of events) this.observe(event);
    });
  }

  watcherDropped(reason: "behind" | "stalled"): void {
    this.droppedWatchers.inc({ reason });
  }

  connectionClosed(port: "grpc" | "http", reason: "limit" | "handshake"): void {
    this.closedConnections.inc({ port, reason });
  }

  /** Reports `count()` as the port's open connections. */
  countConnections(port: "grpc" | "http", count: () => number): void {
    this.openConnections.set(port, count);
  }

  /** Retention ran: counts what it deleted. */
  retentionRan(report: RetentionReport): void {
    for (const table of ["events", "tasks", "graphs", "nodes"] as const) this.retentionDeleted.inc({ table }, report[table]);
    this.retentionLongestStep.set(report.longestStepMs / 1000);
  }

  /** A replacement of a group's failed nodes started (each backs off after the last: the crash loop). */
  replacement(group: string): void {
    this.replacements.inc({ group });
  }

  /** Counts every call by method and status; a client's mistake shows as its status, not UNKNOWN. */
  middleware(): ServerMiddleware {
    const rpcs = this.rpcs;
    return async function* countCalls<Request, Response>(
      call: Parameters<ServerMiddleware>[0] & { request: Request },
      context: CallContext,
    ) {
      let code = Status.OK;
      try {
        return yield* call.next(call.request, context);
      } catch (error) {
        code = error instanceof ServerError ? error.code : Status.UNKNOWN;
        throw error;
      } finally {
        rpcs.inc({ method: call.method.path, code: Status[code] });
      }
    } as ServerMiddleware;
  }

  /** The HTTP API answered a request (or its client went away): counted as an RPC is, with its status. */
  httpRequest(answered: { method: string; route: string; status: number }): void {
    this.httpRequests.inc({ method: answered.method, route: answered.route, code: String(answered.status) });
  }

  /** Serves /metrics on the address, as Prometheus text: off loopback only with the token, over TLS (see metricsEndpoint.ts). */
  listen(address: string, options: MetricsEndpointOptions): Promise<Server> {
    return serveMetrics(this.registry, address, options);
  }

  private observe(event: Event): void {
    const taskKey = `${event.graphId}/${event.taskId}`;
    const seconds = (since: number | undefined) => (since === undefined ? undefined : (event.time - since) / 1000);
    if (event.type === "task") {
      if (event.state === "running") {
        this.attemptStarted.set(taskKey, event.time);
        return;
      }
      this.tasks.inc({ action: event.action, outcome: event.state });
      const took = seconds(this.attemptStarted.get(taskKey));
      if (took !== undefined) this.taskDuration.observe({ action: event.action }, took);
      this.attemptStarted.delete(taskKey);
    } else if (event.type === "task_retry") {
      this.tasks.inc({ action: event.action, outcome: "retried" });
      const took = seconds(this.attemptStarted.get(taskKey));
      if (took !== undefined) this.taskDuration.observe({ action: event.action }, took);
      this.attemptStarted.delete(taskKey);
    } else if (event.type === "graph" && event.graphId) {
      if (event.state === "running" && !this.graphStarted.has(event.graphId)) this.graphStarted.set(event.graphId, event.time);
      if (isFinalGraphState(event.state as never)) {
        const took = seconds(this.graphStarted.get(event.graphId));
        if (took !== undefined) this.graphDuration.observe({ outcome: event.state }, took);
        this.graphStarted.delete(event.graphId);
      }
    }
  }
}
