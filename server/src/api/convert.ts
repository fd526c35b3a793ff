import * as api from "@drover/shared";
import type {
  Event,
  FailurePolicy,
  Graph,
  GraphReason,
  HealthCheck,
  Node,
  NodeStats,
  NodeTemplate,
  Revision,
  RevisionReason,
  Spec,
  Task,
} from "../domain.js";
import type { GraphSummary, TaskCounts } from "../store/Store.js";

/** Translations between the domain's words and the generated API's messages. */

const nodeStates: Record<Node["state"], api.NodeState> = {
  starting: api.NodeState.NODE_STATE_STARTING,
  running: api.NodeState.NODE_STATE_RUNNING,
  stopping: api.NodeState.NODE_STATE_STOPPING,
  stopped: api.NodeState.NODE_STATE_STOPPED,
  failed: api.NodeState.NODE_STATE_FAILED,
  unhealthy: api.NodeState.NODE_STATE_UNHEALTHY,
};

const taskStates: Record<Task["state"], api.TaskState> = {
  pending: api.TaskState.TASK_STATE_PENDING,
  running: api.TaskState.TASK_STATE_RUNNING,
  succeeded: api.TaskState.TASK_STATE_SUCCEEDED,
  failed: api.TaskState.TASK_STATE_FAILED,
  skipped: api.TaskState.TASK_STATE_SKIPPED,
  cancelled: api.TaskState.TASK_STATE_CANCELLED,
};

const graphStates: Record<Graph["state"], api.GraphState> = {
  pending: api.GraphState.GRAPH_STATE_PENDING,
  running: api.GraphState.GRAPH_STATE_RUNNING,
  paused: api.GraphState.GRAPH_STATE_PAUSED,
  succeeded: api.GraphState.GRAPH_STATE_SUCCEEDED,
  failed: api.GraphState.GRAPH_STATE_FAILED,
  cancelled: api.GraphState.GRAPH_STATE_CANCELLED,
  superseded: api.GraphState.GRAPH_STATE_SUPERSEDED,
};

const taskActions: Record<Task["action"], api.TaskAction> = {
  start_node: api.TaskAction.TASK_ACTION_START_NODE,
  shut_down_node: api.TaskAction.TASK_ACTION_SHUT_DOWN_NODE,
  do_nothing: api.TaskAction.TASK_ACTION_DO_NOTHING,
  await_promotion: api.TaskAction.TASK_ACTION_AWAIT_PROMOTION,
};

const eventTypes: Record<Event["type"], api.EventType> = {
  graph: api.EventType.EVENT_TYPE_GRAPH,
  task: api.EventType.EVENT_TYPE_TASK,
  task_retry: api.EventType.EVENT_TYPE_TASK_RETRY,
  node: api.EventType.EVENT_TYPE_NODE,
};

const failurePolicies: Record<FailurePolicy, api.FailurePolicy> = {
  stop: api.FailurePolicy.FAILURE_POLICY_STOP,
  rollback: api.FailurePolicy.FAILURE_POLICY_ROLLBACK,
};

const graphReasons: Record<GraphReason, api.GraphReason> = {
  update: api.GraphReason.GRAPH_REASON_UPDATE,
  repair: api.GraphReason.GRAPH_REASON_REPAIR,
  operation: api.GraphReason.GRAPH_REASON_OPERATION,
  heal: api.GraphReason.GRAPH_REASON_HEAL,
};

const revisionReasons: Record<RevisionReason, api.RevisionReason> = {
  update: api.RevisionReason.REVISION_REASON_UPDATE,
  rollback: api.RevisionReason.REVISION_REASON_ROLLBACK,
  auto_rollback: api.RevisionReason.REVISION_REASON_AUTO_ROLLBACK,
  scale: api.RevisionReason.REVISION_REASON_SCALE,
  stop: api.RevisionReason.REVISION_REASON_STOP,
  clone: api.RevisionReason.REVISION_REASON_CLONE,
  delete: api.RevisionReason.REVISION_REASON_DELETE,
};

/** The domain's failure policy for an API value; unspecified means the default, stop. */
export function fromApiFailurePolicy(policy: api.FailurePolicy): FailurePolicy | undefined {
  if (policy === api.FailurePolicy.FAILURE_POLICY_ROLLBACK) return "rollback";
  if (policy === api.FailurePolicy.FAILURE_POLICY_STOP || policy === api.FailurePolicy.FAILURE_POLICY_UNSPECIFIED) return "stop";
  return undefined;
}

const dateOf = (time: number | undefined) => (time === undefined ? undefined : new Date(time));

/** The API's spec: bounds in nodes, and as the percents they were given as, if they were. */
export function toApiSpec(spec: Spec): api.Spec {
  const { maxSurge, maxUnavailable } = api.resolveRolloutBounds(spec);
  return {
    count: spec.count,
    version: spec.version,
    maxSurge,
    maxUnavailable,
    maxSurgePercent: api.percentOf(spec.maxSurge),
    maxUnavailablePercent: api.percentOf(spec.maxUnavailable),
    onFailure: failurePolicies[spec.onFailure ?? "stop"],
    taskTimeoutMs: spec.taskTimeoutMs ?? 0,
    progressDeadlineMs: spec.progressDeadlineMs ?? 0,
    cpuMillis: spec.cpuMillis ?? 0,
    memoryMb: spec.memoryMb ?? 0,
    template: spec.template ? toApiTemplate(spec.template) : undefined,
    minReadyMs: spec.minReadyMs ?? 0,
    canary: spec.canary ?? 0,
    autoPromoteAfterMs: spec.autoPromoteAfterMs ?? 0,
    templateHash: spec.templateHash ?? "",
  };
}

export function toApiNodeStats(stats: NodeStats, restarts: number): api.NodeStats {
  return {
    pid: stats.pid ?? 0,
    port: stats.port ?? 0,
    cpuPercent: stats.cpuPercent ?? 0,
    residentBytes: stats.residentBytes ?? 0,
    uptimeMs: stats.uptimeMs ?? 0,
    healthy: stats.healthy ?? false,
    lastCheck: stats.lastCheck ?? "",
    lastCheckAt: dateOf(stats.lastCheckAt),
    restarts,
  };
}

export function toApiNode(node: Node, stats?: api.NodeStats): api.Node {
  return {
    id: node.id,
    group: node.group,
    version: node.version,
    state: nodeStates[node.state],
    host: node.host,
    createdAt: dateOf(node.createdAt),
    updatedAt: dateOf(node.updatedAt),
    error: node.error ?? "",
    stats,
    revision: node.revision ?? 0,
    templateHash: node.templateHash ?? "",
    exitStatus: node.exitStatus ?? "",
  };
}

export function toApiTask(task: Task): api.Task {
  return {
    id: task.id,
    prerequisites: task.prerequisites,
    action: taskActions[task.action],
    nodeId: task.nodeId ?? "",
    version: task.version ?? 0,
    state: taskStates[task.state],
    attempts: task.attempts,
    error: task.error ?? "",
    startedAt: dateOf(task.startedAt),
    finishedAt: dateOf(task.finishedAt),
    waiting: task.waiting ?? "",
    revision: task.revision ?? 0,
  };
}

function toApiCounts(counts: TaskCounts): api.TaskCounts {
  return { ...counts };
}

export function toApiGraph(graph: GraphSummary, tasks: readonly Task[] = [], sequence = 0): api.Graph {
  return {
    id: graph.id,
    group: graph.group,
    revision: graph.revision,
    spec: toApiSpec(graph.spec),
    state: graphStates[graph.state],
    tasks: tasks.map(toApiTask),
    counts: toApiCounts(graph.counts),
    createdAt: dateOf(graph.createdAt),
    startedAt: dateOf(graph.startedAt),
    finishedAt: dateOf(graph.finishedAt),
    error: graph.error ?? "",
    sequence,
    retries: graph.retries,
    reason: graphReasons[graph.reason],
    message: graph.message ?? "",
    nextGraphId: graph.nextGraphId ?? "",
    revisionReason: graph.revisionReason ? revisionReasons[graph.revisionReason] : api.RevisionReason.REVISION_REASON_UNSPECIFIED,
    restores: graph.restores ?? 0,
  };
}

export function toApiRevision(revision: Revision): api.Revision {
  return {
    revision: revision.revision,
    spec: toApiSpec(revision.spec),
    createdAt: dateOf(revision.createdAt),
    reason: revisionReasons[revision.reason],
    restores: revision.restores ?? 0,
    graphId: revision.graphId ?? "",
    graphState: revision.graphState ? graphStates[revision.graphState] : api.GraphState.GRAPH_STATE_UNSPECIFIED,
    graphs: (revision.graphs ?? []).map((graph) => ({
      id: graph.id,
      reason: graphReasons[graph.reason],
      state: graphStates[graph.state],
      createdAt: dateOf(graph.createdAt),
    })),
    graphCount: revision.graphCount ?? 0,
  };
}

export function toApiEvent(event: Event): api.Event {
  const state = event.state;
  return {
    sequence: event.sequence,
    time: new Date(event.time),
    type: eventTypes[event.type],
    group: event.group,
    graphId: event.graphId ?? "",
    taskId: event.taskId ?? 0,
    nodeId: event.nodeId ?? "",
    graphState: event.type === "graph" ? graphStates[state as Graph["state"]] : api.GraphState.GRAPH_STATE_UNSPECIFIED,
    taskState:
      event.type === "task" || event.type === "task_retry" ? taskStates[state as Task["state"]] : api.TaskState.TASK_STATE_UNSPECIFIED,
    nodeState: event.type === "node" ? nodeStates[state as Node["state"]] : api.NodeState.NODE_STATE_UNSPECIFIED,
    action: event.action ? taskActions[event.action] : api.TaskAction.TASK_ACTION_UNSPECIFIED,
    version: event.version ?? 0,
    attempt: event.attempt ?? 0,
    error: event.error ?? "",
    retryDelayMs: event.retryDelayMs ?? 0,
    message: event.message ?? "",
    nextGraphId: event.nextGraphId ?? "",
  };
}

const healthCheckTypes: Record<HealthCheck["type"], api.HealthCheckType> = {
  http: api.HealthCheckType.HEALTH_CHECK_TYPE_HTTP,
  tcp: api.HealthCheckType.HEALTH_CHECK_TYPE_TCP,
  none: api.HealthCheckType.HEALTH_CHECK_TYPE_NONE,
};

export function toApiTemplate(template: NodeTemplate): api.NodeTemplate {
  const check = template.healthCheck;
  return {
    command: template.command,
    args: template.args,
    env: template.env,
    healthCheck: {
      type: healthCheckTypes[check.type],
      path: check.path,
      intervalMs: check.intervalMs,
      timeoutMs: check.timeoutMs,
      failureThreshold: check.failureThreshold,
      startTimeoutMs: check.startTimeoutMs,
    },
    stopGraceMs: template.stopGraceMs,
  };
}

/** The domain's template for an API one, zeros left for the defaults to fill; undefined type when unknown. */
export function fromApiTemplate(template: api.NodeTemplate): NodeTemplate | undefined {
  const check = template.healthCheck;
  const types = Object.entries(healthCheckTypes) as [HealthCheck["type"], api.HealthCheckType][];
  const type = check === undefined || check.type === api.HealthCheckType.HEALTH_CHECK_TYPE_UNSPECIFIED
    ? "http"
    : types.find(([, value]) => value === check.type)?.[0];
  if (type === undefined) return undefined;
  return {
    command: template.command,
    args: template.args,
    env: template.env,
    healthCheck: {
      type,
      path: check?.path ?? "",
      intervalMs: check?.intervalMs ?? 0,
      timeoutMs: check?.timeoutMs ?? 0,
      failureThreshold: check?.failureThreshold ?? 0,
      startTimeoutMs: check?.startTimeoutMs ?? 0,
    },
    stopGraceMs: template.stopGraceMs,
  };
}
