/**
 * Drover's domain, in the words the whole server uses.
 *
 * - spec: what a group should look like: count nodes at version running a template, and
 *   the rollout strategy (max surge, max unavailable, min-ready, canary).
 * - template: what a node runs (command, args, env, health check); part of the spec, so a
 *   revision names exactly what runs and a rollback restores it.
 * - revision: one stored spec of a group, numbered 1, 2, … per group.
 * - node: one instance of a group, started and stopped by a driver.
 * - plan / task graph: the DAG of tasks the planner makes to take the nodes from what
 *   they are to the spec. `TaskGraphSpec` is the plan before it is stored.
 * - task: one step of a graph: start a node, shut one down, or do nothing (a join).
 * - attempt: one try of a task; failed attempts are retried with backoff up to a limit.
 * - event: one committed state change of a graph, task or node, numbered by a sequence
 *   shared by the whole server.
 * - retention: how long what settled is kept; compacted events are the ones it deleted
 *   (a kept graph keeps its row and tasks). See store/Retention.ts.
 * - available: a node that is running, healthy and has been so for the spec's min-ready.
 *   alive: a node whose process may be up (starting, running, unhealthy, stopping).
 * - canary: the first nodes a rollout moves to the new spec, before a promote gate.
 */
import type { IntOrPercent } from "@drover/shared";

export interface Spec {
  count: number;
  version: number;
  /**
   * Nodes above count (or a percent of count, "25%") a rollout may run, as given: read it
   * resolved to nodes with `resolveRolloutBounds`.
   */
  maxSurge: IntOrPercent;
  /** Nodes below count (or a percent of count) a rollout may leave unavailable, as given: read it resolved. */
  maxUnavailable: IntOrPercent;
  /** What to do when the spec's graph fails; default stop. */
  onFailure?: FailurePolicy;
  /** How long one attempt of a task may take; 0 or absent: the server's default. */
  taskTimeoutMs?: number;
  /** How long a graph may go without a task finishing; 0 or absent: the server's default. */
  progressDeadlineMs?: number;
  /** Reserved per node, in thousandths of a core; 0 or absent: none. */
  cpuMillis?: number;
  /** Reserved (and, where the OS allows, enforced) per node, in MiB; 0 or absent: none. */
  memoryMb?: number;
  /** What each node runs; absent: the server's default template. */
  template?: NodeTemplate;
  /** `templateHash(template)`, set when the revision is stored; "" for the default template. */
  templateHash?: string;
  /** How long a started node must stay running and healthy before its start succeeds; 0 or absent: at once. */
  minReadyMs?: number;
  /** Nodes moved to this spec before the rollout waits at a promote gate; 0 or absent: no canary. */
  canary?: number;
  /** With a canary: promote once the canaries have been available this long; 0 or absent: wait for a promote. */
  autoPromoteAfterMs?: number;
}

/** stop: leave a failed graph for an operator. rollback: return to the last revision whose graph succeeded. */
export const FailurePolicy = { stop: "stop", rollback: "rollback" } as const;
export type FailurePolicy = (typeof FailurePolicy)[keyof typeof FailurePolicy];

/**
 * Why a revision exists: a user's new spec (`scale` when only its count changed), a user's
 * rollback, the failure policy's rollback, an operation on one node that changes the count
 * (`nodes stop`, `nodes clone`), or a group's deletion (the revision that scales it to 0
 * before it is forgotten).
 */
export const RevisionReason = { update: "update", scale: "scale", rollback: "rollback", autoRollback: "auto_rollback", stop: "stop", clone: "clone", delete: "delete" } as const;
export type RevisionReason = (typeof RevisionReason)[keyof typeof RevisionReason];

/**
 * Why a graph exists: a new revision, the reconciler repairing drift under the same
 * revision after its rollout succeeded, an operation on one node (a restart), or healing:
 * failed nodes replaced at their own revision while the rollout is failed, paused,
 * cancelled or running (a ReplicaSet keeps its count under a paused Deployment).
 */
export const GraphReason = { update: "update", repair: "repair", operation: "operation", heal: "heal" } as const;
export type GraphReason = (typeof GraphReason)[keyof typeof GraphReason];

/** What a graph of each reason does, in words for messages: "superseded by graph 01J… (a heal)". */
export const graphReasonInWords: Record<GraphReason, string> = {
  update: "a rollout",
  repair: "a repair",
  operation: "a node restart",
  heal: "a heal",
};

/** Whether two specs ask for the same thing (absent policies meaning their defaults). */
export function sameSpec(a: Spec, b: Spec): boolean {
  return (
    a.count === b.count &&
    a.version === b.version &&
    a.maxSurge === b.maxSurge &&
    a.maxUnavailable === b.maxUnavailable &&
    (a.onFailure ?? "stop") === (b.onFailure ?? "stop") &&
    (a.taskTimeoutMs ?? 0) === (b.taskTimeoutMs ?? 0) &&
    (a.progressDeadlineMs ?? 0) === (b.progressDeadlineMs ?? 0) &&
    (a.cpuMillis ?? 0) === (b.cpuMillis ?? 0) &&
    (a.memoryMb ?? 0) === (b.memoryMb ?? 0) &&
    (a.templateHash ?? "") === (b.templateHash ?? "") &&
    (a.minReadyMs ?? 0) === (b.minReadyMs ?? 0) &&
    (a.canary ?? 0) === (b.canary ?? 0) &&
    (a.autoPromoteAfterMs ?? 0) === (b.autoPromoteAfterMs ?? 0)
  );
}

/** One stored spec of a group, with the latest graph that rolled it out. */
export interface Revision {
  group: string;
  revision: number;
  spec: Spec;
  createdAt: number;
  reason: RevisionReason;
  /** For a rollback: the revision whose spec it restored. */
  restores?: number;
  graphId?: string;
  graphState?: GraphState;
  /** In a list of revisions: its newest graphs (rollouts, repairs, heals, restarts), newest first, and how many it has. */
  graphs?: RevisionGraph[];
  graphCount?: number;
}

/** One graph of a revision, as its history shows it. */
export interface RevisionGraph {
  id: string;
  reason: GraphReason;
  state: GraphState;
  createdAt: number;
}

/**
 * A node's life:
 * - starting: a start task created it and the driver is starting it; leaves for running
 *   (started) or failed (the start failed).
 * - running: the driver reports it up; leaves for stopping (a shut-down task), unhealthy
 *   (it failed its health check too often) or failed (it died).
 * - unhealthy: still there but failing its health check; the reconciler replaces it like an
 *   outdated node, within the rollout bounds; leaves for stopping or failed.
 * - stopping: a shut-down task is stopping it; leaves for stopped.
 * - stopped: gone for good; never leaves.
 * - failed: the driver could not start it or it died; a retry of its start task takes it
 *   back to starting, a shut-down task to stopping.
 */
export const NodeState = {
  starting: "starting",
  running: "running",
  unhealthy: "unhealthy",
  stopping: "stopping",
  stopped: "stopped",
  failed: "failed",
} as const;
export type NodeState = (typeof NodeState)[keyof typeof NodeState];

export interface Node {
  id: string;
  group: string;
  version: number;
  state: NodeState;
  host: string;
  createdAt: number;
  updatedAt: number;
  error?: string;
  /** The revision whose template the node was started from; absent for nodes older than that record. */
  revision?: number;
  /** The hash of that template; absent (never outdated by template) for nodes older than that record. */
  templateHash?: string;
  /** How its process last ended, when it has: "exited with code 1", "killed by SIGKILL". */
  exitStatus?: string;
}

export const TaskAction = {
  startNode: "start_node",
  shutDownNode: "shut_down_node",
  doNothing: "do_nothing",
  /** The promote gate after a canary: succeeds on a promote, or after the spec's auto-promote delay. */
  awaitPromotion: "await_promotion",
} as const;
export type TaskAction = (typeof TaskAction)[keyof typeof TaskAction];

/** One task of a plan, before it is stored. Ids are 0, 1, 2, … in the order planned. */
export interface PlannedTask {
  id: number;
  prerequisites: number[];
  action: TaskAction;
  /** shut_down_node: the node to shut down. */
  nodeId?: string;
  /** start_node: the version to start. */
  version?: number;
  /** start_node: the revision whose template to start from (default: the graph's). */
  revision?: number;
  /** start_node: that template's hash (default: the graph's spec's). */
  templateHash?: string;
  /**
   * Checked against the group's live nodes before it runs: a shut-down must leave at least
   * count − max unavailable available, a start at most count + max surge alive. Set for the
   * steps of a rolling replacement; scale-downs of surplus and removals of failed nodes are not gated.
   */
  gated?: boolean;
}

/** The plan: tasks in id order, every prerequisite with a lower id than its task. */
export interface TaskGraphSpec {
  tasks: PlannedTask[];
}

/**
 * A task's life:
 * - pending: stored, waiting for its prerequisites, a free slot, or a retry's backoff;
 *   leaves for running, skipped (the graph failed) or cancelled (cancel or supersede).
 * - running: an attempt is under way; leaves for succeeded, failed (attempts used up),
 *   or pending (the attempt failed and will be retried).
 * - succeeded, failed, skipped, cancelled: final.
 */
export const TaskState = {
  pending: "pending",
  running: "running",
  succeeded: "succeeded",
  failed: "failed",
  skipped: "skipped",
  cancelled: "cancelled",
} as const;
export type TaskState = (typeof TaskState)[keyof typeof TaskState];

export interface Task extends PlannedTask {
  state: TaskState;
  attempts: number;
  error?: string;
  startedAt?: number;
  finishedAt?: number;
  /** Why a ready task is not running yet: a bound it would break, the promote gate. */
  waiting?: string;
}

/**
 * A planned task as stored: pending, not yet tried. Every field is written, in one order, so
 * that all tasks share one shape (a spread of planned tasks, some with a node and some with a
 * version, made the code that reads them slow).
 */
export function pendingTask(task: PlannedTask): Task {
  return {
    id: task.id,
    prerequisites: task.prerequisites,
    action: task.action,
    nodeId: task.nodeId,
    version: task.version,
    revision: task.revision,
    templateHash: task.templateHash,
    gated: task.gated,
    state: TaskState.pending,
    attempts: 0,
    error: undefined,
    startedAt: undefined,
    finishedAt: undefined,
    waiting: undefined,
  };
}

/**
 * A graph's life:
 * - pending: stored, no task started yet; leaves for running.
 * - running: tasks are being run; leaves for paused or one of the final states.
 * - paused: running tasks finish, no new one starts; leaves for running (resume) or a
 *   final state (cancel, supersede).
 * - succeeded: every task succeeded.
 * - failed: a task used up its attempts; tasks not reached were skipped.
 * - cancelled: a user cancelled it; tasks not started were cancelled.
 * - superseded: a newer revision replaced it; tasks not started were cancelled.
 */
export const GraphState = {
  pending: "pending",
  running: "running",
  paused: "paused",
  succeeded: "succeeded",
  failed: "failed",
  cancelled: "cancelled",
  superseded: "superseded",
} as const;
export type GraphState = (typeof GraphState)[keyof typeof GraphState];

export const isFinalGraphState = (state: GraphState) =>
  state !== GraphState.pending && state !== GraphState.running && state !== GraphState.paused;

/** How a settled graph ended, after "has": `succeeded`, `failed`, `been cancelled`, `been superseded`. */
export const settledText = (state: GraphState): string => (state === "succeeded" || state === "failed" ? state : `been ${state}`);

export interface Graph {
  id: string;
  group: string;
  revision: number;
  spec: Spec;
  state: GraphState;
  createdAt: number;
  startedAt?: number;
  finishedAt?: number;
  error?: string;
  retries: number;
  reason: GraphReason;
  /** Why its revision was made, and the revision a rollback restored: what an update graph's reason says. */
  revisionReason?: RevisionReason;
  restores?: number;
  /** The decision its settling announced, in words: "rolling back to revision 3 (3 × v1)". */
  message?: string;
  /** The graph that follows it: the rollback its failure started. */
  nextGraphId?: string;
}

export interface GraphWithTasks extends Graph {
  tasks: Task[];
}

export const EventType = {
  graph: "graph",
  task: "task",
  taskRetry: "task_retry",
  node: "node",
} as const;
export type EventType = (typeof EventType)[keyof typeof EventType];

/** One committed state change. `state` is the graph's, task's or node's new state. */
export interface Event {
  sequence: number;
  time: number;
  type: EventType;
  group: string;
  graphId?: string;
  taskId?: number;
  nodeId?: string;
  state?: string;
  action?: TaskAction;
  version?: number;
  attempt?: number;
  error?: string;
  retryDelayMs?: number;
  /** A decision the event records, in words: "rolling back to revision 3". */
  message?: string;
  /** The graph that follows this one: the rollback a failure started. */
  nextGraphId?: string;
}

/** How a node's health is checked: an HTTP GET answered 2xx, a TCP connect, or none. */
export interface HealthCheck {
  type: "http" | "tcp" | "none";
  /** For http: the path to GET. */
  path: string;
  intervalMs: number;
  timeoutMs: number;
  /** Consecutive failed checks after which a running node is unhealthy. */
  failureThreshold: number;
  /** How long a starting node may take to pass its first check (the readiness gate). */
  startTimeoutMs: number;
}

/**
 * What a group's nodes are started from, like an instance template: set per group, it
 * applies to nodes started after it is set. In the command, args and env values,
 * `{version}`, `{port}`, `{node_id}` and `{group}` are replaced for each node.
 */
export interface NodeTemplate {
  command: string;
  args: string[];
  env: Record<string, string>;
  healthCheck: HealthCheck;
  /** After SIGTERM, how long a node may take to exit before it gets SIGKILL. */
  stopGraceMs: number;
}

/** What the OS says of a node's process (drivers that run real processes only). */
export interface NodeStats {
  pid?: number;
  port?: number;
  cpuPercent?: number;
  residentBytes?: number;
  uptimeMs?: number;
  healthy?: boolean;
  lastCheck?: string;
  lastCheckAt?: number;
}
