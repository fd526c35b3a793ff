import { setMaxListeners } from "node:events";
import { isAbortError } from "abort-controller-x";
import type { Logger } from "pino";
import type { Clock } from "../clock.js";
import { type GraphState, type GraphWithTasks, type Node, type Task, TaskAction, TaskState } from "../domain.js";
import type { Driver } from "../drivers/Driver.js";
import type { Journal } from "../events/Journal.js";
import type { Failpoint } from "../failpoints.js";
import type { Transition } from "../store/Store.js";
import type { Semaphore } from "./Semaphore.js";

/** The transition that settles a graph. */
export type SettleTransition = Transition & { type: "graph" };

export interface RunDependencies {
  journal: Journal;
  driver: Driver;
  clock: Clock;
  slots: Semaphore;
  newId: () => string;
  logger: Logger;
  failpoint: Failpoint;
  maxAttempts: number;
  /** The wait before attempt `attempt + 1`, after attempt `attempt` failed. */
  retryDelay: (attempt: number) => number;
  /** How long one attempt may take, when the graph's spec does not say. */
  defaultTaskTimeoutMs: number;
  /** How long the graph may go without a task finishing, when its spec does not say. */
  defaultProgressDeadlineMs: number;
  /** Commits the transition that settles the graph; the reconciler may add to it (an automatic rollback). */
  settle: (graph: GraphWithTasks, transition: SettleTransition) => Promise<void>;
}

/** How a run ended: a final graph state, or interrupted by a server shutdown (the store still says running). */
export type RunOutcome = Exclude<GraphState, "pending" | "running" | "paused"> | "interrupted";

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
 * Halting: when a task uses up its attempts, or the graph is cancelled or superseded,
 * nothing new starts, tasks not started are marked skipped (failure) or cancelled, running
 * tasks finish (so no node is left half-started), and then the graph settles. A graph
 * that misses its progress deadline also aborts its running attempts, since they may be
 * the ones that are stuck.
 *
 * Pausing: running tasks finish; tasks that become ready wait until the run resumes.
 */
export class GraphRun {
  readonly settled: Promise<RunOutcome>;
  private resolveSettled!: (outcome: RunOutcome) => void;
  private readonly tasks: Task[];
  private readonly dependents: Int32Array;
  private readonly firstDependent: Int32Array;
  private readonly unmetPrerequisites: Int32Array;
  private halted: { state: HaltState; error: string } | undefined;
  private interrupted = false;
  private paused: boolean;
  private settling = false;
  /** Tasks that became ready while the run was paused. */
  private deferred: Task[] = [];
  /** Aborts a retry's backoff when the run halts or is interrupted (a halt drops queued tasks itself). */
  private readonly haltController = new AbortController();
  /** Aborted when the server shuts down (or the run settles): the run's requests for slots end. */
  private readonly interruptController = new AbortController();
  /**
   * Each running attempt's own controller, aborted by a shutdown or a missed progress
   * deadline; one controller each, rather than listeners on shared signals, keeps an
   * attempt's set-up O(1) however many run at once.
   */
  private readonly runningAttempts = new Set<AbortController>();
  private deadlineMissed = false;
  /** Dispatched tasks, queued, waiting, running, or backing off before a retry. */
  private inFlight = 0;
  /** Tasks in line for a slot, from `waitingHead` on. */
  private waiting: { task: Task; mustFinish: boolean }[] = [];
  private waitingHead = 0;
  /** Slots asked of the semaphore and not yet granted. */
  private asking = 0;
  private succeeded = 0;
  /** When each running attempt began, for naming a stuck task. */
  private readonly attemptStartedAt = new Map<number, number>();
  private lastProgressAt: number;
  private readonly taskTimeoutMs: number;
  private readonly progressDeadlineMs: number;

  /** The graph without its tasks (the run's own copies are `tasks`). */
  private readonly graph: GraphWithTasks;

  constructor(
    graph: GraphWithTasks,
    private readonly nodes: Map<string, Node>,
    private readonly deps: RunDependencies,
  ) {
    this.settled = new Promise((resolve) => (this.resolveSettled = resolve));
    // Every task backing off before a retry listens to these; a big graph may have many.
    setMaxListeners(0, this.haltController.signal, this.interruptController.signal);
    this.tasks = graph.tasks.map((task) => ({ ...task }));
    // Not the caller's tasks too: a 100,000-task graph would be held twice.
    this.graph = { ...graph, tasks: [] };
    // Each task's dependents in one flat array (compressed rows): the dependents of task t are
    // dependents[firstDependent[t] .. firstDependent[t + 1]). An array per task was 100,000 arrays.
    const count = this.tasks.length;
    this.firstDependent = new Int32Array(count + 1);
    this.unmetPrerequisites = new Int32Array(count);
    let edges = 0;
    for (const task of this.tasks) {
      for (const prerequisite of task.prerequisites) {
        this.firstDependent[prerequisite + 1]!++;
        edges++;
        if (this.tasks[prerequisite]!.state !== TaskState.succeeded) this.unmetPrerequisites[task.id]!++;
      }
    }
    for (let id = 0; id < count; id++) this.firstDependent[id + 1]! += this.firstDependent[id]!;
    this.dependents = new Int32Array(edges);
    const filled = this.firstDependent.slice(0, count);
    for (const task of this.tasks) {
      for (const prerequisite of task.prerequisites) this.dependents[filled[prerequisite]!++] = task.id;
    }
    this.paused = graph.state === "paused";
    this.lastProgressAt = deps.clock.now();
    this.taskTimeoutMs = graph.spec.taskTimeoutMs || deps.defaultTaskTimeoutMs;
    this.progressDeadlineMs = graph.spec.progressDeadlineMs || deps.defaultProgressDeadlineMs;
  }

  get id(): string {
    return this.graph.id;
  }

  get group(): string {
    return this.graph.group;
  }

  get isPaused(): boolean {
    return this.paused;
  }

  get isHalted(): boolean {
    return this.halted !== undefined;
  }

  /** Starts (or, after a restart, resumes) the run; `settled` tells how it ended. */
  async start(): Promise<void> {
    try {
      // Not awaited before the first tasks start: their transitions join its transaction (in
      // order, after it), which saves a commit before any work begins. Awaited below.
      const running = this.graph.state === "pending" ? this.record([this.graphTransition("running")]) : undefined;
      this.succeeded = this.tasks.filter((task) => task.state === TaskState.succeeded).length;
      // Attempts under way when the last server stopped are finished first, whatever else happens.
      for (const task of this.tasks) if (task.state === TaskState.running) this.dispatch(task, true);
      const failed = this.tasks.find((task) => task.state === TaskState.failed);
      const cancelled = this.tasks.some((task) => task.state === TaskState.cancelled || task.state === TaskState.skipped);
      if (failed) this.halt("failed", failed.error ?? `task ${failed.id} (${describeTask(failed)}) failed`);
      else if (cancelled) this.halt("cancelled", "cancelled while the server was stopping");
      for (const task of this.tasks) {
        if (task.state === TaskState.pending && this.unmetPrerequisites[task.id] === 0) this.ready(task);
      }
      await running;
      void this.watchProgress();
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
    this.deferred = [];
    // Nothing new starts; an attempt that was under way when the server last stopped still finishes.
    this.dropWaiting((entry) => entry.mustFinish);
    const transitions: Transition[] = [];
    for (const task of this.tasks) {
      if (task.state !== TaskState.pending) continue;
      if (task.attempts === 0) {
        task.state = state === "failed" ? TaskState.skipped : TaskState.cancelled;
        transitions.push(this.taskTransition(task, task.state));
        continue;
      }
      // A task waiting to retry a failed attempt ran, so it was not skipped: it ends with its last error.
      task.state = state === "failed" ? TaskState.failed : TaskState.cancelled;
      task.error = `${task.error}; not retried: the graph ${state === "failed" ? "failed" : `was ${state}`}`;
      transitions.push({ ...this.taskTransition(task, task.state), error: task.error });
      const node = task.nodeId === undefined ? undefined : this.nodes.get(task.nodeId);
      if (node && node.state === "stopping") {
        // Its stop failed and will not be tried again: the node is in an unknown state, so failed.
        node.state = "failed";
        node.error = task.error;
        transitions.push(this.nodeTransition(node, task));
      }
    }
    if (transitions.length > 0) this.record(transitions).catch((cause) => this.abandon(cause));
    void this.settleIfDone();
  }

  /** Lets running tasks finish and starts no new ones until `resume`. */
  async pause(): Promise<void> {
    if (this.paused || this.halted || this.interrupted) return;
    this.paused = true;
    await this.record([this.graphTransition("paused")]);
  }

  async resume(): Promise<void> {
    if (!this.paused || this.halted || this.interrupted) return;
    this.paused = false;
    this.lastProgressAt = this.deps.clock.now();
    await this.record([this.graphTransition("running")]);
    const deferred = this.deferred;
    this.deferred = [];
    for (const task of deferred) this.ready(task);
  }

  /** Server shutdown: abort everything now and record nothing more; the next start resumes the graph. */
  interrupt(): void {
    if (this.interrupted) return;
    this.interrupted = true;
    this.haltController.abort();
    this.interruptController.abort();
    this.dropWaiting(() => false);
    for (const running of this.runningAttempts) running.abort();
    void this.settleIfDone();
  }

  /** A task whose prerequisites have all succeeded: run it, or keep it for later while paused. */
  private ready(task: Task): void {
    if (this.halted || this.interrupted) return;
    if (this.paused) this.deferred.push(task);
    else this.dispatch(task, false);
  }

  /**
   * Puts a task in line for a slot. Tasks wait in the run's own queue, and the run asks the
   * shared semaphore for at most as many slots as it has tasks waiting (and no more than the
   * semaphore has): a 100,000-task scale-up is one array of waiting tasks, not 100,000 suspended
   * calls each with a promise in the semaphore's queue.
   */
  private dispatch(task: Task, mustFinish: boolean): void {
    this.inFlight++;
    if (task.action === TaskAction.doNothing) {
      this.succeedWithoutWork(task).then(this.taskDone, this.taskAbandoned);
      return;
    }
    this.waiting.push({ task, mustFinish });
    this.askForSlots();
  }

  private readonly taskDone = () => {
    this.inFlight--;
    void this.settleIfDone();
  };

  private readonly taskAbandoned = (error: unknown) => {
    this.abandon(error);
    this.taskDone();
  };

  private askForSlots(): void {
    const capacity = this.deps.slots.capacity;
    while (this.asking < capacity && this.asking < this.waiting.length - this.waitingHead) {
      this.asking++;
      // A shutdown ends the wait; a halt drops the queued tasks instead (see `dropWaiting`).
      this.deps.slots.acquire(this.interruptController.signal).then(this.slotGranted, this.slotRefused);
    }
  }

  private readonly slotGranted = (release: () => void) => {
    this.asking--;
    const next = this.nextWaiting();
    if (!next) {
      release();
      return;
    }
    this.runWithSlot(next.task, next.mustFinish, release).then(this.taskDone, this.taskAbandoned);
    // Asking was capped at the semaphore's size: tasks still in line may need another ask.
    this.askForSlots();
  };

  private readonly slotRefused = () => {
    this.asking--;
  };

  private nextWaiting(): { task: Task; mustFinish: boolean } | undefined {
    if (this.waitingHead === this.waiting.length) return undefined;
    const next = this.waiting[this.waitingHead]!;
    this.waiting[this.waitingHead++] = undefined as never;
    if (this.waitingHead === this.waiting.length) {
      this.waiting = [];
      this.waitingHead = 0;
    }
    return next;
  }

  /** Takes out of line every waiting task that `keep` does not keep; they are done with. */
  private dropWaiting(keep: (entry: { task: Task; mustFinish: boolean }) => boolean): void {
    const kept = this.waiting.slice(this.waitingHead).filter(keep);
    this.inFlight -= this.waiting.length - this.waitingHead - kept.length;
    this.waiting = kept;
    this.waitingHead = 0;
  }

  private async succeedWithoutWork(task: Task): Promise<void> {
    task.state = TaskState.succeeded;
    await this.record([this.taskTransition(task, TaskState.succeeded)]);
    this.onSucceeded(task);
  }

  /** Runs a task with the slot it was given; a failed attempt goes back in line after its backoff. `mustFinish`: an attempt already under way, run even if halted. */
  private async runWithSlot(task: Task, mustFinish: boolean, release: () => void): Promise<void> {
    let retryAfter: number | undefined;
    try {
      if (this.interrupted || (this.halted && !mustFinish)) return;
      if (this.paused && !mustFinish) {
        this.deferred.push(task);
        return;
      }
      retryAfter = await this.attempt(task, release);
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
    if (this.interrupted || this.halted) return;
    this.dispatch(task, false);
  }

  /**
   * Runs one attempt of a task; returns the backoff before the next attempt, or undefined when
   * the task is done. `releaseSlot` gives the slot back as soon as the driver has done its part
   * (slots bound driver operations under way), so the next task's start is committed in the
   * same transaction as this one's success instead of one commit later.
   */
  private async attempt(task: Task, releaseSlot: () => void): Promise<number | undefined> {
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
    this.attemptStartedAt.set(task.id, this.deps.clock.now());
    const controller = new AbortController();
    this.runningAttempts.add(controller);
    let timedOut = false;
    const cancelTimeout = this.deps.clock.setTimer(this.taskTimeoutMs, () => {
      timedOut = true;
      controller.abort();
    });
    try {
      if (this.interrupted) controller.abort();
      const handle = { id: node.id, group: node.group, version: node.version, memoryMb: this.graph.spec.memoryMb };
      this.deps.failpoint(starting ? "driver.before-start" : "driver.before-stop");
      await (starting ? this.deps.driver.start(handle, controller.signal) : this.deps.driver.stop(handle, controller.signal));
      this.deps.failpoint(starting ? "driver.after-start" : "driver.after-stop");
    } catch (error) {
      if (this.interrupted) return undefined;
      let message = error instanceof Error ? error.message : String(error);
      let retryable = (error as { retryable?: boolean }).retryable !== false;
      if (timedOut) {
        message = `attempt timed out after ${this.taskTimeoutMs}ms`;
      } else if (this.deadlineMissed) {
        message = `aborted: ${this.halted?.error ?? "the graph stopped"}`;
        retryable = false;
      }
      return this.attemptFailed(task, node, attempt, message, retryable);
    } finally {
      cancelTimeout();
      this.runningAttempts.delete(controller);
      this.attemptStartedAt.delete(task.id);
      this.lastProgressAt = this.deps.clock.now();
    }
    releaseSlot();
    node.state = starting ? "running" : "stopped";
    node.error = undefined;
    task.state = TaskState.succeeded;
    await this.record([this.nodeTransition(node, task), this.taskTransition(task, TaskState.succeeded)]);
    this.onSucceeded(task);
    return undefined;
  }

  private async attemptFailed(task: Task, node: Node, attempt: number, message: string, retryable: boolean) {
    const starting = task.action === TaskAction.startNode;
    const willRetry = retryable && attempt < this.deps.maxAttempts && !this.halted;
    // A failed start leaves a failed node; a failed stop leaves it stopping until the retry, or failed at the end.
    const nodeFailed = starting || !willRetry;
    if (nodeFailed) {
      node.state = "failed";
      node.error = message;
    }
    const nodeChange = nodeFailed ? [this.nodeTransition(node, task)] : [];
    if (willRetry) {
      const delay = this.deps.retryDelay(attempt);
      task.state = TaskState.pending;
      task.error = message;
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

  /** Fails the graph when no task has finished for the progress deadline (a paused graph has none). */
  private async watchProgress(): Promise<void> {
    const signal = this.haltController.signal;
    while (!signal.aborted) {
      const wait = this.lastProgressAt + this.progressDeadlineMs - this.deps.clock.now();
      if (wait > 0 || this.paused) {
        try {
          await this.deps.clock.sleep(this.paused ? 1000 : wait, signal);
        } catch {
          return;
        }
        continue;
      }
      this.halt("failed", `no task finished for ${this.progressDeadlineMs}ms: ${this.describeStuck()}`);
      this.deadlineMissed = true;
      for (const running of this.runningAttempts) running.abort();
      return;
    }
  }

  private describeStuck(): string {
    let oldest: [number, number] | undefined;
    for (const [taskId, since] of this.attemptStartedAt) if (!oldest || since < oldest[1]) oldest = [taskId, since];
    if (oldest) {
      const task = this.tasks[oldest[0]]!;
      return `task ${task.id} (${describeTask(task)}) has been running for ${this.deps.clock.now() - oldest[1]}ms`;
    }
    const waiting = this.tasks.find((task) => task.state === TaskState.pending && this.unmetPrerequisites[task.id] === 0);
    return waiting ? `task ${waiting.id} (${describeTask(waiting)}) is still waiting for a free slot` : "no task is running";
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
    this.lastProgressAt = this.deps.clock.now();
    for (let edge = this.firstDependent[task.id]!; edge < this.firstDependent[task.id + 1]!; edge++) {
      const dependent = this.dependents[edge]!;
      if (--this.unmetPrerequisites[dependent]! === 0) this.ready(this.tasks[dependent]!);
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
    // Nothing waits or runs any more; aborting lets everything that listened let go of the run.
    this.haltController.abort();
    this.interruptController.abort();
    try {
      await this.deps.settle({ ...this.graph, tasks: this.tasks }, this.graphTransition(state, error));
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

  private graphTransition(state: GraphState, error?: string): SettleTransition {
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
