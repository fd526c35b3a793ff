import type {
  Event,
  Graph,
  GraphState,
  GraphWithTasks,
  Node,
  NodeState,
  NodeTemplate,
  PlannedTask,
  Revision,
  RevisionReason,
  Spec,
  Task,
  TaskAction,
  TaskState,
} from "../domain.js";

/**
 * One state change to commit. Each becomes a row update and one event, in the order
 * given, inside one transaction.
 */
export type Transition =
  | {
      type: "graph";
      graphId: string;
      group: string;
      /** paused and running (after paused) set or clear the pause; final states settle the graph. */
      state: GraphState;
      error?: string;
      message?: string;
      nextGraphId?: string;
    }
  | {
      type: "task";
      graphId: string;
      group: string;
      taskId: number;
      action: TaskAction;
      state: TaskState;
      /** With state running: the attempt now starting (1 for the first). */
      attempt?: number;
      error?: string;
      /** The node the task acts on, recorded on the task when it is first known. */
      nodeId?: string;
      version?: number;
      /** With state pending: why the ready task waits (cleared when it runs). */
      waiting?: string;
      /** With state pending and waiting: the event's words. */
      message?: string;
    }
  | {
      type: "task_retry";
      graphId: string;
      group: string;
      taskId: number;
      action: TaskAction;
      attempt: number;
      error: string;
      retryDelayMs: number;
      nodeId?: string;
    }
  | {
      type: "node";
      nodeId: string;
      group: string;
      state: NodeState;
      version: number;
      host: string;
      error?: string;
      graphId?: string;
      taskId?: number;
      /** The revision whose template it was started from, and that template's hash (kept when absent). */
      revision?: number;
      templateHash?: string;
      /** How its process ended, when it did (kept when absent). */
      exitStatus?: string;
    };

export interface GroupSpec {
  group: string;
  revision: number;
  spec: Spec;
  /** The current revision is the group's deletion: it is forgotten once that revision is rolled out. */
  deleting: boolean;
}

/** A group at a glance (`groups ls`): its spec, its nodes counted against it, and its newest graph. */
export interface GroupStatus extends GroupSpec {
  /** When its first revision was stored, and its current one. */
  createdAt: number;
  updatedAt: number;
  nodes: {
    /** Starting, running or unhealthy: up or coming up. */
    total: number;
    /** Of the total, at the spec's version and template (a node from before templates were versioned counts as at it). */
    upToDate: number;
    /** Running: healthy and past min-ready (a start holds its node in starting until then). */
    available: number;
    /** Failed, and not yet replaced or shut down. */
    failed: number;
  };
  /** The group's newest graph, whatever made it. */
  graph?: GraphSummary;
  /** Of that graph's pending tasks, how many wait (they have a reason). */
  waitingTasks: number;
}

export interface GroupForgetting {
  group: string;
  /** The revision the group must still be at; at another, nothing is forgotten. */
  revision: number;
  /** Committed first, in the same transaction, whatever happens: the deletion's final transition. */
  settle: readonly Transition[];
  now: number;
}

export interface TaskCounts {
  total: number;
  pending: number;
  running: number;
  succeeded: number;
  failed: number;
  skipped: number;
  cancelled: number;
}

export interface GraphSummary extends Graph {
  counts: TaskCounts;
}

export interface NewRevision {
  group: string;
  spec: Spec;
  /** The graph to store with it, or none when the group already matches the spec. */
  graph?: { id: string; tasks: readonly PlannedTask[] };
  now: number;
  reason?: RevisionReason;
  restores?: number;
  /** Refuse (FailedPreconditionError) unless the group's current revision is this one (0: none yet). */
  expectRevision?: number;
  /** Transitions committed in the same transaction, first: the failed graph an automatic rollback settles. */
  settle?: readonly Transition[];
  /**
   * The group's graphs that runs in this server are still working on: each records its own
   * end. Every other unsettled graph of the group (one left with no run behind it) is
   * superseded in the same transaction, so that no restart can resume it.
   */
  liveGraphs: readonly string[];
}

export interface NewGraph {
  group: string;
  /** The group's current revision, which the graph works toward. */
  revision: number;
  reason: "repair" | "operation" | "heal";
  /** Why it was made, in words ("replacing 1 failed node at its own revision: …"). */
  message?: string;
  graph: { id: string; tasks: readonly PlannedTask[] };
  now: number;
  /** As NewRevision.liveGraphs: every other unsettled graph of the group is superseded with this one's storing. */
  liveGraphs: readonly string[];
}

/** What retention keeps: what happened from `cutoff` to `now`. */
export interface RetentionPeriod {
  cutoff: number;
  now: number;
}

/** One bounded step of retention's walk over the events (see Retention). */
export interface EventCompactionStep {
  deleted: number;
  /** Where the next step starts; absent once the walk is done. */
  next?: number;
}

/** One bounded step of retention's walk over the graphs (see Retention). */
export interface GraphExpiryStep {
  tasks: number;
  graphs: number;
  /** Where the next step starts; absent once the walk is done. */
  next?: string;
}

export interface StoredRevision {
  revision: number;
  graph?: GraphSummary & { tasks: Task[] };
  events: Event[];
}

/**
 * Why the database cannot be used, as the store words it. A store's operations throw
 * StorageFaultError (errors.ts) carrying one: the API answers UNAVAILABLE with its message,
 * the journal retries a retryable one, and health reports NOT_SERVING while it holds.
 */
export interface StorageFault {
  /**
   * full: no space left; io: the disk failed a read or a write; read_only: the file, its
   * directory or its mount refuses writes; busy: another process holds a lock; corrupt: the
   * file is damaged (writes stop until an operator restores it).
   */
  kind: "full" | "io" | "read_only" | "busy" | "corrupt";
  /** One line for the operator: what failed, where, and what to do. */
  message: string;
  /** Whether the same write can succeed later without the operator restoring anything (all but corrupt). */
  retryable: boolean;
}

/**
 * Everything the server keeps, as domain operations. Each operation is one transaction.
 * The signatures are asynchronous so that a networked database can stand behind them;
 * the embedded default is SQLite.
 */
export interface Store {
  getGroupSpec(group: string): Promise<GroupSpec | undefined>;
  listNodes(group: string, options: { all: boolean }): Promise<Node[]>;
  /** The group's live nodes and the sequence number of the last event they reflect. */
  snapshotNodes(group: string): Promise<{ nodes: Node[]; sequence: number }>;
  /** Stores a new spec revision and its graph with every task, pending, in one transaction. */
  storeRevision(revision: NewRevision): Promise<StoredRevision>;
  /** Every group (one that has a spec), by name, as `groups ls` shows it: a few queries in one read, whatever the number of groups. */
  listGroupStatuses(): Promise<GroupStatus[]>;
  getGroupStatus(group: string): Promise<GroupStatus | undefined>;
  /** At most `limit` of the graph's pending tasks that wait, and why, lowest id first. */
  waitingTasks(graphId: string, limit: number): Promise<Task[]>;
  /**
   * Commits `settle`, and in the same transaction deletes the group (spec, revisions, graphs and
   * their tasks, template, nodes) when it is still at `revision` and has no node that is not
   * stopped. Its events stay in the log until retention deletes them, so that sequence numbers
   * are never handed out twice. `forgotten` says whether it was deleted.
   */
  forgetGroup(forgetting: GroupForgetting): Promise<{ forgotten: boolean; events: Event[] }>;
  /** Stores a graph (a repair, an operation) under the group's current revision, with every task, in one transaction. */
  storeGraph(graph: NewGraph): Promise<StoredRevision>;
  getNode(nodeId: string): Promise<Node | undefined>;
  /** How many nodes that are not stopped each group has, by state and version. */
  countNodes(): Promise<{ group: string; state: NodeState; version: number; count: number }[]>;
  /** Fails when the database cannot be used (for the health service). */
  ping(): Promise<void>;
  /** Commits one small write (for the health service: reads can work while writes fail). */
  probeWrite(now: number): Promise<void>;
  /** The storage fault an error of this store's database stands for, if it is one (a full disk, an I/O error…). */
  describeFault(error: unknown): StorageFault | undefined;
  /** Free space where the database lives, in bytes; undefined when the store cannot tell (a database on another host). */
  freeSpace(): { path: string; bytes: number } | undefined;
  /** How many attempts the start tasks that made this node took, in all. */
  startAttempts(nodeId: string): Promise<number>;
  /** What the current specs of every other group reserve: count × per-node cpu and memory. */
  reservedByOtherGroups(group: string): Promise<{ cpuMillis: number; memoryMb: number }>;
  /**
   * The group's revisions, newest first, each with the latest graph that rolled it out (an
   * update or a repair; heals and operations on one node do not say how a rollout went), and
   * all its graphs: the newest REVISION_GRAPHS_LISTED of them, and how many there are.
   */
  listRevisions(group: string, limit: number): Promise<Revision[]>;
  getRevision(group: string, revision: number): Promise<Revision | undefined>;
  /**
   * The newest revision below `before` that the group reached: its latest rollout graph
   * succeeded, or it needed none.
   */
  lastReachedRevision(group: string, before: number): Promise<Revision | undefined>;
  /** Every group that has a spec. */
  listGroups(): Promise<string[]>;
  getTemplate(group: string): Promise<NodeTemplate | undefined>;
  /** Keeps a template for the group's first update (a group with a spec changes its template with a new revision). */
  setTemplate(group: string, template: NodeTemplate, now: number): Promise<void>;
  getGraph(graphId: string): Promise<GraphSummary | undefined>;
  /**
   * A graph with all its tasks and the sequence number of the last event it reflects. `mapTask`
   * converts each task as it is read (a 100,000-task graph's tasks then exist only once).
   */
  snapshotGraph(graphId: string): Promise<{ graph: GraphSummary; tasks: Task[]; sequence: number } | undefined>;
  snapshotGraph<T>(graphId: string, mapTask: (task: Task) => T): Promise<{ graph: GraphSummary; tasks: T[]; sequence: number } | undefined>;
  listGraphs(group: string, limit: number): Promise<GraphSummary[]>;
  latestGraphId(group: string): Promise<string | undefined>;
  /**
   * The group's graph in progress: its newest unsettled graph (pending, running or paused),
   * one that is not a heal before a heal (a heal runs beside a rollout only to keep the count).
   */
  currentGraph(group: string): Promise<GraphSummary | undefined>;
  /**
   * At most `limit` ids of graphs or nodes (of any group, in any state) that begin with
   * `prefix` and end with `suffix` (empty: any end), in id order, with their group.
   */
  idsMatching(kind: "graph" | "node", prefix: string, suffix: string, limit: number): Promise<{ id: string; group: string }[]>;
  /** The group's newest graph that moves it toward its spec (an update or a repair), not a heal or an operation. */
  latestRolloutGraph(group: string): Promise<GraphSummary | undefined>;
  /** A node's own events (state changes), oldest first, at most the last `limit`. */
  eventsOfNode(nodeId: string, limit: number): Promise<Event[]>;
  /**
   * How long the group's recent successful attempts of `action` took, in milliseconds, newest
   * first, at most `limit` (for a plan's estimated duration).
   */
  recentTaskDurations(group: string, action: TaskAction, limit: number): Promise<number[]>;
  /** The group's template kept for its first update (set before it had a spec). */
  /** Graphs still pending or running (of one group, or of all), oldest first, with their tasks. */
  unsettledGraphs(group?: string): Promise<GraphWithTasks[]>;
  /** Commits the transitions in one transaction and returns their events, in order. */
  apply(transitions: readonly Transition[], now: number): Promise<Event[]>;
  /** At most `limit` of a graph's events after `afterSequence` (and before `beforeSequence`), in order. */
  graphEvents(graphId: string, afterSequence: number, limit: number, beforeSequence?: number): Promise<Event[]>;
  /** A group's node events after a sequence number, in order, at most `limit`. */
  nodeEvents(group: string, afterSequence: number, limit: number): Promise<Event[]>;
  /**
   * Retention, one short transaction: of the next `limit` events after `afterSequence`, deletes
   * the node events older than the period and the events of graphs settled before it (never the
   * log's newest event), recording how far each graph's and group's events were deleted.
   */
  compactEvents(period: RetentionPeriod, afterSequence: number, limit: number): Promise<EventCompactionStep>;
  /**
   * Retention, one short transaction: of the next `limit` graphs after `afterGraphId`, deletes
   * those settled before `cutoff` that are neither their group's newest graph nor their
   * revision's newest rollout graph, with their tasks (at most `limit` task rows).
   */
  expireGraphs(cutoff: number, afterGraphId: string, limit: number): Promise<GraphExpiryStep>;
  /**
   * Retention, one short transaction: deletes at most `limit` nodes stopped before `cutoff` that
   * no unsettled graph names; resolves, once that is committed, with their ids.
   */
  expireStoppedNodes(cutoff: number, limit: number): Promise<string[]>;
  /** Of these node ids, those the store holds no node of (retention deleted them, or it never knew them). */
  unknownNodeIds(nodeIds: readonly string[]): Promise<string[]>;
  /** Gives at most `pages` of the database file's free pages back to the file system. */
  releaseFreePages(pages: number): Promise<{ released: number; free: number }>;
  /** The highest sequence number of the graph's events that retention deleted (0: none). */
  graphEventsCompactedThrough(graphId: string): Promise<number>;
  /** The highest sequence number of the group's node events that retention deleted (0: none). */
  nodeEventsCompactedThrough(group: string): Promise<number>;
  close(): Promise<void>;
}
