import { setMaxListeners } from "node:events";
import { durationText } from "@drover/shared";
import { isAbortError } from "abort-controller-x";
import type { Logger } from "pino";
import type { Clock } from "../clock.js";
import { type GraphState, type GraphWithTasks, type Node, type Task, TaskAction, TaskState } from "../domain.js";
import { DriverError, type Driver, type NodeFailure } from "../drivers/Driver.js";
import type { Journal } from "../events/Journal.js";
import type { Failpoint } from "../failpoints.js";
import { StorageFaultError } from "../errors.js";
import type { Transition } from "../store/Store.js";
import type { NodeCensus } from "./NodeCensus.js";
import { MinReadyHold } from "./MinReadyHold.js";
import { RolloutBounds } from "./RolloutBounds.js";
import type { Semaphore } from "./Semaphore.js";

/** How often a step held by a rollout bound looks at the group again. */
const BOUND_RECHECK_MS = 250;
/** How often the progress watchdog looks again during a wait that does not count (a pause, a promote gate, a storage fault). */
const UNCOUNTED_WAIT_RECHECK_MS = 1000;
/** The longest wait between attempts to settle a graph while the database cannot be written. */
const SETTLE_RETRY_MAX_MS = 2000;

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
  /**
   * Since when the run's changes can be recorded: undefined while the storage under the
   * journal refuses writes (the journal retries them meanwhile), else when it last began taking
   * them again (0: it never stopped). The progress deadline does not count the time before it.
   * Absent: always writable.
   */
  storageWritableSince?: () => number | undefined;
  /** Commits the transition that settles the graph; the reconciler may add to it (an automatic rollback). */
  settle: (graph: GraphWithTasks, transition: SettleTransition) => Promise<void>;
  /** The group's live nodes, for the rollout bounds of gated steps. */
  census: NodeCensus;
  /** Runs whose attempts still under way must finish before this run starts a task (superseded graphs). */
  after?: readonly { id: string; settled: Promise<unknown> }[];
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
 *
 * Safety, checked against what is true now rather than what was planned:
 * - A gated step (a rolling replacement's shut-down, a surge lane's start) waits, shown as
 *   waiting with why, while running it would leave fewer than count − max unavailable
 *   nodes available or more than count + max surge alive (Kubernetes' deployment
 *   controller keeps the same two bounds). The progress deadline fails a graph that waits
 *   too long (time while storage refuses writes does not count; see watchProgress).
 * - A start succeeds only after its node has been running and healthy for the spec's
 *   min-ready without a break; a node that fails within it fails that attempt.
 * - A node this run started that fails while the run goes on fails the graph, with the
 *   cause, so the failure policy applies.
 * - An `await_promotion` task (a canary's gate) waits for `promote`, or for the spec's
 *   auto-promote delay, and does not count against the progress deadline.
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
  /** Nodes whose start this run finished: their failure while the run goes on fails the graph. */
  private readonly startedNodes = new Map<string, number>();
  /** Starts holding for min-ready: told when their node fails. */
  private readonly minReady: MinReadyHold;
  /** The rollout bounds that gated steps are held to. */
  private readonly bounds: RolloutBounds;
  /** Start tasks whose attempt was abandoned because the graph was superseded. */
  private readonly abandoned = new Set<number>();
  /** Promote gates waiting, and what lets each go. */
  private readonly promotions = new Map<number, () => void>();
  private readonly maxAttempts: number;

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
    this.bounds = new RolloutBounds(deps.census, graph.group, graph.spec);
    this.minReady = new MinReadyHold(deps.clock, deps.driver, this.taskTimeoutMs);
    // A heal's start is tried once: the group's crash-loop backoff is its retry.
    this.maxAttempts = graph.reason === "heal" ? 1 : deps.maxAttempts;
    for (const task of this.tasks) {
      if (task.action === TaskAction.startNode && task.state === TaskState.succeeded && task.nodeId) this.startedNodes.set(task.nodeId, task.id);
    }
  }

  /**
   * The nodes the run is working on, which a heal must leave to it: nodes whose start or stop
   * is under way or will be retried, nodes an ungated step will shut down (a plan's clean-up
   * of failed nodes, which comes with their replacements), and nodes it started (their failure
   * fails the run). A failed node that only a gated step of a rolling lane will shut down is
   * not claimed: that step may wait behind the very availability bound the dead node broke,
   * so a heal replaces it meanwhile (and the surplus goes once the rollout has succeeded).
   */
  claimedNodes(): Set<string> {
    const claimed = new Set(this.startedNodes.keys());
    for (const task of this.tasks) {
      if (task.nodeId === undefined) continue;
      const underWay = task.state === TaskState.running || (task.state === TaskState.pending && task.attempts > 0);
      // A running graph replaces a failed node its plan names itself (see replaceEarly); a paused one does not.
      const planned = task.state === TaskState.pending && (!this.paused || (task.action === TaskAction.shutDownNode && !task.gated));
      if (underWay || planned) claimed.add(task.nodeId);
    }
    return claimed;
  }

  /** Whether the run waits at a promote gate now. */
  get awaitingPromotion(): boolean {
    return this.promotions.size > 0;
  }

  /** Lets every promote gate that waits go on; returns whether one did. */
  promote(): boolean {
    const gates = [...this.promotions.values()];
    for (const go of gates) go();
    return gates.length > 0;
  }

  /**
   * A node of the group failed. Returns whether the run owns it: a start holding for min-ready
   * fails its attempt; a node the run started fails the graph.
   */
  nodeFailed(nodeId: string, failure: NodeFailure): boolean {
    if (this.minReady.nodeFailed(nodeId, failure)) return true;
    const taskId = this.startedNodes.get(nodeId);
    if (taskId === undefined || this.halted || this.interrupted || this.settling) return this.replaceEarly(nodeId);
    const task = this.tasks[taskId]!;
    this.halt("failed", `node ${nodeId} (started by task ${taskId}, ${describeTask(task)}) ${failure.state === "failed" ? "failed" : "turned unhealthy"} while the rollout ran: ${failure.reason}`);
    return true;
  }

  /**
   * A node a later step of a rolling lane would replace has failed: that replacement runs now,
   * out of the lane's order (the dead node's shut-down, and in a surge lane the start before
   * it), so the group gets its capacity back without waiting for the lane, whose next
   * shut-down may be held by the very availability bound the dead node broke. Shutting down a
   * failed node costs no availability, and a surge lane's start is still gated. Returns
   * whether the run took the node on; a paused run does not (a heal replaces it instead).
   */
  private replaceEarly(nodeId: string): boolean {
    if (this.paused || this.halted || this.interrupted || this.settling) return false;
    const shutDown = this.tasks.find(
      (task) => task.action === TaskAction.shutDownNode && task.nodeId === nodeId && task.state === TaskState.pending && task.attempts === 0,
    );
    if (!shutDown) return false;
    // Already ready (or in line): it runs as soon as it can anyway.
    if (this.unmetPrerequisites[shutDown.id]! <= 0) return true;
    // In a surge lane the node's replacement is the (gated) start just before its shut-down; in an
    // unavailability lane it is the start just after, and the start before belongs to another node.
    const surgeStart = shutDown.prerequisites
      .map((id) => this.tasks[id]!)
      .find((task) => task.action === TaskAction.startNode && task.gated && task.state === TaskState.pending && task.attempts === 0);
    if (surgeStart) {
      // The start first, then the shut-down once it succeeded, as the lane would.
      if (this.unmetPrerequisites[surgeStart.id]! > 0) {
        this.unmetPrerequisites[surgeStart.id] = 0;
        this.ready(surgeStart);
      }
      this.unmetPrerequisites[shutDown.id] = 1;
    } else {
      // Its replacement now starts out of the lane's order, so it must keep to the surge bound itself.
      for (let edge = this.firstDependent[shutDown.id]!; edge < this.firstDependent[shutDown.id + 1]!; edge++) {
        const dependent = this.tasks[this.dependents[edge]!]!;
        if (dependent.action === TaskAction.startNode) dependent.gated = true;
      }
      this.unmetPrerequisites[shutDown.id] = 0;
      this.ready(shutDown);
    }
    this.deps.logger.info({ graphId: this.graph.id, nodeId, taskId: shutDown.id }, "replacing a failed node ahead of its lane");
    return true;
  }

  /**
   * A newer revision replaces this graph: starts under way are abandoned (their nodes are
   * stopped) instead of awaited, so that the new plan need not wait for a slow or hung start.
   * Returns the nodes being abandoned, which the new plan must not count on.
   */
  abandonStarts(): string[] {
    const nodes: string[] = [];
    for (const [taskId, controller] of this.startControllers) {
      const task = this.tasks[taskId]!;
      this.abandoned.add(taskId);
      if (task.nodeId) nodes.push(task.nodeId);
      controller.abort();
    }
    return nodes;
  }

  /** Start attempts under way, by task: aborted when the graph is superseded. */
  private readonly startControllers = new Map<number, AbortController>();

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
      // The group's live nodes, for gated steps and for shut-downs of nodes another graph already stopped.
      await this.deps.census.load(this.graph.group);
      this.succeeded = this.tasks.filter((task) => task.state === TaskState.succeeded).length;
      // Attempts under way when the last server stopped are finished first, whatever else happens.
      for (const task of this.tasks) if (task.state === TaskState.running) this.dispatch(task, true);
      const failed = this.tasks.find((task) => task.state === TaskState.failed);
      const cancelled = this.tasks.some((task) => task.state === TaskState.cancelled || task.state === TaskState.skipped);
      if (failed) this.halt("failed", failed.error ?? `task ${failed.id} (${describeTask(failed)}) failed`);
      else if (cancelled) this.halt("cancelled", "cancelled while the server was stopping");
      const ready = this.tasks.filter((task) => task.state === TaskState.pending && this.unmetPrerequisites[task.id] === 0);
      await running;
      await this.waitForSupersededRuns(ready);
      for (const task of ready) this.ready(task);
      // A node a lane would replace that failed before this run could hear of it (while the server
      // was down, or as the graph was stored) is replaced now, as a failure heard later would be.
      for (const task of this.tasks) {
        if (task.action !== TaskAction.shutDownNode || !task.gated || task.state !== TaskState.pending || task.nodeId === undefined) continue;
        if (this.deps.census.stateOf(this.graph.group, task.nodeId) === "failed") this.replaceEarly(task.nodeId);
      }
      void this.watchProgress();
      await this.settleIfDone();
    } catch (error) {
      this.abandon(error);
    }
  }

  /**
   * The graphs this one superseded may still have attempts under way (a stop finishing its
   * grace period): the first tasks wait for them, and say so.
   */
  private async waitForSupersededRuns(ready: readonly Task[]): Promise<void> {
    const after = this.deps.after ?? [];
    if (after.length === 0) return;
    const why = `waiting for superseded graph ${after.map((run) => run.id).join(", ")} to finish its running tasks`;
    // A message per ready task, up to a hundred: a watcher sees why, a huge graph does not pay for it.
    const shown = ready.filter((task) => task.action !== TaskAction.doNothing).slice(0, 100);
    if (shown.length > 0) {
      await this.record(shown.map((task) => ({ ...this.taskTransition(task, TaskState.pending), waiting: why, message: why })));
    }
    await Promise.allSettled(after.map((run) => run.settled));
    this.lastProgressAt = this.deps.clock.now();
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
    if (task.action === TaskAction.awaitPromotion) {
      this.awaitPromotion(task).then(this.taskDone, this.taskAbandoned);
      return;
    }
    if (task.gated && !mustFinish) {
      this.admitWithinBounds(task).catch(this.taskAbandoned);
      return;
    }
    this.waiting.push({ task, mustFinish });
    this.askForSlots();
  }

  /**
   * Holds a gated step until the group, as it is now, can take it within the rollout bounds;
   * then puts it in line for a slot. Says why it waits, each time the reason changes.
   */
  private async admitWithinBounds(task: Task): Promise<void> {
    await this.deps.census.load(this.graph.group);
    let shown: string | undefined;
    for (;;) {
      if (this.halted || this.interrupted) {
        this.taskDone();
        return;
      }
      const broken = this.bounds.broken(task);
      if (broken === undefined) {
        this.bounds.admit(task);
        this.waiting.push({ task, mustFinish: false });
        this.askForSlots();
        return;
      }
      if (broken !== shown) {
        shown = broken;
        task.waiting = broken;
        await this.record([{ ...this.taskTransition(task, TaskState.pending), waiting: broken, message: `waiting: ${broken}` }]);
      }
      try {
        await this.deps.clock.sleep(BOUND_RECHECK_MS, this.haltController.signal);
      } catch {
        // Halted: the loop's next turn lets go of the task.
      }
    }
  }

  /**
   * A canary's promote gate: pending, with why, until `promote` or the spec's auto-promote
   * delay (counted from when the canaries' starts succeeded, that is once they were past
   * min-ready); a halt (a canary failed, a cancel) ends the wait and the halt settles the task.
   */
  private async awaitPromotion(task: Task): Promise<void> {
    const auto = this.graph.spec.autoPromoteAfterMs ?? 0;
    const how = `'client graphs promote ${this.graph.id}'`;
    const why =
      auto > 0 ? `canaries are up: promoting by itself in ${durationText(auto)}, or now with ${how}` : `canaries are up: waiting for ${how}`;
    task.waiting = why;
    await this.record([{ ...this.taskTransition(task, TaskState.pending), waiting: why, message: why }]);
    const promoted = await new Promise<boolean>((resolve) => {
      const signal = this.haltController.signal;
      if (signal.aborted) return resolve(false);
      const finish = (value: boolean) => {
        cancelAuto();
        signal.removeEventListener("abort", onHalt);
        this.promotions.delete(task.id);
        resolve(value);
      };
      const onHalt = () => finish(false);
      const cancelAuto = auto > 0 ? this.deps.clock.setTimer(auto, () => finish(true)) : () => {};
      signal.addEventListener("abort", onHalt, { once: true });
      this.promotions.set(task.id, () => finish(true));
    });
    if (!promoted || this.halted || this.interrupted) return;
    this.lastProgressAt = this.deps.clock.now();
    this.deps.logger.info({ graphId: this.graph.id, taskId: task.id }, "promoted");
    await this.succeedWithoutWork(task);
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
        // Checked against the bounds again when the run resumes.
        this.bounds.release(task.id);
        this.deferred.push(task);
        return;
      }
      retryAfter = await this.attempt(task, release);
    } finally {
      this.bounds.release(task.id);
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
    if (!starting && task.state === TaskState.pending && task.nodeId !== undefined && this.deps.census.isGone(this.graph.group, task.nodeId)) {
      // Another graph (a heal) has stopped the node already: nothing to do, and stopped never leaves.
      task.state = TaskState.succeeded;
      task.attempts = attempt;
      releaseSlot();
      await this.record([{ ...this.taskTransition(task, TaskState.running), attempt }, this.taskTransition(task, TaskState.succeeded)]);
      this.onSucceeded(task);
      return undefined;
    }
    // A start task's node identity is fixed, and committed, before the driver is first called,
    // so a retried or resumed start finds the same node instead of making another.
    task.nodeId ??= this.deps.newId();
    const node = this.nodeFor(task);
    task.state = TaskState.running;
    task.attempts = attempt;
    task.waiting = undefined;
    node.state = starting ? "starting" : "stopping";
    if (starting) {
      node.revision = task.revision ?? this.graph.revision;
      node.templateHash = task.templateHash ?? this.graph.spec.templateHash ?? "";
    }
    const controller = new AbortController();
    if (starting) this.startControllers.set(task.id, controller);
    await this.record([
      { ...this.taskTransition(task, TaskState.running), attempt },
      this.nodeTransition(node, task),
    ]);
    // Committed: the census counts the node now, so it no longer needs counting as admitted.
    this.bounds.release(task.id);
    this.attemptStartedAt.set(task.id, this.deps.clock.now());
    this.runningAttempts.add(controller);
    let timedOut = false;
    const cancelTimeout = this.deps.clock.setTimer(this.taskTimeoutMs, () => {
      timedOut = true;
      controller.abort();
    });
    const handle = { id: node.id, group: node.group, version: node.version, memoryMb: this.graph.spec.memoryMb, revision: node.revision };
    try {
      if (this.interrupted || this.abandoned.has(task.id)) controller.abort();
      this.deps.failpoint(starting ? "driver.before-start" : "driver.before-stop");
      await (starting ? this.deps.driver.start(handle, controller.signal) : this.deps.driver.stop(handle, controller.signal));
      this.deps.failpoint(starting ? "driver.after-start" : "driver.after-stop");
      const minReadyMs = this.graph.spec.minReadyMs ?? 0;
      if (starting && minReadyMs > 0) {
        // Slots bound driver calls; a node proving itself holds none. The task timeout bounds the
        // driver's call, not min-ready, which has its own length (a 6m min-ready must not time out at 5m).
        releaseSlot();
        cancelTimeout();
        await this.minReady.hold(node, handle, minReadyMs, controller.signal);
      }
    } catch (error) {
      if (this.interrupted) return undefined;
      if (this.abandoned.has(task.id)) return this.abandonStart(task, node, handle);
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
      this.startControllers.delete(task.id);
      this.attemptStartedAt.delete(task.id);
      this.lastProgressAt = this.deps.clock.now();
    }
    releaseSlot();
    node.state = starting ? "running" : "stopped";
    node.error = undefined;
    task.state = TaskState.succeeded;
    if (starting) this.startedNodes.set(node.id, task.id);
    await this.record([this.nodeTransition(node, task), this.taskTransition(task, TaskState.succeeded)]);
    this.onSucceeded(task);
    return undefined;
  }

  /** A start abandoned because the graph was superseded: its node is stopped and the task cancelled. */
  private async abandonStart(task: Task, node: Node, handle: Parameters<Driver["stop"]>[0]): Promise<undefined> {
    try {
      await this.deps.driver.stop(handle, AbortSignal.timeout(this.taskTimeoutMs));
      node.state = "stopped";
    } catch (error) {
      node.state = "failed";
      node.error = `its abandoned start could not be stopped: ${error instanceof Error ? error.message : String(error)}`;
    }
    task.state = TaskState.cancelled;
    task.error = "abandoned: the graph was superseded while the node started";
    await this.record([this.nodeTransition(node, task), { ...this.taskTransition(task, TaskState.cancelled), error: task.error }]);
    return undefined;
  }

  private async attemptFailed(task: Task, node: Node, attempt: number, message: string, retryable: boolean) {
    const starting = task.action === TaskAction.startNode;
    const willRetry = retryable && attempt < this.maxAttempts && !this.halted;
    // A failed start leaves a failed node; a failed stop leaves it stopping until the retry, or failed at the end.
    const nodeFailed = starting || !willRetry;
    if (nodeFailed) {
      node.state = "failed";
      node.error = message;
      // A heal's replacement that fails to start is still capacity the group lost: the next heal
      // (after the crash-loop backoff) replaces it, rather than leaving the group short for good.
      if (starting && this.graph.reason === "heal") node.exitStatus ??= "did not start";
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

  /**
   * Fails the graph when no task has finished for the progress deadline. Waits that are not
   * the graph's own lack of progress do not count: a pause or a promote gate (an operator's
   * wait), and a storage fault (nothing can be recorded, so no task can start or finish; like
   * Kubernetes' progressDeadlineSeconds, the deadline measures the workload, not the server's
   * own storage). When such a wait ends, the deadline starts again in full, whatever of it
   * had passed before: the graph gets the whole deadline after a pause, after a promotion and
   * after storage takes writes again (a fault that came and went between two looks counts
   * too: the deadline starts from when it cleared).
   */
  private async watchProgress(): Promise<void> {
    const signal = this.haltController.signal;
    while (!signal.aborted) {
      const now = this.deps.clock.now();
      const writableSince = this.deps.storageWritableSince ? this.deps.storageWritableSince() : 0;
      const uncountedWait = this.paused || this.promotions.size > 0 || writableSince === undefined;
      this.lastProgressAt = Math.max(this.lastProgressAt, writableSince ?? now);
      if (uncountedWait) this.lastProgressAt = now;
      const wait = this.lastProgressAt + this.progressDeadlineMs - now;
      if (wait > 0 || uncountedWait) {
        try {
          await this.deps.clock.sleep(uncountedWait ? UNCOUNTED_WAIT_RECHECK_MS : wait, signal);
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
    const held = this.tasks.find((task) => task.state === TaskState.pending && task.waiting !== undefined && this.unmetPrerequisites[task.id] === 0);
    if (held) return `task ${held.id} (${describeTask(held)}) is still waiting: ${held.waiting}`;
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

  /** The wait before settling again after a storage fault, doubling up to SETTLE_RETRY_MAX_MS. */
  private settleRetryMs = 25;

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
      if (cause instanceof StorageFaultError && cause.fault.retryable) {
        // The database cannot be written yet (a full disk): settle again later, as the journal retries.
        this.settleRetryMs = Math.min(this.settleRetryMs * 2, SETTLE_RETRY_MAX_MS);
        this.deps.clock.setTimer(this.settleRetryMs, () => void this.settleIfDone());
        return;
      }
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
      revision: node.revision,
      templateHash: node.templateHash,
      exitStatus: node.exitStatus,
    };
  }
}
