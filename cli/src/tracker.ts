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
 * with every later event applied. Pure: no I/O, no clock. Applying an event, the tally and
 * the count of waiting tasks take constant time whatever the graph's size: a follower asks
 * for them after every event, and a 100,000-task graph has 200,000 of them.
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
  /** How many tasks are in each state (indexed by TaskState), and how many of the pending ones wait. */
  private readonly inState: number[] = [];
  private waiting = 0;

  /** `lastSequence` is the snapshot's sequence, or 0 for a graph whose every event is still to come. */
  constructor(graph: Graph, lastSequence = graph.sequence) {
    this.id = graph.id;
    this.group = graph.group;
    this.revision = graph.revision;
    this.spec = graph.spec;
    this.tasks = graph.tasks.map((task) => this.counted({
      id: task.id,
      prerequisites: [...task.prerequisites],
      action: task.action,
      version: task.version,
      nodeId: task.nodeId,
      state: task.state,
      attempts: task.attempts,
      error: task.error,
      waiting: task.state === TaskState.TASK_STATE_PENDING ? task.waiting : "",
    }, 1));
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
      this.setState(task, TaskState.TASK_STATE_PENDING, "");
      task.error = event.error;
      return true;
    }
    if (event.type === EventType.EVENT_TYPE_TASK) {
      // A pending task's event says why it waits; any other state ends the wait.
      this.setState(task, event.taskState, event.taskState === TaskState.TASK_STATE_PENDING ? (event.message ?? "") : "");
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
    return this.waiting;
  }

  tally(): TaskTally {
    const count = (state: TaskState) => this.inState[state] ?? 0;
    const running = count(TaskState.TASK_STATE_RUNNING);
    const succeeded = count(TaskState.TASK_STATE_SUCCEEDED);
    const failed = count(TaskState.TASK_STATE_FAILED);
    const skipped = count(TaskState.TASK_STATE_SKIPPED);
    const cancelled = count(TaskState.TASK_STATE_CANCELLED);
    const done = succeeded + failed + skipped + cancelled;
    // Pending is everything else, as it always was: a state this client does not know counts as pending.
    const total = this.tasks.length;
    return { total, pending: total - done - running, running, succeeded, failed, skipped, cancelled, done };
  }

  /** Moves a task to a state (and a reason to wait, or none), keeping the counts. */
  private setState(task: TrackedTask, state: TaskState, waiting: string): void {
    this.counted(task, -1);
    task.state = state;
    task.waiting = waiting;
    this.counted(task, 1);
  }

  /** Adds a task to the counts (`by` 1) or takes it out of them (-1); returns it. */
  private counted(task: TrackedTask, by: 1 | -1): TrackedTask {
    this.inState[task.state] = (this.inState[task.state] ?? 0) + by;
    if (task.state === TaskState.TASK_STATE_PENDING && task.waiting !== "") this.waiting += by;
    return task;
  }
}
