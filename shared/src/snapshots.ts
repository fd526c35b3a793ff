import type { Graph, WatchGraphResponse } from "./gen/drover/v1/drover.js";

/**
 * Puts a WatchGraph snapshot back together. A large graph's snapshot comes in pages: the first
 * message's `snapshot` holds the graph and its first tasks, and the messages right after it
 * carry the rest in `snapshot_tasks` until `counts.total` tasks have arrived.
 */
export class SnapshotAssembler {
  private partial: Graph | undefined;

  /** True while pages of a snapshot are still to come. */
  get assembling(): boolean {
    return this.partial !== undefined;
  }

  /** Takes one message; returns the whole snapshot when this message completes one. */
  add(message: Pick<WatchGraphResponse, "snapshot" | "snapshotTasks">): Graph | undefined {
    let graph = this.partial;
    if (message.snapshot) {
      // A copy: the message may be shared with other streams.
      graph = { ...message.snapshot, tasks: [...message.snapshot.tasks] };
    } else if (graph) {
      for (const task of message.snapshotTasks) graph.tasks.push(task);
    } else {
      return undefined;
    }
    if (graph.tasks.length < (graph.counts?.total ?? 0)) {
      this.partial = graph;
      return undefined;
    }
    this.partial = undefined;
    return graph;
  }
}
