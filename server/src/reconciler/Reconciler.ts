import type { Logger } from "pino";
import type { Clock } from "../clock.js";
import {
  type GraphWithTasks,
  isFinalGraphState,
  type Node,
  type PlannedTask,
  type Spec,
  type Task,
  TaskState,
} from "../domain.js";
import { FailedPreconditionError, GraphNotFoundError } from "../errors.js";
import type { EventBus } from "../events/EventBus.js";
import type { Journal } from "../events/Journal.js";
import { plan } from "../planner/plan.js";
import type { Scheduler } from "../scheduler/Scheduler.js";
import type { GraphSummary, Store } from "../store/Store.js";
import { KeyedMutex } from "./KeyedMutex.js";

export interface SetSpecResult {
  group: string;
  /** The revision stored, or (dry run, or an unchanged spec with nothing to do) the current one. */
  revision: number;
  spec: Spec;
  /** Live nodes by version when the plan was made. */
  current: Map<number, number>;
  /** The planned graph; stored and running unless dryRun. Undefined when there is nothing to do. */
  graph?: GraphSummary & { tasks: Task[] };
  supersededGraphId?: string;
}

export interface ReconcilerOptions {
  store: Store;
  scheduler: Scheduler;
  journal: Journal;
  bus: EventBus;
  clock: Clock;
  newId: () => string;
  logger: Logger;
}

const sameSpec = (a: Spec, b: Spec) =>
  a.count === b.count && a.version === b.version && a.maxSurge === b.maxSurge && a.maxUnavailable === b.maxUnavailable;

/**
 * Takes a group from the nodes it has to its spec: supersedes a graph still running, plans
 * from the nodes as they are, stores the revision and graph together, and hands the graph
 * to the scheduler. Updates of one group are handled one at a time, in arrival order.
 */
export class Reconciler {
  private readonly groupLocks = new KeyedMutex();

  constructor(private readonly options: ReconcilerOptions) {}

  setSpec(group: string, spec: Spec, dryRun: boolean): Promise<SetSpecResult> {
    return this.groupLocks.run(group, async () => {
      const { store, scheduler, clock, newId, logger, bus } = this.options;
      let supersededGraphId: string | undefined;
      const running = dryRun ? undefined : scheduler.runningIn(group);
      if (running) {
        supersededGraphId = running.id;
        // Running tasks finish first, so that the new plan starts from nodes that are settled.
        await scheduler.halt(running.id, "superseded", "superseded by a newer spec revision");
      }
      const current = await store.getGroupSpec(group);
      const nodes = await store.listNodes(group, { all: false });
      const planned = plan(nodes, spec);
      const versions = countLiveVersions(nodes);
      const now = clock.now();
      const nothingToDo = planned.tasks.length === 0;
      if (dryRun || (nothingToDo && current && sameSpec(current.spec, spec))) {
        return {
          group,
          revision: current?.revision ?? 0,
          spec,
          current: versions,
          graph: nothingToDo ? undefined : draftGraph(group, current?.revision ?? 0, spec, planned.tasks, now),
          supersededGraphId,
        };
      }
      const stored = await store.storeRevision({
        group,
        spec,
        graph: nothingToDo ? undefined : { id: newId(), tasks: planned.tasks },
        now,
      });
      bus.publish(stored.events);
      logger.info(
        { group, revision: stored.revision, spec, graphId: stored.graph?.id, tasks: planned.tasks.length, supersededGraphId },
        "spec revision stored",
      );
      if (stored.graph) scheduler.run(stored.graph, indexById(nodes));
      return { group, revision: stored.revision, spec, current: versions, graph: stored.graph, supersededGraphId };
    });
  }

  /** Cancels a pending or running graph and waits until it has settled. */
  async cancel(graphId: string): Promise<GraphSummary> {
    const { store, scheduler, journal } = this.options;
    const graph = await store.getGraph(graphId);
    if (!graph) throw new GraphNotFoundError(graphId);
    if (isFinalGraphState(graph.state)) {
      throw new FailedPreconditionError(
        `graph ${graphId} has already ${graph.state === "succeeded" || graph.state === "failed" ? "" : "been "}${graph.state}: only a pending or running graph can be cancelled`,
      );
    }
    const outcome = await scheduler.halt(graphId, "cancelled", "cancelled by a user");
    if (outcome === undefined) {
      // Stored as unsettled but not running here: settle it in the store directly.
      await journal.record([{ type: "graph", graphId, group: graph.group, state: "cancelled", error: "cancelled by a user" }]);
    }
    return (await store.getGraph(graphId))!;
  }

  /** Resumes every graph a previous server left unsettled; older graphs of a group that has a newer one are superseded. */
  async resumeUnsettled(): Promise<number> {
    const { store, scheduler, journal, logger } = this.options;
    const graphs = await store.unsettledGraphs();
    const newestByGroup = new Map<string, GraphWithTasks>();
    for (const graph of graphs) newestByGroup.set(graph.group, graph);
    for (const graph of graphs) {
      if (newestByGroup.get(graph.group) === graph) continue;
      await journal.record([
        ...graph.tasks
          .filter((task) => task.state === TaskState.pending)
          .map((task) => ({
            type: "task" as const,
            graphId: graph.id,
            group: graph.group,
            taskId: task.id,
            action: task.action,
            state: TaskState.cancelled,
          })),
        { type: "graph", graphId: graph.id, group: graph.group, state: "superseded", error: "superseded by a newer spec revision" },
      ]);
    }
    for (const graph of newestByGroup.values()) {
      const nodes = await store.listNodes(graph.group, { all: true });
      logger.info({ graphId: graph.id, group: graph.group }, "resuming unsettled graph");
      scheduler.run(graph, indexById(nodes));
    }
    return newestByGroup.size;
  }
}

function countLiveVersions(nodes: readonly Node[]): Map<number, number> {
  const versions = new Map<number, number>();
  for (const node of nodes) {
    if (node.state === "starting" || node.state === "running") versions.set(node.version, (versions.get(node.version) ?? 0) + 1);
  }
  return versions;
}

function indexById(nodes: readonly Node[]): Map<string, Node> {
  return new Map(nodes.map((node) => [node.id, { ...node }]));
}

/** The graph a dry run would store: no id, every task pending. */
function draftGraph(group: string, revision: number, spec: Spec, planned: readonly PlannedTask[], now: number) {
  const tasks: Task[] = planned.map((task) => ({ ...task, state: TaskState.pending, attempts: 0 }));
  return {
    id: "",
    group,
    revision,
    spec,
    state: "pending" as const,
    createdAt: now,
    retries: 0,
    counts: { total: tasks.length, pending: tasks.length, running: 0, succeeded: 0, failed: 0, skipped: 0, cancelled: 0 },
    tasks,
  };
}
