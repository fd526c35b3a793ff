import type { Logger } from "pino";
import type { Clock } from "../clock.js";
import type { GraphWithTasks, Node } from "../domain.js";
import type { Driver, NodeFailure } from "../drivers/Driver.js";
import type { Journal } from "../events/Journal.js";
import type { Failpoint } from "../failpoints.js";
import { GraphRun, type RunDependencies, type RunOutcome } from "./GraphRun.js";
import type { NodeCensus } from "./NodeCensus.js";
import { Semaphore } from "./Semaphore.js";

export interface SchedulerOptions {
  journal: Journal;
  driver: Driver;
  clock: Clock;
  newId: () => string;
  logger: Logger;
  failpoint: Failpoint;
  /** How many tasks may run at once, over all graphs. */
  parallelism: number;
  /** How many attempts a task gets before it fails its graph. */
  maxAttempts: number;
  /** Backoff after the first failed attempt; it doubles after each, up to retryMaxDelayMs. */
  retryBaseDelayMs: number;
  retryMaxDelayMs: number;
  /** How long one attempt may take, unless the graph's spec says. */
  taskTimeoutMs: number;
  /** How long a graph may go without a task finishing, unless its spec says. */
  progressDeadlineMs: number;
  /** The groups' live nodes, for gated steps' rollout bounds. */
  census: NodeCensus;
  /** Since when the journal's storage takes writes (see RunDependencies); absent: always. */
  storageWritableSince?: () => number | undefined;
}

/**
 * Runs stored graphs with one global concurrency limit. It knows nothing of gRPC or SQL:
 * state goes through the journal, nodes through the driver.
 */
export class Scheduler {
  private readonly slots: Semaphore;
  private readonly runs = new Map<string, GraphRun>();

  constructor(private readonly options: SchedulerOptions) {
    this.slots = new Semaphore(options.parallelism);
  }

  /**
   * Starts (or resumes) a stored graph. `nodes` are the group's known nodes, by id.
   * `settle` commits the graph's final transition; by default it is just recorded.
   */
  run(
    graph: GraphWithTasks,
    nodes: Map<string, Node>,
    settle?: RunDependencies["settle"],
    after?: RunDependencies["after"],
  ): GraphRun {
    const { journal, retryBaseDelayMs, retryMaxDelayMs } = this.options;
    const run = new GraphRun(graph, nodes, {
      ...this.options,
      slots: this.slots,
      retryDelay: (attempt) => Math.min(retryMaxDelayMs, retryBaseDelayMs * 2 ** (attempt - 1)),
      defaultTaskTimeoutMs: this.options.taskTimeoutMs,
      defaultProgressDeadlineMs: this.options.progressDeadlineMs,
      settle: settle ?? (async (_graph, transition) => void (await journal.record([transition]))),
      after,
    });
    // Not `graph` in the callback: it would keep the caller's copy of every task until the run ends.
    const graphId = graph.id;
    this.runs.set(graphId, run);
    void run.settled.then(() => this.runs.delete(graphId));
    void run.start();
    return run;
  }

  /** The run of a graph, if it is running in this server. */
  get(graphId: string): GraphRun | undefined {
    return this.runs.get(graphId);
  }

  /** The running graph of a group, if any. */
  runningIn(group: string): GraphRun | undefined {
    for (const run of this.runs.values()) if (run.group === group) return run;
    return undefined;
  }

  /** Every graph running in the group (a rollout and a heal may run together). */
  runsIn(group: string): GraphRun[] {
    return [...this.runs.values()].filter((run) => run.group === group);
  }

  /** Tells the group's runs that a node failed; returns whether one of them owns the node. */
  nodeFailed(group: string, nodeId: string, failure: NodeFailure): boolean {
    let owned = false;
    for (const run of this.runsIn(group)) if (run.nodeFailed(nodeId, failure)) owned = true;
    return owned;
  }

  /** Halts a graph and waits for it to settle. */
  async halt(graphId: string, state: "cancelled" | "superseded", reason: string): Promise<RunOutcome | undefined> {
    const run = this.runs.get(graphId);
    if (!run) return undefined;
    run.halt(state, reason);
    return run.settled;
  }

  /** Server shutdown: interrupts every run and waits until none is touching the store. */
  async interruptAll(): Promise<void> {
    const runs = [...this.runs.values()];
    for (const run of runs) run.interrupt();
    await Promise.all(runs.map((run) => run.settled));
  }

  /** Driver calls under way (a slot is given back when its driver call returns). */
  get tasksRunning(): number {
    return this.slots.inUse;
  }
}
