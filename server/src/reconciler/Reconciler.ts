import { resolveRolloutBounds } from "@drover/shared";
import type { Logger } from "pino";
import { formatBytes, formatCores } from "@drover/shared";
import type { Clock } from "../clock.js";
import {
  graphReasonInWords,
  type GraphWithTasks,
  isFinalGraphState,
  settledText,
  type Node,
  type PlannedTask,
  pendingTask,
  type Revision,
  type RevisionReason,
  sameSpec,
  type Spec,
  type Task,
  TaskState,
} from "../domain.js";
import type { Driver, NodeFailure, NodeHandle, StrayNode } from "../drivers/Driver.js";
import {
  FailedPreconditionError,
  GraphNotFoundError,
  GroupNotFoundError,
  NodeNotFoundError,
  NotFoundError,
  ResourceExhaustedError,
  UnavailableError,
} from "../errors.js";
import type { EventBus } from "../events/EventBus.js";
import type { Journal } from "../events/Journal.js";
import { type DelayPoint, type Failpoint, noDelays, noFailpoints } from "../failpoints.js";
import { planHeal } from "../planner/heal.js";
import { plan } from "../planner/plan.js";
import type { GraphRun, SettleTransition } from "../scheduler/GraphRun.js";
import { sameTemplate, templateHash } from "../templates.js";
import { logTemplateChange } from "./templateChanges.js";
import { requirePorts } from "./portAdmission.js";
import type { NodeTemplate } from "../domain.js";
import { CrashLoopBackoff, type CrashLoopOptions, type CrashLoopStatus } from "./CrashLoopBackoff.js";
import type { Scheduler } from "../scheduler/Scheduler.js";
import type { GraphSummary, GroupSpec, Store, Transition } from "../store/Store.js";
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
  /** What the plan can do to the group, before anything runs (absent when there is no plan). */
  preview?: { minAvailable: number; maxAlive: number; estimatedDurationMs?: number };
  /** The group had no spec: this update makes it (or, in a dry run, would). */
  created?: boolean;
}

export interface SetSpecOptions {
  dryRun?: boolean;
  /** Refuse unless the group's current revision is this one (0: none yet). */
  expectRevision?: number;
  reason?: RevisionReason;
  restores?: number;
  /** The plan to use instead of the planner's: an operation on one named node. */
  tasks?: PlannedTask[];
  /** The spec's template and hash are complete as given (a rollback restores them exactly). */
  templateResolved?: boolean;
}

export interface ReconcilerOptions {
  store: Store;
  scheduler: Scheduler;
  journal: Journal;
  bus: EventBus;
  driver: Driver;
  clock: Clock;
  newId: () => string;
  logger: Logger;
  failpoint?: Failpoint;
  /** Where tests hold recovery up (see failpoints.ts). */
  delayPoint?: DelayPoint;
  /** Aborted when the server shuts down: no new graph starts after that. */
  shutdownSignal?: AbortSignal;
  /** What the host can hold, for specs that reserve cpu or memory per node. */
  capacity?: { cpuMillis: number; memoryMb: number };
  /** The min-ready of a spec that does not say (server flag --min-ready). */
  defaultMinReadyMs?: number;
  /** How replacements of failed nodes back off (default: 10 s doubling to 5 min, reset after 10 min). */
  crashLoop?: CrashLoopOptions;
  /** Counts each replacement of failed nodes, for metrics. */
  onReplacement?: (group: string) => void;
  /** Whether the database can be written: new work is refused while it cannot (absent: always). */
  storage?: { readonly current: unknown; refuseWrites(): void; refuseNewWork(): void };
  /**
   * Whether recovery stops node processes of nodes the store has never heard of (server flag
   * --stop-unknown-processes; never on the database's first open). Default: left running.
   */
  stopUnknownProcesses?: boolean;
  /** Estimates a plan's bounds and duration for the preview; absent: no preview. */
  preview?: (group: string, nodes: readonly Node[], tasks: readonly PlannedTask[], spec: Spec) => Promise<SetSpecResult["preview"]>;
}

/**
 * Takes each group from the nodes it has to its spec, level-triggered: it compares what is
 * with what should be, never what it remembers doing.
 *
 * - An update supersedes a graph still running, plans from the nodes as they are, and
 *   stores the revision and its graph together before the scheduler runs it.
 * - A pass over a group repairs drift. When its latest rollout succeeded (or was superseded
 *   with nothing to carry it on) and nothing runs, it converges the group on its spec with a
 *   repair graph under the same revision. Otherwise
 *   (the rollout failed, was cancelled, is paused or still runs) it only heals: failed nodes
 *   that no run is working on are replaced at their own revision, so the group keeps its
 *   capacity without the rollout moving on. Replacements back off in a crash loop. Passes
 *   run periodically, after every node failure and after every graph that settles.
 * - A graph that fails under a spec whose failure policy is rollback is settled together
 *   with a new revision restoring the last revision the group reached.
 *
 * Work on one group happens one piece at a time, in arrival order, and none before recovery
 * has taken the group's lock: the server calls `recover` once, at start (see there).
 */
export class Reconciler {
  private readonly groupLocks = new KeyedMutex();
  /** Resolves once recovery has queued its work on every group's lock; work on a group waits for it (see lockGroup). */
  private readonly recoveryHoldsLocks: Promise<void>;
  private openLockGate!: () => void;
  /** Until recovery has recovered every group: a call naming a graph then waits for its group's recovery. */
  private recovering = true;
  private readonly passQueued = new Set<string>();
  private readonly crashLoop: CrashLoopBackoff;
  /** Passes scheduled for when a group's crash-loop backoff ends. */
  private readonly backoffTimers = new Map<string, () => void>();

  constructor(private readonly options: ReconcilerOptions) {
    this.recoveryHoldsLocks = new Promise((resolve) => (this.openLockGate = resolve));
    this.crashLoop = new CrashLoopBackoff(options.crashLoop);
    options.driver.onNodeFailure((node, failure) => void this.nodeFailed(node, failure));
    options.shutdownSignal?.addEventListener("abort", () => {
      for (const cancel of this.backoffTimers.values()) cancel();
    });
  }

  /** The group's crash loop, while it is in one. */
  crashLoopOf(group: string): CrashLoopStatus | undefined {
    return this.crashLoop.status(group, this.options.clock.now());
  }

  /**
   * The spec as it is stored: a spec that does not say what runs keeps the group's current
   * template (its current revision's, or one set before its first update); a template equal
   * to the current one keeps its hash, so that it moves no node; min-ready defaults to the
   * server's.
   */
  private async resolveSpec(group: string, spec: Spec, current: { spec: Spec } | undefined, resolved: boolean): Promise<Spec> {
    const minReadyMs = spec.minReadyMs ?? this.options.defaultMinReadyMs ?? 0;
    if (resolved) return { ...spec, minReadyMs, templateHash: spec.templateHash ?? "" };
    let template: NodeTemplate | undefined = spec.template;
    let hash: string;
    if (template === undefined) {
      template = current ? current.spec.template : await this.options.store.getTemplate(group);
      hash = current ? (current.spec.templateHash ?? "") : template ? templateHash(template) : "";
    } else if (current && sameTemplate(current.spec.template, template)) {
      hash = current.spec.templateHash ?? "";
    } else {
      hash = templateHash(template);
    }
    const out: Spec = { ...spec, minReadyMs, templateHash: hash };
    if (template === undefined) delete out.template;
    else out.template = template;
    return out;
  }

  private get failpoint(): Failpoint {
    return this.options.failpoint ?? noFailpoints;
  }

  /**
   * Runs work under the group's lock, after the work queued before it. Until recovery has
   * queued its own work on every group's lock, work waits for that, so that nothing changes a
   * group (an update that arrives as the server starts serving) before recovery has recovered it.
   */
  private lockGroup<T>(group: string, work: () => Promise<T>): Promise<T> {
    return this.recoveryHoldsLocks.then(() => this.groupLocks.run(group, work));
  }

  async setSpec(group: string, requested: Spec, options: SetSpecOptions = {}): Promise<SetSpecResult> {
    // Refused at once while storage is faulted, not after waiting for the group's lock (which a
    // recovery retrying its writes on a full disk may hold); checked again under the lock.
    if (!options.dryRun) this.options.storage?.refuseNewWork();
    return this.lockGroup(group, () => this.setSpecLocked(group, async () => ({ spec: requested, options }), options.expectRevision));
  }

  /**
   * Stores a spec (and its graph) under the group's lock. `derive` makes the spec from the
   * group's current revision as read under that lock, so that a spec built on the current one
   * (a rollback keeping the count, a new template) cannot undo an update that landed first.
   */
  private async setSpecLocked(
    group: string,
    derive: (current: GroupSpec | undefined) => Promise<{ spec: Spec; options: SetSpecOptions }>,
    expectRevision: number | undefined,
  ): Promise<SetSpecResult> {
    const { store, clock, newId, logger, bus } = this.options;
    this.refuseIfShuttingDown();
    // A refused update must change nothing, so it is refused before it supersedes anything.
    const current = await store.getGroupSpec(group);
    if (expectRevision !== undefined && (current?.revision ?? 0) !== expectRevision) {
      throw new FailedPreconditionError(
        `group ${group} is at revision ${current?.revision ?? 0}, not the expected ${expectRevision}: look at 'client history' and update again`,
      );
    }
    const { spec: requested, options } = await derive(current);
    if (!options.dryRun) this.options.storage?.refuseNewWork();
    const spec = await this.resolveSpec(group, requested, current, options.templateResolved ?? false);
    await this.requireCapacity(group, spec);
    requirePorts(group, spec, this.options.driver);
    // Superseded runs are not waited for: their starts under way are abandoned (their nodes
    // stopped), their stops finish in the background, and the new graph's first tasks wait for them.
    const by = options.reason === "rollback" ? `a rollback to revision ${options.restores}` : "a newer spec revision";
    const superseded = options.dryRun ? { runs: [], abandoned: new Set<string>() } : this.haltRunsOf(group, by);
    const supersededGraphId = superseded.runs[0]?.id;
    const nodes = await store.listNodes(group, { all: false });
    // A node whose start is being abandoned will not run: the plan replaces it.
    const planning = superseded.abandoned.size === 0 ? nodes : nodes.map((node) => (superseded.abandoned.has(node.id) ? { ...node, state: "failed" as const } : node));
    const planned = options.tasks ? { tasks: options.tasks } : plan(planning, spec, { canary: spec.canary });
    const versions = countLiveVersions(nodes);
    const now = clock.now();
    const nothingToDo = planned.tasks.length === 0;
    const preview = nothingToDo ? undefined : await this.options.preview?.(group, planning, planned.tasks, spec);
    // A deletion is always stored, even with nothing to do: it is what makes the group go.
    if (options.dryRun || (nothingToDo && current && sameSpec(current.spec, spec) && options.reason !== "delete")) {
      return {
        group,
        revision: current?.revision ?? 0,
        spec,
        current: versions,
        graph: nothingToDo ? undefined : draftGraph(group, current?.revision ?? 0, spec, planned.tasks, now),
        supersededGraphId,
        preview,
        created: !current,
      };
    }
    this.refuseIfShuttingDown();
    this.failpoint("revision.before-commit");
    const reason = options.reason ?? updateReason(current?.spec, spec);
    const stored = await store.storeRevision({
      group,
      spec,
      graph: nothingToDo ? undefined : { id: newId(), tasks: planned.tasks },
      now,
      reason,
      restores: options.restores,
      expectRevision,
      liveGraphs: this.liveGraphs(group),
    });
    this.failpoint("revision.after-commit");
    bus.publish(stored.events);
    logger.info(
      { group, revision: stored.revision, spec, reason, graphId: stored.graph?.id, tasks: planned.tasks.length, supersededGraphId },
      "spec revision stored",
    );
    logTemplateChange(logger, group, current?.spec.template, spec.template, { revision: stored.revision, reason });
    if (stored.graph) this.launch(stored.graph, nodes, superseded.runs);
    return { group, revision: stored.revision, spec, current: versions, graph: stored.graph, supersededGraphId, preview, created: !current };
  }

  /**
   * Halts every run of the group as superseded by what `by` names ("a node restart of …")
   * without waiting for it, abandoning its starts under way; returns the runs (the new graph
   * waits for them) and the abandoned nodes.
   */
  private haltRunsOf(group: string, by: string, except?: string): { runs: GraphRun[]; abandoned: Set<string> } {
    const runs = this.options.scheduler.runsIn(group).filter((run) => run.id !== except);
    const abandoned = new Set<string>();
    for (const run of runs) {
      run.halt("superseded", `superseded by ${by}`);
      for (const nodeId of run.abandonStarts()) abandoned.add(nodeId);
    }
    return { runs, abandoned };
  }

  /**
   * Rolls the group back to an earlier revision's spec, template included: by default the
   * newest earlier revision whose rollout succeeded, keeping the current count unless
   * `withCount` (Kubernetes' `rollout undo` restores the pod template, not the replicas).
   */
  async rollback(group: string, revision: number, options: { dryRun?: boolean; expectRevision?: number; withCount?: boolean }) {
    const { store } = this.options;
    let restores = 0;
    const result = await this.lockGroup(group, () =>
      this.setSpecLocked(
        group,
        async (current) => {
          if (!current) throw new GroupNotFoundError(group);
          let restored: Revision | undefined;
          if (revision === 0) {
            restored = await store.lastReachedRevision(group, current.revision);
            if (!restored) {
              throw new FailedPreconditionError(
                `group ${group} has no revision before ${current.revision} whose rollout succeeded: name one with 'client rollback N' (see 'client history')`,
              );
            }
          } else {
            restored = await store.getRevision(group, revision);
            if (!restored) throw new NotFoundError(`revision ${revision} of group ${group} not found: list them with 'client history'`);
          }
          restores = restored.revision;
          const spec = { ...restored.spec, count: options.withCount ? restored.spec.count : current.spec.count };
          return { spec, options: { dryRun: options.dryRun, reason: "rollback", restores, templateResolved: true } };
        },
        options.expectRevision,
      ),
    );
    return { result, restores, lastSucceeded: revision === 0 };
  }

  /**
   * Deletes a group, as deleting a Deployment does: a new revision (its deletion) scales it to 0,
   * rolled out like any update (a graph still running is superseded), and once a rollout of that
   * revision succeeds the group is forgotten in the transaction that records the success (see
   * settle; a pass forgets a deleting group left with no node, after a restart say). A group
   * with no node left and nothing running is forgotten at once (`deleted`). A newer revision
   * before then cancels the deletion, as it supersedes any rollout.
   */
  async deleteGroup(group: string): Promise<{ result?: SetSpecResult; deleted: boolean }> {
    const { store, scheduler } = this.options;
    return this.groupLocks.run(group, async () => {
      const current = await store.getGroupSpec(group);
      if (!current) throw new GroupNotFoundError(group);
      this.refuseIfShuttingDown();
      this.options.storage?.refuseNewWork();
      const idle = scheduler.runsIn(group).length === 0 && (await store.listNodes(group, { all: false })).length === 0;
      if (idle && (await this.forget(group, current.revision, []))) return { deleted: true };
      const result = await this.setSpecLocked(
        group,
        // A deletion that fails stops for an operator (who deletes again): rolling it back would bring the nodes back.
        async (now) => ({ spec: { ...now!.spec, count: 0, onFailure: "stop" }, options: { reason: "delete" } }),
        undefined,
      );
      return { result, deleted: false };
    });
  }

  /**
   * Commits `settle` and, in the same transaction, forgets the group if it is still at `revision`
   * with no node left; tells the watchers, and drops what this server keeps of the group.
   */
  private async forget(group: string, revision: number, settle: readonly SettleTransition[]): Promise<boolean> {
    const { store, clock, bus, logger } = this.options;
    const { forgotten, events } = await store.forgetGroup({ group, revision, settle, now: clock.now() });
    bus.publish(events);
    if (forgotten) {
      this.crashLoop.forget(group);
      this.backoffTimers.get(group)?.();
      this.backoffTimers.delete(group);
      logger.info({ group, revision }, "group deleted: its spec, revisions, graphs and nodes are forgotten");
    }
    return forgotten;
  }

  /**
   * Sets the group's node template. The template is part of the spec: a group with a spec gets
   * a new revision with it, rolled out like any update; a group without one keeps it for its
   * first update. Given as a change of the group's template (undefined: it has none, the
   * server's default applies), it is made under the group's lock, so concurrent changes all land.
   */
  async setTemplate(
    group: string,
    change: NodeTemplate | ((current: NodeTemplate | undefined) => Promise<NodeTemplate>),
  ): Promise<SetSpecResult | undefined> {
    return this.lockGroup(group, async () => {
      // Read under the lock: an update that lands first is kept, and this revision builds on it.
      const current = await this.options.store.getGroupSpec(group);
      const before = current ? current.spec.template : await this.options.store.getTemplate(group);
      const template = typeof change === "function" ? await change(before) : change;
      if (!current) {
        this.options.storage?.refuseNewWork();
        logTemplateChange(this.options.logger, group, before, template, {});
        await this.options.store.setTemplate(group, template, this.options.clock.now());
        return undefined;
      }
      return this.setSpecLocked(
        group,
        async (now) => {
          const { templateHash: _, ...spec } = now!.spec;
          return { spec: { ...spec, template }, options: {} };
        },
        current.revision,
      );
    });
  }

  /** The template the group's next node starts from: its current revision's, one kept for its first update, or none (the server's default). */
  async templateOf(group: string, revision?: number): Promise<NodeTemplate | undefined> {
    const { store } = this.options;
    if (revision !== undefined) {
      const stored = await store.getRevision(group, revision);
      if (stored) return stored.spec.template;
    }
    const current = await store.getGroupSpec(group);
    return current ? current.spec.template : store.getTemplate(group);
  }

  /** Lets a graph waiting at its canary's promote gate go on. */
  async promote(graphId: string): Promise<GraphSummary> {
    this.options.storage?.refuseWrites();
    const graph = await this.unsettledAfterRecovery(graphId, "promoted");
    const run = this.requireRun(graphId);
    if (!run.promote()) {
      const gate = graph.spec.canary ? "its canaries are not all up yet" : "it has no canary";
      throw new FailedPreconditionError(`graph ${graphId} is not waiting at a promote gate (${gate}): nothing to promote`);
    }
    this.options.logger.info({ graphId, group: graph.group }, "graph promoted");
    return (await this.options.store.getGraph(graphId))!;
  }

  /** Replaces one node by a new one at its version, under the current revision, within the group's rollout bounds. */
  restartNode(nodeId: string): Promise<GraphSummary & { tasks: Task[] }> {
    return this.withLiveNode(nodeId, async (node, current) => {
      const { store, clock, newId, logger, bus } = this.options;
      this.options.storage?.refuseNewWork();
      const superseded = this.haltRunsOf(node.group, `a restart of node ${node.id}`);
      const surgeFirst = resolveRolloutBounds(current.spec).maxSurge > 0;
      // The replacement runs what the node ran: its own revision's template.
      const replacement: PlannedTask = { id: 0, prerequisites: [], action: "start_node", version: node.version };
      if (node.revision !== undefined) replacement.revision = node.revision;
      if (node.templateHash !== undefined) replacement.templateHash = node.templateHash;
      const tasks: PlannedTask[] = surgeFirst
        ? [replacement, { id: 1, prerequisites: [0], action: "shut_down_node", nodeId: node.id }]
        : [
            { id: 0, prerequisites: [], action: "shut_down_node", nodeId: node.id },
            { ...replacement, id: 1, prerequisites: [0] },
          ];
      const stored = await store.storeGraph({
        group: node.group,
        revision: current.revision,
        reason: "operation",
        graph: { id: newId(), tasks },
        now: clock.now(),
        liveGraphs: this.liveGraphs(node.group),
      });
      bus.publish(stored.events);
      logger.info({ group: node.group, nodeId: node.id, graphId: stored.graph!.id }, "node restart requested");
      this.launch(stored.graph!, await store.listNodes(node.group, { all: false }), superseded.runs);
      return stored.graph!;
    });
  }

  /** Shuts one node down and lowers the count by one, as a new revision. */
  async stopNode(nodeId: string): Promise<SetSpecResult> {
    const { node, current } = await this.liveNodeAndSpec(nodeId);
    const spec = { ...current.spec, count: Math.max(0, current.spec.count - 1) };
    return this.setSpec(node.group, spec, {
      expectRevision: current.revision,
      reason: "stop",
      tasks: [
        { id: 0, prerequisites: [], action: "shut_down_node", nodeId: node.id },
      ],
    });
  }

  /** Starts one more node like the given one and raises the count by one, as a new revision. */
  async cloneNode(nodeId: string): Promise<SetSpecResult> {
    const { node, current } = await this.liveNodeAndSpec(nodeId);
    if (node.version !== current.spec.version) {
      throw new FailedPreconditionError(
        `node ${node.id} runs version ${node.version} but group ${node.group}'s spec is version ${current.spec.version}: clone a node at the spec's version`,
      );
    }
    const spec = { ...current.spec, count: current.spec.count + 1 };
    return this.setSpec(node.group, spec, {
      expectRevision: current.revision,
      reason: "clone",
      tasks: [{ id: 0, prerequisites: [], action: "start_node", version: node.version }],
    });
  }

  /** Makes one node fail abruptly, as a crash would; the group heals itself. */
  async killNode(nodeId: string): Promise<Node> {
    this.options.storage?.refuseWrites();
    let { node } = await this.liveNodeAndSpec(nodeId);
    if (this.recovering) {
      await this.afterRecoveryOf(node.group);
      ({ node } = await this.liveNodeAndSpec(nodeId));
    }
    const killed = await this.options.driver.kill({ id: node.id, group: node.group, version: node.version });
    if (!killed) throw new FailedPreconditionError(`node ${node.id} is ${node.state} and has nothing running to kill`);
    this.options.logger.warn({ group: node.group, nodeId: node.id }, "node killed on request");
    return node;
  }

  private async liveNodeAndSpec(nodeId: string) {
    const node = await this.options.store.getNode(nodeId);
    if (!node) throw new NodeNotFoundError(nodeId);
    if (node.state === "stopped" || node.state === "stopping") {
      throw new FailedPreconditionError(`node ${nodeId} is ${node.state}: only a live node can be restarted, stopped, cloned or killed`);
    }
    const current = await this.options.store.getGroupSpec(node.group);
    if (!current) throw new FailedPreconditionError(`group ${node.group} has no spec`);
    return { node, current };
  }

  private withLiveNode<T>(nodeId: string, work: (node: Node, current: { revision: number; spec: Spec }) => Promise<T>): Promise<T> {
    return this.liveNodeAndSpec(nodeId).then(({ node }) =>
      this.lockGroup(node.group, async () => {
        this.refuseIfShuttingDown();
        // Looked up again under the lock: an update may have changed the group meanwhile.
        const { node: fresh, current } = await this.liveNodeAndSpec(nodeId);
        return work(fresh, current);
      }),
    );
  }

  /**
   * Refuses a spec whose reservations do not fit on the host beside every other group's:
   * during a rolling update the group may hold count + max surge nodes at once.
   */
  private async requireCapacity(group: string, spec: Spec): Promise<void> {
    const capacity = this.options.capacity;
    if (!capacity || (!spec.cpuMillis && !spec.memoryMb)) return;
    const others = await this.options.store.reservedByOtherGroups(group);
    const peak = spec.count + resolveRolloutBounds(spec).maxSurge;
    const shortages: string[] = [];
    const cpu = peak * (spec.cpuMillis ?? 0);
    // In the units a person reads (2.5 cores, 3.0 GiB) rather than the millicores and MiB the spec holds.
    if (cpu + others.cpuMillis > capacity.cpuMillis) {
      shortages.push(
        `cpu: ${peak} nodes × ${formatCores(spec.cpuMillis ?? 0)} = ${formatCores(cpu)}, with ${formatCores(others.cpuMillis)} held by other groups, exceeds the host's ${formatCores(capacity.cpuMillis)} by ${formatCores(cpu + others.cpuMillis - capacity.cpuMillis)}`,
      );
    }
    const memory = peak * (spec.memoryMb ?? 0);
    if (memory + others.memoryMb > capacity.memoryMb) {
      const mebibytes = (amount: number) => formatBytes(amount * 1024 * 1024);
      shortages.push(
        `memory: ${peak} nodes × ${mebibytes(spec.memoryMb ?? 0)} = ${mebibytes(memory)}, with ${mebibytes(others.memoryMb)} held by other groups, exceeds the host's ${mebibytes(capacity.memoryMb)} by ${mebibytes(memory + others.memoryMb - capacity.memoryMb)}`,
      );
    }
    if (shortages.length > 0) {
      throw new ResourceExhaustedError(`group ${group}'s spec does not fit on this host (${shortages.join("; ")}): ask for less, or add capacity`);
    }
  }

  async history(group: string, limit: number): Promise<Revision[]> {
    return this.options.store.listRevisions(group, limit);
  }

  /** Cancels a pending, running or paused graph and waits until it has settled. */
  async cancel(graphId: string): Promise<GraphSummary> {
    const { store, scheduler, journal } = this.options;
    this.options.storage?.refuseWrites();
    const graph = await this.unsettledAfterRecovery(graphId, "cancelled");
    const outcome = await scheduler.halt(graphId, "cancelled", "cancelled by a user");
    if (outcome === undefined) {
      // Stored as unsettled but not running here: settle it in the store directly.
      await journal.record([{ type: "graph", graphId, group: graph.group, state: "cancelled", error: "cancelled by a user" }]);
    }
    return (await store.getGraph(graphId))!;
  }

  async pause(graphId: string): Promise<GraphSummary> {
    this.options.storage?.refuseWrites();
    await this.unsettledAfterRecovery(graphId, "paused");
    await this.requireRun(graphId).pause();
    return (await this.options.store.getGraph(graphId))!;
  }

  async resume(graphId: string): Promise<GraphSummary> {
    this.options.storage?.refuseWrites();
    await this.unsettledAfterRecovery(graphId, "resumed");
    await this.requireRun(graphId).resume();
    return (await this.options.store.getGraph(graphId))!;
  }

  /** The run of an unsettled graph; one the server is not running (it stopped recording) cannot be steered. */
  private requireRun(graphId: string) {
    const run = this.options.scheduler.get(graphId);
    if (!run) {
      throw new FailedPreconditionError(`graph ${graphId} is not running in this server (see its log): restart the server to resume it`);
    }
    return run;
  }

  /**
   * Start-up: stops stray node processes (see sweepStrays), then recovers every group under its
   * lock: resumes the graph a previous server left unsettled (older graphs of the group are
   * superseded), and re-adopts running nodes, marking the ones the driver no longer has as
   * failed so a pass repairs them. Returns how many graphs were resumed.
   *
   * The API serves while this runs. Reads and watches answer at once; a call that changes a
   * group waits for that group's recovery, then acts on what recovery left: an update or a
   * rollback supersedes the resumed graph as it would any running graph, and a cancel, pause,
   * resume or promote finds it running (or superseded). Of the two ways to keep such a call
   * from racing recovery (refuse it UNAVAILABLE until recovery is done, or hold it), this is
   * the second, because every change to a group already goes through the group's lock: holding
   * each lock while its group recovers needs only a gate that keeps other work off the locks
   * until recovery holds them, the caller gets the answer it asked for instead of a retry, and
   * a group that recovers quickly is not held up by a slow one.
   * It cannot deadlock: recovery takes every lock at once, before any other work can queue on
   * one (see lockGroup), holds none while it waits for another, and waits for nothing that
   * needs a lock (the runs it launches settle later, under the lock, once it is released).
   * A shutdown cuts recovery short: it rejects, and the runs it launched are interrupted.
   */
  async recover(): Promise<number> {
    const { store } = this.options;
    let groups: string[] = [];
    let recoveries: Promise<boolean>[] = [];
    try {
      groups = await store.listGroups();
      const live = new Set<string>();
      for (const group of groups) for (const node of await store.listNodes(group, { all: false })) live.add(node.id);
      // Before any graph runs, so that no node being started can be taken for a stray.
      await this.sweepStrays(live);
      recoveries = groups.map((group) => this.groupLocks.run(group, () => this.recoverGroup(group)));
    } finally {
      this.openLockGate();
    }
    const outcomes = await Promise.allSettled(recoveries);
    this.recovering = false;
    const failed = outcomes.find((outcome) => outcome.status === "rejected");
    if (failed) throw failed.reason;
    return outcomes.filter((outcome) => outcome.status === "fulfilled" && outcome.value).length;
  }

  /**
   * Recovers one group, under its lock (see recover). Only the group's newest unsettled graph,
   * at its current revision, is resumed: any other was left behind by a newer graph or revision
   * stored before the server stopped. (A heal that finished after the rollout it ran beside
   * does not replace the rollout.) Returns whether a graph was resumed.
   */
  private async recoverGroup(group: string): Promise<boolean> {
    const { store, journal, logger, driver } = this.options;
    const graphs = await store.unsettledGraphs(group);
    const newest = graphs.at(-1);
    let resumable: GraphWithTasks | undefined;
    let supersededBy = (_graph: GraphWithTasks) => "a newer graph";
    if (newest) {
      const [current, rollout] = await Promise.all([store.getGroupSpec(group), store.latestRolloutGraph(group)]);
      const isRollout = newest.reason === "update" || newest.reason === "repair";
      if (newest.revision === current?.revision && (!isRollout || rollout?.id === newest.id)) resumable = newest;
      // What supersedes each other unsettled graph: a newer revision, or the newest graph or rollout.
      const revision = current?.revision ?? 0;
      supersededBy = (graph) => {
        if (graph.revision < revision) return `spec revision ${revision}`;
        const next = newest.id !== graph.id ? newest : rollout;
        return next ? `graph ${next.id} (${graphReasonInWords[next.reason]})` : "a newer graph";
      };
    }
    const stale = graphs.filter((graph) => graph !== resumable);
    for (const graph of stale) {
      logger.warn({ graphId: graph.id, group, revision: graph.revision }, "superseding an unsettled graph that a newer graph or revision replaced");
    }
    if (stale.length > 0) await journal.record(stale.flatMap((graph) => supersededTransitions(graph, `superseded by ${supersededBy(graph)}`)));
    if (resumable) {
      await (this.options.delayPoint ?? noDelays)("recovery.before-resume", this.options.shutdownSignal ?? new AbortController().signal);
      const nodes = await store.listNodes(group, { all: true });
      logger.info({ graphId: resumable.id, group }, "resuming unsettled graph");
      this.launch(resumable, nodes);
    }
    const signal = new AbortController().signal;
    const lost: Node[] = [];
    for (const node of await store.listNodes(group, { all: false })) {
      const adoptable = node.state === "running" || node.state === "unhealthy";
      if (adoptable && (await driver.inspect(node, signal)) === "stopped") lost.push(node);
    }
    if (lost.length > 0) {
      logger.warn({ group, nodes: lost.map((node) => node.id) }, "running nodes were gone after the restart");
      await journal.record(lost.map((node) => ({ ...failedNode(node, "gone after the server restarted"), exitStatus: "exited while the server was down" })));
    }
    // Queued behind this recovery, on the lock it holds.
    this.queuePass(group);
    return resumable !== undefined;
  }

  /**
   * Start-up: stops the node processes the store knows as stopped (a crash between committing
   * a node's stop and stopping it leaves one behind) and forgets records whose process is gone.
   * A process of a node the store has never heard of is not the store's to stop: its database
   * may have been restored from a backup, or replaced by an empty one, and the process is
   * someone's workload. It is only logged (with its pid) and left running, unless the server
   * runs with --stop-unknown-processes.
   */
  private async sweepStrays(live: ReadonlySet<string>): Promise<void> {
    const { store, driver, logger, stopUnknownProcesses } = this.options;
    const stop: StrayNode[] = [];
    const unknown: StrayNode[] = [];
    for (const stray of await driver.strays(live)) {
      if (!stray.running || stopUnknownProcesses || (await store.getNode(stray.id)) !== undefined) stop.push(stray);
      else unknown.push(stray);
    }
    const swept = new Set(await driver.sweep(stop.map((stray) => stray.id)));
    const stopped = stop.filter((stray) => stray.running && swept.has(stray.id));
    if (stopped.length > 0) {
      logger.warn({ processes: stopped.map((stray) => ({ node: stray.id, group: stray.group, pid: stray.pid })) }, "stopped node processes that had no live node");
    }
    if (unknown.length > 0) {
      logger.warn(
        { processes: unknown.map((stray) => ({ node: stray.id, group: stray.group, pid: stray.pid })) },
        "left running node processes the database does not know: stop them yourself (kill -TERM -<pid>), or restart with --stop-unknown-processes",
      );
    }
  }

  /** Runs a reconcile pass over every group now and then every `intervalMs`, until the signal aborts. */
  async runPeriodically(intervalMs: number, signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      for (const group of await this.options.store.listGroups()) this.queuePass(group);
      try {
        await this.options.clock.sleep(intervalMs, signal);
      } catch {
        return;
      }
    }
  }

  /** Queues one reconcile pass for the group (passes already queued are not repeated). */
  queuePass(group: string): void {
    if (this.passQueued.has(group)) return;
    this.passQueued.add(group);
    void this.lockGroup(group, async () => {
      this.passQueued.delete(group);
      await this.pass(group);
    }).catch((error) => this.options.logger.error({ err: error, group }, "reconcile pass failed"));
  }

  /**
   * Compares the group with its spec. With nothing running and its latest rollout succeeded
   * (or none needed), it converges the group with a repair graph; otherwise it only heals,
   * replacing failed nodes no run works on at their own revision. Replacements of failed
   * nodes wait out the group's crash-loop backoff.
   */
  private async pass(group: string): Promise<void> {
    const { store, scheduler, journal, newId, clock, logger, bus } = this.options;
    if (this.options.shutdownSignal?.aborted) return;
    // Nothing can be stored while the database cannot be written; the periodic pass comes back.
    if (this.options.storage?.current) return;
    const current = await store.getGroupSpec(group);
    if (!current) return;
    const runs = scheduler.runsIn(group);
    // A run that is settling may start a rollback, which decides what replaces what; its end queues another pass.
    if (runs.some((run) => run.isHalted)) return;
    let nodes = await store.listNodes(group, { all: false });
    // A deletion whose graph's success was not followed by the forgetting (its graph ended as the
    // server stopped, or it had nothing to do but wait for superseded runs): its end is reached.
    if (current.deleting && runs.length === 0 && nodes.length === 0) {
      await this.forget(group, current.revision, []);
      return;
    }
    let planned: { tasks: PlannedTask[] };
    let reason: "repair" | "heal";
    let why: string;
    if (runs.length === 0) {
      // With no graph running, a node still starting or stopping was left so by a graph that ended.
      const orphans = nodes.filter((node) => node.state === "starting" || node.state === "stopping");
      if (orphans.length > 0) {
        await journal.record(orphans.map((node) => failedNode(node, `left ${node.state} when its graph ended`)));
        nodes = await store.listNodes(group, { all: false });
      }
      const rollout = await store.latestRolloutGraph(group);
      // A rollout superseded at the current revision has no successor that carries it on: what
      // superseded it was a node's restart, stop or clone, or an update whose revision could not
      // be stored (a full disk). Nobody chose to stop it, so the pass converges the group on
      // its spec; a rollout that failed, was cancelled or is paused stays where it is.
      const reached = !rollout || rollout.revision < current.revision || rollout.state === "succeeded" || rollout.state === "superseded";
      if (reached) {
        planned = plan(nodes, current.spec);
        reason = "repair";
        why = "the group drifted from its spec";
      } else {
        planned = planHeal(nodes, current.spec);
        reason = "heal";
        why = `replacing failed nodes at their own revision; the ${rollout.state} rollout (graph ${rollout.id}) stays where it is`;
      }
    } else {
      const claimed = new Set<string>();
      for (const run of runs) for (const nodeId of run.claimedNodes()) claimed.add(nodeId);
      planned = planHeal(nodes, current.spec, claimed);
      reason = "heal";
      why = `replacing failed nodes at their own revision while graph ${runs.map((run) => run.id).join(", ")} ${runs.some((run) => run.isPaused) ? "is paused" : "runs"}`;
    }
    if (planned.tasks.length === 0) return;
    const failed = nodes.filter((node) => node.state === "failed").length;
    const replacing = failed > 0 && planned.tasks.some((task) => task.action === "start_node");
    const now = clock.now();
    if (replacing) {
      const delay = this.crashLoop.delay(group, now);
      if (delay > 0) {
        this.passAfter(group, delay);
        return;
      }
    }
    const stored = await store.storeGraph({
      group,
      revision: current.revision,
      reason,
      message: why,
      graph: { id: newId(), tasks: planned.tasks },
      now,
      liveGraphs: this.liveGraphs(group),
    });
    if (replacing) {
      const restarts = this.crashLoop.replaced(group, now);
      this.options.onReplacement?.(group);
      if (restarts > 1) logger.warn({ group, restarts, nextInMs: this.crashLoop.delay(group, now) }, "group is in a crash loop: replacements back off");
    }
    bus.publish(stored.events);
    logger.warn(
      { group, revision: current.revision, graphId: stored.graph!.id, reason, failedNodes: failed, liveNodes: nodes.length - failed, tasks: planned.tasks.length },
      why,
    );
    this.launch(stored.graph!, nodes);
  }

  /** Queues a pass once `delay` has passed (one timer per group). */
  private passAfter(group: string, delay: number): void {
    if (this.backoffTimers.has(group) || this.options.shutdownSignal?.aborted) return;
    const cancel = this.options.clock.setTimer(delay, () => {
      this.backoffTimers.delete(group);
      this.queuePass(group);
    });
    this.backoffTimers.set(group, cancel);
  }

  private async nodeFailed(handle: NodeHandle, failure: NodeFailure): Promise<void> {
    const { store, journal, logger, scheduler, clock } = this.options;
    this.crashLoop.failed(handle.group, `node ${handle.id} ${failure.reason}`, clock.now());
    const node = await store.getNode(handle.id);
    // Only a node the store believes up changes here; a graph owns nodes it is starting or stopping.
    const up = node !== undefined && (node.state === "running" || (node.state === "unhealthy" && failure.state === "failed"));
    if (up) {
      logger.warn({ group: node.group, nodeId: node.id, state: failure.state, reason: failure.reason }, "node failed");
      // A node that ran and failed records how it ended (an unknown status still says it ended): it is lost capacity.
      const exitStatus = failure.state === "failed" ? (failure.exitStatus ?? "exited") : undefined;
      await journal.record([{ ...failedNode(node, failure.reason), state: failure.state, exitStatus }]);
    }
    // Then the runs hear, once the failure is committed (so their bounds count it): a start holding
    // for min-ready fails its attempt, a node a run started fails it, a node a lane would replace is replaced now.
    scheduler.nodeFailed(handle.group, handle.id, failure);
    if (up) this.queuePass(node.group);
  }

  /** The group's graphs that runs here are working on: storing a revision or graph leaves them to end on their own. */
  private liveGraphs(group: string): string[] {
    return this.options.scheduler.runsIn(group).map((run) => run.id);
  }

  private refuseIfShuttingDown(): void {
    if (this.options.shutdownSignal?.aborted) throw new UnavailableError("the server is shutting down: try again once it is back");
  }

  private async requireUnsettled(graphId: string, verb: string): Promise<GraphSummary> {
    const graph = await this.options.store.getGraph(graphId);
    if (!graph) throw new GraphNotFoundError(graphId);
    if (isFinalGraphState(graph.state)) {
      throw new FailedPreconditionError(`graph ${graphId} has already ${settledText(graph.state)}: only a pending, running or paused graph can be ${verb}`);
    }
    return graph;
  }

  /**
   * The unsettled graph a call names, once recovery has recovered its group: a call that
   * arrives during recovery finds the graph as recovery leaves it (resumed, or superseded),
   * never one that recovery is about to resume behind its back.
   */
  private async unsettledAfterRecovery(graphId: string, verb: string): Promise<GraphSummary> {
    const graph = await this.requireUnsettled(graphId, verb);
    if (!this.recovering) return graph;
    await this.afterRecoveryOf(graph.group);
    return this.requireUnsettled(graphId, verb);
  }

  /** Resolves once recovery has recovered the group: at once when recovery is over. */
  private async afterRecoveryOf(group: string): Promise<void> {
    if (this.recovering) await this.lockGroup(group, async () => undefined);
  }

  /** Hands a stored graph to the scheduler, settling it through the failure policy; it starts once the `after` runs have settled. */
  private launch(graph: GraphWithTasks, nodes: readonly Node[], after: readonly GraphRun[] = []): void {
    // A graph stored as the server stops is resumed by the next start.
    if (this.options.shutdownSignal?.aborted) return;
    // The run needs only the nodes its tasks name, not the whole group.
    const named = new Set<string>();
    for (const task of graph.tasks) if (task.nodeId !== undefined) named.add(task.nodeId);
    const run = this.options.scheduler.run(
      graph,
      indexById(nodes.filter((node) => named.has(node.id))),
      (settling, transition) => this.settle(settling, transition),
      after.map((previous) => ({ id: previous.id, settled: previous.settled })),
    );
    // The group's name, not `graph`: the callback would keep every task of it alive until the run ends.
    const group = graph.group;
    void run.settled.then((outcome) => {
      // Whatever the outcome, the group is looked at again: converged after a success, healed after anything else.
      if (outcome !== "interrupted") this.queuePass(group);
    });
  }

  /**
   * Commits the success of a rollout of the group's deletion together with the forgetting of
   * the group, in one transaction: a crash leaves the group whole or gone, never half. Under the
   * group's lock, as every revision is stored: an update that lands first cancels the deletion,
   * and the success is then committed alone.
   */
  private async settleDeletion(graph: GraphWithTasks, transition: SettleTransition): Promise<void> {
    const { store, journal } = this.options;
    await this.groupLocks.run(graph.group, async () => {
      // The run's own earlier transitions go through the journal; they must be committed before its final event.
      await journal.settled();
      const current = await store.getGroupSpec(graph.group);
      const live = await store.listNodes(graph.group, { all: false });
      if (!current?.deleting || current.revision !== graph.revision || live.length > 0) {
        await journal.record([transition]);
        return;
      }
      const message = `group ${graph.group} deleted: its spec, revisions, graphs and nodes are forgotten`;
      await this.forget(graph.group, graph.revision, [{ ...transition, message }]);
    });
  }

  /**
   * Commits a graph's final transition. When the graph failed under a spec that says
   * rollback, the same transaction stores a revision restoring the last revision the group
   * reached, and the failed graph's final event names it.
   */
  private async settle(graph: GraphWithTasks, transition: SettleTransition): Promise<void> {
    const { store, journal, newId, clock, logger, bus } = this.options;
    if (transition.state === "succeeded" && (graph.reason === "update" || graph.reason === "repair") && (await store.getGroupSpec(graph.group))?.deleting) {
      await this.settleDeletion(graph, transition);
      return;
    }
    if (transition.state === "cancelled" && (graph.reason === "update" || graph.reason === "repair")) {
      await journal.record([
        { ...transition, message: "the rollout stays where it is until the next update or rollback; failed nodes are still replaced at their own revision" },
      ]);
      return;
    }
    if (transition.state !== "failed" || graph.spec.onFailure !== "rollback" || graph.reason !== "update") {
      await journal.record([transition]);
      return;
    }
    // Under the group's lock, as every revision is stored: a pass that is planning a heal
    // finishes first, and the rollback halts it (or an update that landed first wins).
    await this.lockGroup(graph.group, async () => {
      // The halt's own transitions (skipped tasks) go through the journal; they must be committed
      // before the final event, which this path commits directly with the new revision.
      await journal.settled();
      const revision = await store.getRevision(graph.group, graph.revision);
      const target = revision?.reason === "auto_rollback" ? undefined : await store.lastReachedRevision(graph.group, graph.revision);
      if (!target) {
        const why = revision?.reason === "auto_rollback" ? "it was itself an automatic rollback" : "the group reached no earlier revision";
        await journal.record([{ ...transition, message: `not rolling back: ${why}` }]);
        return;
      }
      // Heals running beside the failed rollout give way to the rollback, as to any new revision.
      const superseded = this.haltRunsOf(graph.group, `an automatic rollback to revision ${target.revision} (graph ${graph.id} failed)`, graph.id);
      const listed = await store.listNodes(graph.group, { all: false });
      const nodes = superseded.abandoned.size === 0 ? listed : listed.map((node) => (superseded.abandoned.has(node.id) ? { ...node, state: "failed" as const } : node));
      // The failed spec's count stays: what is rolled back is what runs (version and template), as a user's rollback does.
      const spec = { ...target.spec, count: graph.spec.count };
      const planned = plan(nodes, spec);
      const nextGraphId = planned.tasks.length > 0 ? newId() : undefined;
      const message = `rolling back to revision ${target.revision} (${spec.count} × v${spec.version}${templateChange(graph.spec, target.spec)})`;
      try {
        const stored = await store.storeRevision({
          group: graph.group,
          spec,
          graph: nextGraphId ? { id: nextGraphId, tasks: planned.tasks } : undefined,
          now: clock.now(),
          reason: "auto_rollback",
          restores: target.revision,
          expectRevision: graph.revision,
          settle: [{ ...transition, message, nextGraphId }],
          liveGraphs: this.liveGraphs(graph.group),
        });
        bus.publish(stored.events);
        logger.warn({ group: graph.group, failedGraphId: graph.id, revision: stored.revision, restores: target.revision, graphId: nextGraphId }, message);
        if (stored.graph) this.launch(stored.graph, listed, superseded.runs);
      } catch (error) {
        if (!(error instanceof FailedPreconditionError)) throw error;
        // A newer revision arrived meanwhile: it decides what happens next.
        await journal.record([{ ...transition, message: "not rolling back: a newer revision replaced the spec" }]);
      }
    });
  }
}

/** ", its template" when a rollback also restores another template. */
function templateChange(from: Spec, to: Spec): string {
  return (from.templateHash ?? "") === (to.templateHash ?? "") ? "" : ", its template";
}

/** A stale graph's end at start-up: its unfinished tasks cancelled, and the graph superseded with `error`. */
function supersededTransitions(graph: GraphWithTasks, error: string): Transition[] {
  return [
    ...graph.tasks
      .filter((task) => task.state === TaskState.pending || task.state === TaskState.running)
      .map((task) => ({ type: "task" as const, graphId: graph.id, group: graph.group, taskId: task.id, action: task.action, state: TaskState.cancelled })),
    { type: "graph", graphId: graph.id, group: graph.group, state: "superseded", error },
  ];
}

/** Why a user's new spec is made: `scale` when it changes only the count of the current one. */
function updateReason(current: Spec | undefined, spec: Spec): RevisionReason {
  return current && current.count !== spec.count && sameSpec({ ...current, count: spec.count }, spec) ? "scale" : "update";
}

function failedNode(node: Node, reason: string) {
  return { type: "node" as const, nodeId: node.id, group: node.group, state: "failed" as const, version: node.version, host: node.host, error: reason };
}

function countLiveVersions(nodes: readonly Node[]): Map<number, number> {
  const versions = new Map<number, number>();
  for (const node of nodes) {
    if (node.state === "starting" || node.state === "running" || node.state === "unhealthy") {
      versions.set(node.version, (versions.get(node.version) ?? 0) + 1);
    }
  }
  return versions;
}

function indexById(nodes: readonly Node[]): Map<string, Node> {
  return new Map(nodes.map((node) => [node.id, { ...node }]));
}

/** The graph a dry run would store: no id, every task pending. */
function draftGraph(group: string, revision: number, spec: Spec, planned: readonly PlannedTask[], now: number) {
  const tasks: Task[] = planned.map(pendingTask);
  return {
    id: "",
    group,
    revision,
    spec,
    state: "pending" as const,
    reason: "update" as const,
    createdAt: now,
    retries: 0,
    counts: { total: tasks.length, pending: tasks.length, running: 0, succeeded: 0, failed: 0, skipped: 0, cancelled: 0 },
    tasks,
  };
}
