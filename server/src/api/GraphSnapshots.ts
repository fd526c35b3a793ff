import type { Task as ApiTask, WatchGraphResponse } from "@drover/shared";
import { isFinalGraphState } from "../domain.js";
import type { EventBus } from "../events/EventBus.js";
import type { Store } from "../store/Store.js";
import { toApiGraph, toApiTask } from "./convert.js";
import { sharedMessage } from "./wire.js";

/**
 * The most tasks one snapshot message carries; a larger graph's snapshot comes in pages. Small
 * pages keep what a slow watcher holds small: grpc-js queues up to 16 messages a stream before
 * it pushes back, so a page of 200 tasks (about 10 KB) bounds that at about 200 KB a watcher.
 */
export const SNAPSHOT_PAGE_TASKS = 200;

/** How long a snapshot is handed to further watchers; they replay the log from its sequence. */
export const SNAPSHOT_SHARE_MS = 1_000;

export interface GraphSnapshot {
  /** The messages that carry it: the graph with the first page of tasks, then the other pages. */
  pages: WatchGraphResponse[];
  /** The sequence number of the last event it reflects. */
  sequence: number;
  settled: boolean;
}

/**
 * Snapshots of graphs for watch streams, shared: every watcher that starts on a graph within
 * `shareMs` of a snapshot being taken gets that same snapshot (read, converted and encoded
 * once; `sharedMessage`) and catches up from its sequence number through the event log. A
 * hundred watchers arriving together on a 100,000-task graph would otherwise each hold their
 * own copy of it, which was gigabytes.
 */
export class GraphSnapshots {
  private readonly recent = new Map<string, { takenAt: number; snapshot: Promise<GraphSnapshot | undefined> }>();

  constructor(
    private readonly store: Store,
    bus: EventBus,
    private readonly now: () => number = Date.now,
    private readonly shareMs = SNAPSHOT_SHARE_MS,
    private readonly pageTasks = SNAPSHOT_PAGE_TASKS,
  ) {
    // Task events are caught up from the log; a graph that changed state (started, paused,
    // settled) gets a new snapshot, so a watcher of a settled graph gets it settled and no events.
    bus.listen((events) => {
      for (const event of events) if (event.type === "graph") this.recent.delete(event.graphId!);
    });
  }

  /** A snapshot of the graph no older than `shareMs`; undefined when there is no such graph. */
  get(graphId: string): Promise<GraphSnapshot | undefined> {
    const now = this.now();
    const recent = this.recent.get(graphId);
    if (recent && now - recent.takenAt <= this.shareMs) return recent.snapshot;
    const snapshot = this.take(graphId);
    const entry = { takenAt: now, snapshot };
    this.recent.set(graphId, entry);
    const forget = () => {
      if (this.recent.get(graphId) === entry) this.recent.delete(graphId);
    };
    // Held only while it may be shared (a failed read not at all), so an idle server keeps none.
    setTimeout(forget, this.shareMs).unref();
    // A graph not found is asked again next time.
    snapshot.then((found) => found ?? forget(), forget);
    return snapshot;
  }

  private async take(graphId: string): Promise<GraphSnapshot | undefined> {
    const read = await this.store.snapshotGraph(graphId, toApiTask);
    if (!read) return undefined;
    const tasks: ApiTask[] = read.tasks;
    const first = toApiGraph(read.graph, [], read.sequence);
    first.tasks = tasks.slice(0, this.pageTasks);
    const pages: WatchGraphResponse[] = [sharedMessage({ snapshot: first, events: [], snapshotTasks: [] })];
    for (let start = this.pageTasks; start < tasks.length; start += this.pageTasks) {
      pages.push(sharedMessage({ snapshot: undefined, events: [], snapshotTasks: tasks.slice(start, start + this.pageTasks) }));
    }
    return { pages, sequence: read.sequence, settled: isFinalGraphState(read.graph.state) };
  }
}
