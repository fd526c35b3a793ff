import { setMaxListeners } from "node:events";
import { isAbortError } from "abort-controller-x";
import type { Logger } from "pino";
import type { Clock } from "../clock.js";
import { type GraphState, type GraphWithTasks, type Node, type Task, TaskAction, TaskState } from "../domain.js";
import type { Driver } from "../drivers/Driver.js";
import type { Journal } from "../events/Journal.js";
import type { Transition } from "../store/Store.js";
import type { Semaphore } from "./Semaphore.js";

export interface RunDependencies {
  journal: Journal;
  driver: Driver;
  clock: Clock;
  slots: Semaphore;
  newId: () => string;
  logger: Logger;
  maxAttempts: number;
  /** The wait before attempt `attempt + 1`, after attempt `attempt` failed. */
  retryDelay: (attempt: number) => number;
}

/** How a run ended: a final graph state, or interrupted by a server shutdown (the store still says running). */
export type RunOutcome = Exclude<GraphState, "pending" | "running"> | "interrupted";

type HaltState = "failed" | "cancelled" | "superseded";

/** A short description of a task for messages: `start_node version=2`, `shut_down_node 01J…`. */
export function describeTask(task: Task): string {
  if (task.action === TaskAction.startNode) return `start_node version=${task.version}`;
  if (task.action === TaskAction.shutDownNode) return `shut_down_node ${task.nodeId}`;
  return task.action;
}

/**
 * Walks one stored graph once: runs every task whose prerequisites have succeeded, with
 * a slot from the server-wide semaphore, retries failed attempts with backoff, and
 * settles the graph. Every state change is recorded in the journal before the run acts
 * on it, so a crash at any point leaves a stored state the next start can resume from.
 *
 * When a task uses up its attempts, or the graph is cancelled or superseded, the run
 * halts: nothing new starts, tasks not started are marked skipped (failure) or cancelled,
 * running tasks finish, and then the graph settles.
 */
export class GraphRun {
  readonly settled: Promise<RunOutcome>;
  private resolveSettled!: (outcome: RunOutcome) => void;
  private readonly tasks: Task[];
  private readonly dependents: number[][];
  private readonly unmetPrerequisites: Int32Array;
  private halted: { state: HaltState; error: string } | undefined;
  private interrupted = false;
  private settling = false;
  /** Aborts waits for a slot or a backoff when the run halts or is interrupted. */
  private readonly haltController = new AbortController();
  /** Aborts driver calls when the server shuts down; a halted run lets them finish. */
  private readonly interruptController = new AbortController();
  private inFlight = 0;
  private succeeded = 0;

  constructor(
    private readonly graph: GraphWithTasks,
    private readonly nodes: Map<string, Node>,
    private readonly deps: RunDependencies,
  ) {
    this.settled = new Promise((resolve) => (this.resolveSettled = resolve));
    // Every task waiting for a slot or a backoff listens to these; a big graph has many.
    setMaxListeners(0, this.haltController.signal, this.interruptController.signal);
    this.tasks = graph.tasks.map((task) => ({ ...task }));
    this.dependents = this.tasks.map(() => []);
    this.unmetPrerequisites = new Int32Array(this.tasks.length);
    for (const task of this.tasks) {
      for (const prerequisite of task.prerequisites) {
        this.dependents[prerequisite]!.push(task.id);
        if (this.tasks[prerequisite]!.state !== TaskState.succeeded) this.unmetPrerequisites[task.id]!++;
      }
    }
  }

  get id(): string {
    return this.graph.id;
  }

  get group(): string {
    return this.graph.group;
  }

  /** Starts (or, after a restart, resumes) the run; `settled` tells how it ended. */
  async start(): Promise<void> {
    try {
      if (this.graph.state === "pending") await this.record([this.graphTransition("running")]);
      const ended = this.tasks.find((task) => task.state === TaskState.failed);
      if (ended) this.halt("failed", ended.error ?? `task ${ended.id} failed`);
      this.succeeded = this.tasks.filter((task) => task.state === TaskState.succeeded).length;
      for (const task of this.tasks) {
        const resumable = task.state === TaskState.pending || task.state === TaskState.running;
        if (resumable && this.unmetPrerequisites[task.id] === 0 && !this.halted) this.dispatch(task);
      }
      await this.settleIfDone();
    } catch (error) {
      this.abandon(error);
    }
  }

  /** Stops the run: nothing new starts, running tasks finish, and the graph settles in `state`. */
  halt(state: HaltState, error: string): void {
    if (this.halted || this.interrupted) return;
    this.halted = { state, error };
    this.haltController.abort();
    const unstarted = this.tasks.filter((task) => task.state === TaskState.pending);
    const finalState = state === "failed" ? TaskState.skipped : TaskState.cancelled;
    for (const task of unstarted) task.state = finalState;
    if (unstarted.length > 0) {
      this.record(unstarted.map((task) => this.taskTransition(task, finalState))).catch((cause) => this.abandon(cause));
    }
    void this.settleIfDone();
  }

  /** Server shutdown: abort everything now and record nothing more; the next start resumes the graph. */
  interrupt(): void {
    if (this.interrupted) return;
    this.interrupted = true;
    this.haltController.abort();
    this.interruptController.abort();
    void this.settleIfDone();
  }

  private dispatch(task: Task): void {
    this.inFlight++;
    this.execute(task)
      .catch((error) => this.abandon(error))
      .finally(() => {
        this.inFlight--;
        void this.settleIfDone();
      });
  }

  private async execute(task: Task): Promise<void> {
    if (task.action === TaskAction.doNothing) {
      task.state = TaskState.succeeded;
      await this.record([this.taskTransition(task, TaskState.succeeded)]);
      this.onSucceeded(task);
      return;
    }
    for (;;) {
      let release: () => void;
      try {
        release = await this.deps.slots.acquire(this.haltController.signal);
      } catch (error) {
        if (isAbortError(error)) return;
        throw error;
      }
      let retryAfter: number | undefined;
      try {
        if (this.halted || this.interrupted) return;
        retryAfter = await this.attempt(task);
      } finally {
        release();
      }
      if (retryAfter === undefined) return;
      try {
        await this.deps.clock.sleep(retryAfter, this.haltController.signal);
      } catch (error) {
        if (isAbortError(error)) return;
        throw error;
      }
    }
  }

  /** Runs one attempt of a task; returns the backoff before the next attempt, or undefined when the task is done. */
  private async attempt(task: Task): Promise<number | undefined> {
    const attempt = task.attempts + 1;
    const starting = task.action === TaskAction.startNode;
    // A start task's node identity is fixed, and committed, before the driver is first called,
    // so a retried or resumed start finds the same node instead of making another.
    task.nodeId ??= this.deps.newId();
    const node = this.nodeFor(task);
    task.state = TaskState.running;
    task.attempts = attempt;
    node.state = starting ? "starting" : "stopping";
    await this.record([
      { ...this.taskTransition(task, TaskState.running), attempt },
      this.nodeTransition(node, task),
    ]);
    try {
      const handle = { id: node.id, group: node.group, version: node.version };
      const signal = this.interruptController.signal;
      await (starting ? this.deps.driver.start(handle, signal) : this.deps.driver.stop(handle, signal));
    } catch (error) {
      if (this.interrupted) return undefined;
      const message = error instanceof Error ? error.message : String(error);
      const retryable = (error as { retryable?: boolean }).retryable !== false;
      const willRetry = retryable && attempt < this.deps.maxAttempts && !this.halted;
      // A failed start leaves a failed node; a failed stop leaves it stopping until the retry, or failed at the end.
      if (starting || !willRetry) node.state = "failed";
      node.error = message;
      const nodeChange = starting || !willRetry ? [this.nodeTransition(node, task)] : [];
      if (willRetry) {
        const delay = this.deps.retryDelay(attempt);
        task.state = TaskState.pending;
        await this.record([
          ...nodeChange,
          {
            type: "task_retry",
            graphId: this.graph.id,
            group: this.graph.group,
            taskId: task.id,
            action: task.action,
            attempt,
            error: message,
            retryDelayMs: delay,
            nodeId: task.nodeId,
          },
        ]);
        this.deps.logger.warn({ graphId: this.graph.id, taskId: task.id, attempt, error: message, retryInMs: delay }, "task attempt failed; retrying");
        return delay;
      }
      task.state = TaskState.failed;
      task.error = message;
      await this.record([...nodeChange, this.taskTransition(task, TaskState.failed)]);
      const attempts = attempt === 1 ? "1 attempt" : `${attempt} attempts`;
      this.halt("failed", `task ${task.id} (${describeTask(task)}) failed after ${attempts}: ${message}`);
      return undefined;
    }
    node.state = starting ? "running" : "stopped";
    node.error = undefined;
    task.state = TaskState.succeeded;
    await this.record([this.nodeTransition(node, task), this.taskTransition(task, TaskState.succeeded)]);
    this.onSucceeded(task);
    return undefined;
  }

  private nodeFor(task: Task): Node {
    const id = task.nodeId!;
    let node = this.nodes.get(id);
    if (!node) {
      // A shut-down task's node is always known; a start task's is new (or was created by an earlier attempt).
      const now = this.deps.clock.now();
      node = {
        id,
        group: this.graph.group,
        version: task.version ?? 0,
        state: "starting",
        host: this.deps.driver.host,
        createdAt: now,
        updatedAt: now,
      };
      this.nodes.set(id, node);
    }
    return node;
  }

  private onSucceeded(task: Task): void {
    this.succeeded++;
    for (const dependent of this.dependents[task.id]!) {
      if (--this.unmetPrerequisites[dependent]! === 0 && !this.halted && !this.interrupted) {
        this.dispatch(this.tasks[dependent]!);
      }
    }
  }

  private async settleIfDone(): Promise<void> {
    if (this.settling || this.inFlight > 0) return;
    if (this.interrupted) {
      this.settling = true;
      this.resolveSettled("interrupted");
      return;
    }
    let state: RunOutcome;
    let error: string | undefined;
    if (this.halted) {
      ({ state, error } = this.halted);
    } else if (this.succeeded === this.tasks.length) {
      state = "succeeded";
    } else {
      return;
    }
    this.settling = true;
    try {
      await this.record([this.graphTransition(state, error)]);
      this.deps.logger.info({ graphId: this.graph.id, group: this.graph.group, state, error }, "graph settled");
      this.resolveSettled(state);
    } catch (cause) {
      this.settling = false;
      this.abandon(cause);
    }
  }

  /** The store failed under the run: stop as if interrupted, so the next start resumes from what was committed. */
  private abandon(error: unknown): void {
    this.deps.logger.error({ graphId: this.graph.id, err: error }, "graph run stopped: its state could not be recorded");
    this.interrupt();
  }

  private record(transitions: Transition[]) {
    return this.deps.journal.record(transitions);
  }

  private graphTransition(state: GraphState, error?: string): Transition {
    return { type: "graph", graphId: this.graph.id, group: this.graph.group, state, error };
  }

  private taskTransition(task: Task, state: TaskState): Transition & { type: "task" } {
    return {
      type: "task",
      graphId: this.graph.id,
      group: this.graph.group,
      taskId: task.id,
      action: task.action,
      state,
      error: state === TaskState.failed ? task.error : undefined,
      nodeId: task.nodeId,
      version: task.action === TaskAction.startNode ? task.version : undefined,
    };
  }

  private nodeTransition(node: Node, task: Task): Transition {
    return {
      type: "node",
      nodeId: node.id,
      group: node.group,
      state: node.state,
      version: node.version,
      host: node.host,
      error: node.state === "failed" ? node.error : undefined,
      graphId: this.graph.id,
      taskId: task.id,
    };
  }
}
