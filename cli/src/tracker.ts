import {
  type Event,
  EventType,
  type Graph,
  GraphState,
  isSettled,
  type Spec,
  type TaskAction,
  TaskState,
} from "@drover/shared";

/** What the client knows of one task of a watched graph. */
export interface TrackedTask {
  id: number;
  prerequisites: number[];
  action: TaskAction;
  version: number;
  nodeId: string;
  state: TaskState;
  attempts: number;
  error: string;
  /** Why the task, ready to run, waits (a rollout bound, the promote gate); empty when it does not. */
  waiting: string;
}

export interface TaskTally {
  total: number;
  pending: number;
  running: number;
  succeeded: number;
  failed: number;
  skipped: number;
  cancelled: number;
  /** Tasks in a final state. */
  done: number;
}

/**
 * The state of one graph as a watcher sees it: a snapshot (or a freshly planned graph)
 * with every later event applied. Pure: no I/O, no clock.
 */
export class GraphTracker {
  readonly id: string;
  readonly group: string;
  readonly revision: number;
  readonly spec: Spec | undefined;
  readonly tasks: TrackedTask[];
  state: GraphState;
  createdAt: Date | undefined;
  startedAt: Date | undefined;
  finishedAt: Date | undefined;
  error: string;
  retries: number;
  /** What the server decided when the graph settled, in words ("rolling back to revision 3"), if anything. */
  message = "";
  /** The graph that follows this one (such as the rollback its failure started), if any. */
  nextGraphId = "";
  /** The sequence number of the last event applied (or that the snapshot reflects). */
  lastSequence: number;

  /** `lastSequence` is the snapshot's sequence, or 0 for a graph whose every event is still to come. */
  constructor(graph: Graph, lastSequence = graph.sequence) {
    this.id = graph.id;
    this.group = graph.group;
    this.revision = graph.revision;
    this.spec = graph.spec;
    this.tasks = graph.tasks.map((task) => ({
      id: task.id,
      prerequisites: [...task.prerequisites],
      action: task.action,
      version: task.version,
      nodeId: task.nodeId,
      state: task.state,
      attempts: task.attempts,
      error: task.error,
      waiting: task.state === TaskState.TASK_STATE_PENDING ? task.waiting : "",
    }));
    this.state = graph.state;
    this.createdAt = graph.createdAt;
    this.startedAt = graph.startedAt;
    this.finishedAt = graph.finishedAt;
    this.error = graph.error;
    this.retries = graph.retries;
    // A snapshot of a settled graph carries what its final event said.
    this.message = graph.message ?? "";
    this.nextGraphId = graph.nextGraphId ?? "";
    this.lastSequence = lastSequence;
  }

  get settled(): boolean {
    return isSettled(this.state);
  }

  task(id: number): TrackedTask | undefined {
    return this.tasks[id]?.id === id ? this.tasks[id] : this.tasks.find((task) => task.id === id);
  }

  /**
   * Applies one event of this graph. Returns false, changing nothing, for an event already
   * applied (its sequence is not after the last one) or one that is not about this graph's tasks.
   */
  apply(event: Event): boolean {
    if (event.sequence <= this.lastSequence) return false;
    if (event.graphId !== this.id || event.type === EventType.EVENT_TYPE_NODE) return false;
    this.lastSequence = event.sequence;
    if (event.type === EventType.EVENT_TYPE_GRAPH) {
      this.state = event.graphState;
      if (event.graphState === GraphState.GRAPH_STATE_RUNNING) this.startedAt ??= event.time;
      if (isSettled(event.graphState)) {
        this.finishedAt = event.time;
        this.error = event.error;
        this.message = event.message ?? "";
        this.nextGraphId = event.nextGraphId ?? "";
      }
      return true;
    }
    const task = this.task(event.taskId);
    if (!task) return true;
    if (event.nodeId) task.nodeId = event.nodeId;
    if (event.type === EventType.EVENT_TYPE_TASK_RETRY) {
      this.retries++;
      task.state = TaskState.TASK_STATE_PENDING;
      task.error = event.error;
      task.waiting = "";
      return true;
    }
    if (event.type === EventType.EVENT_TYPE_TASK) {
      task.state = event.taskState;
      // A pending task's event says why it waits; any other state ends the wait.
      task.waiting = event.taskState === TaskState.TASK_STATE_PENDING ? (event.message ?? "") : "";
      if (event.taskState === TaskState.TASK_STATE_RUNNING) {
        task.attempts = event.attempt || task.attempts + 1;
        task.error = "";
      }
      if (event.error) task.error = event.error;
    }
    return true;
  }

  /**
   * Whether the event says that a task waits for the reason it already waited for: the stream
   * tells a wait once, however often the server re-checks it.
   */
  isRepeatedWait(event: Event): boolean {
    if (event.type !== EventType.EVENT_TYPE_TASK || event.taskState !== TaskState.TASK_STATE_PENDING || !event.message) return false;
    if (event.graphId !== this.id || event.sequence <= this.lastSequence) return false;
    const task = this.task(event.taskId);
    return task !== undefined && task.state === TaskState.TASK_STATE_PENDING && task.waiting === event.message;
  }

  /** Tasks ready to run that wait (for a rollout bound, the promote gate). */
  waitingCount(): number {
    return this.tasks.filter((task) => task.state === TaskState.TASK_STATE_PENDING && task.waiting !== "").length;
  }

  tally(): TaskTally {
    const tally: TaskTally = { total: this.tasks.length, pending: 0, running: 0, succeeded: 0, failed: 0, skipped: 0, cancelled: 0, done: 0 };
    for (const task of this.tasks) {
      switch (task.state) {
        case TaskState.TASK_STATE_RUNNING:
          tally.running++;
          break;
        case TaskState.TASK_STATE_SUCCEEDED:
          tally.succeeded++;
          break;
        case TaskState.TASK_STATE_FAILED:
          tally.failed++;
          break;
        case TaskState.TASK_STATE_SKIPPED:
          tally.skipped++;
          break;
        case TaskState.TASK_STATE_CANCELLED:
          tally.cancelled++;
          break;
        default:
          tally.pending++;
      }
    }
    tally.done = tally.succeeded + tally.failed + tally.skipped + tally.cancelled;
    return tally;
  }
}
