import {
  type CancelGraphRequest,
  type CancelGraphResponse,
  type DeepPartial,
  type DroverServiceImplementation,
  type GetGraphRequest,
  type GetGraphResponse,
  type ListGraphsRequest,
  type ListGraphsResponse,
  type GetTemplateRequest,
  type GetTemplateResponse,
  type SetTemplateRequest,
  type SetTemplateResponse,
  type ListNodesRequest,
  type CloneNodeRequest,
  type CloneNodeResponse,
  type GetNodeStatsRequest,
  type GetNodeStatsResponse,
  type KillNodeRequest,
  type KillNodeResponse,
  type NodeLogsRequest,
  type NodeLogsResponse,
  type RestartNodeRequest,
  type RestartNodeResponse,
  type StopNodeRequest,
  type StopNodeResponse,
  type ListRevisionsRequest,
  type ListRevisionsResponse,
  type PauseGraphRequest,
  type PromoteGraphRequest,
  type PromoteGraphResponse,
  type DescribeNodeRequest,
  type DescribeNodeResponse,
  type PauseGraphResponse,
  type ResumeGraphRequest,
  type ResumeGraphResponse,
  type RollbackRequest,
  type RollbackResponse,
  type ListNodesResponse,
  type SetSpecRequest,
  type SetSpecResponse,
  type WatchGraphRequest,
  type WatchGraphResponse,
  type WatchNodesRequest,
  type WatchNodesResponse,
  type CrashLoop,
  type DeleteGroupRequest,
  type DeleteGroupResponse,
  type GetGroupRequest,
  type GetGroupResponse,
  type GroupStatus,
  type ListGroupsRequest,
  type ListGroupsResponse,
} from "@drover/shared";
import type { CrashLoopStatus } from "../reconciler/CrashLoopBackoff.js";
import { type CallContext, ServerError, Status } from "nice-grpc";
import type { Event, Node, NodeTemplate } from "../domain.js";
import { isFinalGraphState, settledText } from "../domain.js";
import { EventsCompactedError, FailedPreconditionError, GraphNotFoundError, GroupNotFoundError, InvalidArgumentError, NodeNotFoundError, NotFoundError } from "../errors.js";
import type { Clock } from "../clock.js";
import type { Driver } from "../drivers/Driver.js";
import { readLog } from "./readLog.js";
import { patchTemplate } from "./templatePatch.js";
import { GraphSnapshots } from "./GraphSnapshots.js";
import { liveApiEvent } from "./wire.js";
import type { EventBus, Subscription } from "../events/EventBus.js";
import type { StreamContext } from "./StreamOutlet.js";
import type { Reconciler } from "../reconciler/Reconciler.js";
import type { GroupStatus as StoredGroupStatus, Store } from "../store/Store.js";
import type { SetSpecResult } from "../reconciler/Reconciler.js";
import { toApiEvent, toApiGraph, toApiNode, toApiNodeStats, toApiRevision, toApiSpec, toApiTask, toApiTemplate } from "./convert.js";
import {
  optionalRevision,
  requireAllowedCommand,
  requireGroup,
  requireIdReference,
  requireListLimit,
  requireLogStart,
  requireSpec,
  resolveId,
  requireTemplate,
} from "./validate.js";

function toApiCrashLoop(loop: CrashLoopStatus | undefined): CrashLoop | undefined {
  return loop && { restarts: loop.restarts, nextAttemptAt: new Date(loop.nextAttemptAt), lastFailure: loop.lastFailure };
}

/** A whole message (every field set): the gRPC server sends it without the generated deep copy (see wire.ts). */
function toApiSetSpecResponse(result: SetSpecResult): SetSpecResponse {
  return {
    group: result.group,
    revision: result.revision,
    spec: toApiSpec(result.spec),
    current: [...result.current.entries()].sort(([a], [b]) => a - b).map(([version, count]) => ({ version, count })),
    graph: result.graph ? toApiGraph(result.graph, result.graph.tasks) : undefined,
    nothingToDo: result.graph === undefined,
    supersededGraphId: result.supersededGraphId ?? "",
    minAvailable: result.preview?.minAvailable ?? 0,
    maxAlive: result.preview?.maxAlive ?? 0,
    estimatedDurationMs: result.preview?.estimatedDurationMs ?? 0,
    hasEstimate: result.preview?.estimatedDurationMs !== undefined,
    created: result.created ?? false,
  };
}

/** The most waiting tasks GetGroup lists. */
const WAITING_TASKS_SHOWN = 20;

export interface DroverServiceOptions {
  store: Store;
  reconciler: Reconciler;
  bus: EventBus;
  /** How many events one watcher may hold unsent (queued, or sent and not yet read) before its stream is ended. */
  watcherCapacity: number;
  /** The template of a group that has none of its own. */
  defaultTemplate: NodeTemplate;
  driver: Driver;
  /** The server's clock: `nodes logs --since` counts back from its now, on the timeline of the log's times. */
  clock: Clock;
  /** Told when a watcher is cut off for falling too far behind. */
  onWatcherDropped?: () => void;
  /** Ends every watch stream; aborted when the server shuts down. */
  shutdownSignal: AbortSignal;
  /** Aborted (its reason a StorageFaultError) when the database stops taking writes: watch streams end UNAVAILABLE. */
  storage?: { readonly signal: AbortSignal };
}

/** How many logged events a resuming watcher reads per query. */
const REPLAY_PAGE = 10_000;
/**
 * The most events a live message carries. A watcher has two messages unread at most (see
 * StreamOutlet), so this bounds what its stream holds in the transport: well under 1 MB.
 */
const LIVE_MESSAGE_EVENTS = 1_000;

type Context = CallContext & StreamContext;

/** The gRPC handlers: validate, call the domain, translate. Nothing here speaks SQL. */
export function droverService(options: DroverServiceOptions): DroverServiceImplementation<StreamContext> {
  const { store, reconciler, bus } = options;
  const snapshots = new GraphSnapshots(store, bus);
  /** The graph or node a request's id, prefix or short form names. */
  const graphIdOf = (text: string) => resolveId("graph", text, store);
  const nodeIdOf = (text: string) => resolveId("node", text, store);

  /**
   * The graph a cancel, pause, resume or promote acts on: the one the request names, or without
   * one, the group's graph in progress (see Store.currentGraph); NOT_FOUND for a group that does
   * not exist or has no graphs, FAILED_PRECONDITION when all its graphs have settled, as for a settled graph named.
   */
  async function graphToSteer(request: { graphId: string; group: string }, verb: string): Promise<string> {
    if (request.graphId !== "") return graphIdOf(request.graphId);
    const group = requireGroup(request.group);
    const current = await store.currentGraph(group);
    if (current) return current.id;
    const latestId = await store.latestGraphId(group);
    const latest = latestId === undefined ? undefined : await store.getGraph(latestId);
    if (!latest) {
      await requireExistingGroup(group);
      throw new NotFoundError(`group ${group} has no graphs yet: make one with 'client update <count> <version>'`);
    }
    throw new FailedPreconditionError(
      `group ${group} has no graph in progress to ${verb}: its latest graph, ${latest.id}, has ${settledText(latest.state)} (list them with 'client graphs ls')`,
    );
  }

  /** The node with what the driver reads of it from the OS, when it runs real processes. */
  async function nodeWithStats(node: Node) {
    const stats = node.state === "stopped" ? undefined : options.driver.stats(node);
    return toApiNode(node, stats && toApiNodeStats(stats, Math.max(0, (await store.startAttempts(node.id)) - 1)));
  }

  /** Refuses NOT_FOUND a read of a group that has no spec (never updated, or deleted): a misspelt --group is not an empty group. */
  async function requireExistingGroup(group: string): Promise<void> {
    if (!(await store.getGroupSpec(group))) throw new GroupNotFoundError(group);
  }

  function toApiGroupStatus(status: StoredGroupStatus): GroupStatus {
    return {
      group: status.group,
      revision: status.revision,
      spec: toApiSpec(status.spec),
      total: status.nodes.total,
      upToDate: status.nodes.upToDate,
      available: status.nodes.available,
      failed: status.nodes.failed,
      graph: status.graph && toApiGraph(status.graph),
      waitingTasks: status.waitingTasks,
      createdAt: new Date(status.createdAt),
      updatedAt: new Date(status.updatedAt),
      deleting: status.deleting,
      crashLoop: toApiCrashLoop(reconciler.crashLoopOf(status.group)),
    };
  }

  /** The signal a stream's waits are tied to: the client went away, or the server is stopping. */
  function streamSignal(context: CallContext): AbortSignal {
    return AbortSignal.any([context.signal, options.shutdownSignal]);
  }

  /**
   * Streams a subscription's events after `cursor` until `isEnd` says the last one ends the
   * stream. It takes more only once the client has read all it was sent but the message
   * being written (see StreamOutlet), so a watcher that stops reading falls behind in its
   * subscription; the moment that overflows, the stream ends with RESOURCE_EXHAUSTED and the
   * sequence to resume after (the last one sent).
   */
  async function* follow(
    subscription: Subscription,
    cursor: number,
    context: Context,
    isEnd: (event: Event) => boolean,
  ): AsyncGenerator<Event[], void> {
    const storage = options.storage?.signal;
    const signal = AbortSignal.any(storage ? [context.signal, options.shutdownSignal, subscription.overflowed, storage] : [context.signal, options.shutdownSignal, subscription.overflowed]);
    for (;;) {
      await context.outlet.drained(signal);
      const events = (await subscription.take(signal, LIVE_MESSAGE_EVENTS)).filter((event) => event.sequence > cursor);
      if (events.length > 0) {
        // Once yielded, they are the transport's: a resume point must count them.
        cursor = events.at(-1)!.sequence;
        yield events;
        if (events.some(isEnd)) return;
      }
      if (subscription.overflowed.aborted) {
        options.onWatcherDropped?.();
        const why =
          subscription.overflowReason === "crowded"
            ? "watcher was the furthest behind when all watchers together held more unsent events than the server allows (--watcher-buffer-total)"
            : `watcher fell more than ${options.watcherCapacity} events behind`;
        throw new ServerError(Status.RESOURCE_EXHAUSTED, `${why}: resume after sequence ${cursor}`);
      }
      if (signal.aborted) {
        if (options.shutdownSignal.aborted) throw new ServerError(Status.UNAVAILABLE, `the server is shutting down: resume after sequence ${cursor}`);
        if (storage?.aborted) {
          const why = storage.reason instanceof Error ? storage.reason.message : "the database cannot be written";
          throw new ServerError(Status.UNAVAILABLE, `${why}: resume after sequence ${cursor}`);
        }
        return;
      }
    }
  }

  return {
    async setSpec(request: SetSpecRequest): Promise<SetSpecResponse> {
      const group = requireGroup(request.group);
      const spec = requireSpec(request);
      const expectRevision = optionalRevision("expect_revision", request.expectRevision);
      // A template given is checked as it is; without one, the template the new nodes would run (scaling to zero starts none).
      if (spec.template || spec.count > 0) {
        const current = async () => (await reconciler.templateOf(group)) ?? options.defaultTemplate;
        await requireAllowedCommand(options.driver, group, spec.template ?? current, spec.version);
      }
      return toApiSetSpecResponse(await reconciler.setSpec(group, spec, { dryRun: request.dryRun, expectRevision }));
    },

    async rollback(request: RollbackRequest): Promise<DeepPartial<RollbackResponse>> {
      const group = requireGroup(request.group);
      const revision = optionalRevision("revision", request.revision)!;
      const expectRevision = optionalRevision("expect_revision", request.expectRevision);
      const { result, restores } = await reconciler.rollback(group, revision, { dryRun: request.dryRun, expectRevision, withCount: request.withCount });
      return { update: toApiSetSpecResponse(result), restores };
    },

    async listRevisions(request: ListRevisionsRequest): Promise<DeepPartial<ListRevisionsResponse>> {
      const group = requireGroup(request.group);
      const limit = requireListLimit(request.limit);
      await requireExistingGroup(group);
      const revisions = await reconciler.history(group, limit);
      return { revisions: revisions.map(toApiRevision) };
    },

    async setTemplate(request: SetTemplateRequest): Promise<DeepPartial<SetTemplateResponse>> {
      const group = requireGroup(request.group);
      if (request.templatePatch !== undefined) {
        if (request.template !== undefined) {
          throw new InvalidArgumentError("template and template_patch are both given: give the template to replace the group's, or a patch to change it");
        }
        const patch = request.templatePatch;
        let patched: NodeTemplate | undefined;
        const update = await reconciler.setTemplate(group, async (current) => {
          patched = requireTemplate(patchTemplate(toApiTemplate(current ?? options.defaultTemplate), patch));
          await requireAllowedCommand(options.driver, group, patched);
          return patched;
        });
        return { template: toApiTemplate(patched!), update: update && toApiSetSpecResponse(update) };
      }
      const complete = requireTemplate(request.template);
      await requireAllowedCommand(options.driver, group, complete);
      const update = await reconciler.setTemplate(group, complete);
      return { template: toApiTemplate(complete), update: update && toApiSetSpecResponse(update) };
    },

    async getTemplate(request: GetTemplateRequest): Promise<DeepPartial<GetTemplateResponse>> {
      const group = requireGroup(request.group);
      const template = await reconciler.templateOf(group);
      return { template: toApiTemplate(template ?? options.defaultTemplate), isDefault: template === undefined };
    },

    async restartNode(request: RestartNodeRequest): Promise<DeepPartial<RestartNodeResponse>> {
      const graph = await reconciler.restartNode(await nodeIdOf(request.nodeId));
      return { graph: toApiGraph(graph, graph.tasks) };
    },

    async stopNode(request: StopNodeRequest): Promise<DeepPartial<StopNodeResponse>> {
      return { update: toApiSetSpecResponse(await reconciler.stopNode(await nodeIdOf(request.nodeId))) };
    },

    async cloneNode(request: CloneNodeRequest): Promise<DeepPartial<CloneNodeResponse>> {
      return { update: toApiSetSpecResponse(await reconciler.cloneNode(await nodeIdOf(request.nodeId))) };
    },

    async killNode(request: KillNodeRequest): Promise<DeepPartial<KillNodeResponse>> {
      return { node: toApiNode(await reconciler.killNode(await nodeIdOf(request.nodeId))) };
    },

    async getNodeStats(request: GetNodeStatsRequest): Promise<DeepPartial<GetNodeStatsResponse>> {
      const nodeId = await nodeIdOf(request.nodeId);
      const node = await store.getNode(nodeId);
      if (!node) throw new NodeNotFoundError(nodeId);
      return { node: await nodeWithStats(node) };
    },

    async *nodeLogs(request: NodeLogsRequest, context: Context): AsyncGenerator<DeepPartial<NodeLogsResponse>> {
      requireIdReference("node", request.nodeId);
      const start = requireLogStart(request, options.clock.now());
      const nodeId = await nodeIdOf(request.nodeId);
      const node = await store.getNode(nodeId);
      if (!node) throw new NodeNotFoundError(nodeId);
      const file = options.driver.logFile(node);
      if (!file) throw new FailedPreconditionError(`node ${nodeId} has no log: the ${options.driver.name} driver keeps none`);
      const signal = streamSignal(context);
      for await (const text of readLog(file, {
        start,
        follow: request.follow,
        timestamps: request.timestamps,
        signal,
        // Following ends once the node is gone for good (stopped, or failed with no process
        // left to write) and its last words are read.
        ended: async () => {
          const current = await store.getNode(nodeId);
          return !current || current.state === "stopped" || (current.state === "failed" && !options.driver.stats(current));
        },
      })) {
        await context.outlet.drained(signal);
        yield { text };
      }
    },

    async promoteGraph(request: PromoteGraphRequest): Promise<DeepPartial<PromoteGraphResponse>> {
      return { graph: toApiGraph(await reconciler.promote(await graphToSteer(request, "promote"))) };
    },

    async describeNode(request: DescribeNodeRequest): Promise<DeepPartial<DescribeNodeResponse>> {
      const nodeId = await nodeIdOf(request.nodeId);
      const node = await store.getNode(nodeId);
      if (!node) throw new NodeNotFoundError(nodeId);
      const events = await store.eventsOfNode(nodeId, 1000);
      return { node: await nodeWithStats(node), events: events.map(toApiEvent) };
    },

    async pauseGraph(request: PauseGraphRequest): Promise<DeepPartial<PauseGraphResponse>> {
      return { graph: toApiGraph(await reconciler.pause(await graphToSteer(request, "pause"))) };
    },

    async resumeGraph(request: ResumeGraphRequest): Promise<DeepPartial<ResumeGraphResponse>> {
      return { graph: toApiGraph(await reconciler.resume(await graphToSteer(request, "resume"))) };
    },

    // A whole message: sent without the generated deep copy (see wire.ts).
    async listNodes(request: ListNodesRequest): Promise<ListNodesResponse> {
      const group = requireGroup(request.group);
      const [nodes, current] = await Promise.all([store.listNodes(group, { all: request.all }), store.getGroupSpec(group)]);
      if (!current) throw new GroupNotFoundError(group);
      const live = nodes.filter((node) => request.all || node.state !== "stopped");
      const withStats = request.wide ? await Promise.all(live.map((node) => nodeWithStats(node))) : live.map((node) => toApiNode(node));
      return {
        nodes: withStats,
        revision: current.revision,
        spec: toApiSpec(current.spec),
        crashLoop: toApiCrashLoop(reconciler.crashLoopOf(group)),
      };
    },

    async *watchNodes(request: WatchNodesRequest, context: Context): AsyncGenerator<DeepPartial<WatchNodesResponse>> {
      const group = requireGroup(request.group);
      const subscription = bus.subscribe((event) => event.type === "node" && event.group === group, options.watcherCapacity);
      const signal = streamSignal(context);
      try {
        let cursor: number;
        if (request.afterSequence === undefined) {
          const snapshot = await store.snapshotNodes(group);
          yield { snapshot: snapshot.nodes.map((node) => toApiNode(node)), sequence: snapshot.sequence, events: [] };
          cursor = snapshot.sequence;
        } else {
          cursor = request.afterSequence;
          for (;;) {
            await context.outlet.drained(signal);
            if (signal.aborted) break;
            const events = await store.nodeEvents(group, cursor, REPLAY_PAGE);
            // Checked after the read: a deletion that the read missed has already left its mark.
            const compacted = await store.nodeEventsCompactedThrough(group);
            if (compacted > cursor) throw new EventsCompactedError(`node events of group ${group}`, cursor, compacted);
            if (events.length > 0) {
              cursor = events.at(-1)!.sequence;
              yield { events: events.map(toApiEvent) };
            }
            if (events.length < REPLAY_PAGE) break;
          }
        }
        for await (const events of follow(subscription, cursor, context, () => false)) {
          yield { events: events.map(liveApiEvent) };
        }
      } finally {
        subscription.close();
      }
    },

    async listGraphs(request: ListGraphsRequest): Promise<DeepPartial<ListGraphsResponse>> {
      const group = requireGroup(request.group);
      const limit = requireListLimit(request.limit);
      await requireExistingGroup(group);
      const graphs = await store.listGraphs(group, limit);
      return { graphs: graphs.map((graph) => toApiGraph(graph)) };
    },

    async getGraph(request: GetGraphRequest): Promise<DeepPartial<GetGraphResponse>> {
      const graphId = await graphIdOf(request.graphId);
      const snapshot = await store.snapshotGraph(graphId);
      if (!snapshot) throw new GraphNotFoundError(graphId);
      return { graph: toApiGraph(snapshot.graph, snapshot.tasks, snapshot.sequence) };
    },

    async *watchGraph(request: WatchGraphRequest, context: Context): AsyncGenerator<DeepPartial<WatchGraphResponse>> {
      const group = requireGroup(request.group);
      let graphId = request.graphId === "" ? undefined : await graphIdOf(request.graphId);
      if (graphId === undefined) {
        graphId = await store.latestGraphId(group);
        if (graphId === undefined) {
          await requireExistingGroup(group);
          throw new NotFoundError(`group ${group} has no graphs yet: make one with 'client update <count> <version>'`);
        }
      }
      const watched = graphId;
      const isGraphEnd = (event: Event) => event.type === "graph" && isFinalGraphState(event.state as never);
      // Subscribe first. Whatever a (possibly shared, older) snapshot or the resume point does not
      // cover is read from the log up to the first event the subscription holds; after that the
      // subscription has every event. What both carry is dropped by sequence number.
      const subscription = bus.subscribe(
        (event) => event.graphId === watched && event.type !== "node",
        options.watcherCapacity,
      );
      const signal = streamSignal(context);
      try {
        let cursor: number;
        // A graph already settled when the subscription began has its end in the log, not in the
        // subscription: the replay reads to the end, and nothing follows.
        let settledBefore = false;
        if (request.afterSequence === undefined) {
          // Possibly taken a moment ago for another watcher: what followed it is in the log.
          const snapshot = await snapshots.get(watched);
          if (!snapshot) throw new GraphNotFoundError(watched);
          // Every page, even once aborted: a resume point is only good after a whole snapshot.
          for (const page of snapshot.pages) {
            await context.outlet.drained(signal);
            yield page;
          }
          if (snapshot.settled) return;
          cursor = snapshot.sequence;
        } else {
          const graph = await store.getGraph(watched);
          if (!graph) throw new GraphNotFoundError(watched);
          settledBefore = isFinalGraphState(graph.state);
          cursor = request.afterSequence;
        }
        for (;;) {
          await context.outlet.drained(signal);
          if (signal.aborted) break;
          // What the subscription already holds need not be read again: a hundred watchers
          // sharing a snapshot would each read (and convert) the same events from the log.
          const held = settledBefore ? undefined : subscription.firstSequence;
          const events = await store.graphEvents(watched, cursor, REPLAY_PAGE, held);
          // Checked after the read: a deletion that the read missed has already left its mark.
          const compacted = await store.graphEventsCompactedThrough(watched);
          if (compacted > cursor) throw new EventsCompactedError(`events of graph ${watched}`, cursor, compacted);
          if (events.length > 0) {
            cursor = events.at(-1)!.sequence;
            yield { events: events.map(toApiEvent) };
            if (events.some(isGraphEnd)) return;
          }
          if (events.length < REPLAY_PAGE) break;
        }
        // Or the watcher had already seen it settle.
        if (settledBefore) return;
        for await (const events of follow(subscription, cursor, context, isGraphEnd)) {
          yield { events: events.map(liveApiEvent) };
        }
      } finally {
        subscription.close();
      }
    },

    async cancelGraph(request: CancelGraphRequest): Promise<DeepPartial<CancelGraphResponse>> {
      const graph = await reconciler.cancel(await graphToSteer(request, "cancel"));
      return { graph: toApiGraph(graph) };
    },

    async listGroups(_request: ListGroupsRequest): Promise<DeepPartial<ListGroupsResponse>> {
      return { groups: (await store.listGroupStatuses()).map(toApiGroupStatus) };
    },

    async getGroup(request: GetGroupRequest): Promise<DeepPartial<GetGroupResponse>> {
      const group = requireGroup(request.group);
      const status = await store.getGroupStatus(group);
      if (!status) throw new GroupNotFoundError(group);
      const waiting = status.graph && status.waitingTasks > 0 ? await store.waitingTasks(status.graph.id, WAITING_TASKS_SHOWN) : [];
      return { group: toApiGroupStatus(status), waiting: waiting.map(toApiTask) };
    },

    async deleteGroup(request: DeleteGroupRequest): Promise<DeepPartial<DeleteGroupResponse>> {
      const { result, deleted } = await reconciler.deleteGroup(requireGroup(request.group));
      return { update: result && toApiSetSpecResponse(result), deleted };
    },
  };
}
