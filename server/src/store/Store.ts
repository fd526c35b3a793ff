import type {
  Event,
  Graph,
  GraphState,
  GraphWithTasks,
  Node,
  NodeState,
  PlannedTask,
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
  | { type: "graph"; graphId: string; group: string; state: GraphState; error?: string }
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
    };

export interface GroupSpec {
  group: string;
  revision: number;
  spec: Spec;
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
}

export interface StoredRevision {
  revision: number;
  graph?: GraphSummary & { tasks: Task[] };
  events: Event[];
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
  getGraph(graphId: string): Promise<GraphSummary | undefined>;
  /** A graph with all its tasks and the sequence number of the last event it reflects. */
  snapshotGraph(graphId: string): Promise<{ graph: GraphSummary; tasks: GraphWithTasks["tasks"]; sequence: number } | undefined>;
  listGraphs(group: string, limit: number): Promise<GraphSummary[]>;
  latestGraphId(group: string): Promise<string | undefined>;
  /** Graphs still pending or running, oldest first, with their tasks. */
  unsettledGraphs(): Promise<GraphWithTasks[]>;
  /** Commits the transitions in one transaction and returns their events, in order. */
  apply(transitions: readonly Transition[], now: number): Promise<Event[]>;
  /** A graph's events after a sequence number, in order, at most `limit`. */
  graphEvents(graphId: string, afterSequence: number, limit: number): Promise<Event[]>;
  /** A group's node events after a sequence number, in order, at most `limit`. */
  nodeEvents(group: string, afterSequence: number, limit: number): Promise<Event[]>;
  close(): Promise<void>;
}
