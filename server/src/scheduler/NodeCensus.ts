import type { Event, Node, NodeState } from "../domain.js";

/** How many of a group's nodes serve now (available) and how many may have a process up (alive). */
export interface Headcount {
  /** Running and past min-ready (a start task holds its node in `starting` until then). */
  available: number;
  /** Starting, running, unhealthy or stopping. */
  alive: number;
}

const ALIVE: ReadonlySet<NodeState> = new Set(["starting", "running", "unhealthy", "stopping"]);

/**
 * The live state of every node of the groups a rollout asked about, kept in memory from the
 * committed node events, so that a gated step checks the group as it is now without reading
 * every node row each time (a 10,000-node rolling update checks 10,000 times).
 *
 * A group is loaded once, from a snapshot of its nodes and the sequence it reflects; events
 * committed while it loads are kept and applied if they are newer than the snapshot.
 */
export class NodeCensus {
  private readonly groups = new Map<string, GroupCensus>();
  private readonly loading = new Map<string, { promise: Promise<void>; buffered: Event[] }>();

  constructor(private readonly snapshot: (group: string) => Promise<{ nodes: Node[]; sequence: number }>) {}

  /** Feed of committed events (EventBus.listen). */
  readonly observe = (events: readonly Event[]): void => {
    for (const event of events) {
      if (event.type !== "node" || event.nodeId === undefined) continue;
      const loading = this.loading.get(event.group);
      if (loading) loading.buffered.push(event);
      const states = this.groups.get(event.group);
      if (states) apply(states, event);
    }
  };

  /** Resolves once the group's nodes are known; `headcount` is then exact and synchronous. */
  async load(group: string): Promise<void> {
    if (this.groups.has(group)) return;
    let loading = this.loading.get(group);
    if (!loading) {
      const buffered: Event[] = [];
      const promise = this.snapshot(group).then(({ nodes, sequence }) => {
        const census: GroupCensus = { states: new Map(), available: 0, alive: 0 };
        for (const node of nodes) set(census, node.id, node.state);
        for (const event of buffered) if (event.sequence > sequence) apply(census, event);
        this.groups.set(group, census);
        this.loading.delete(group);
      });
      loading = { promise, buffered };
      this.loading.set(group, loading);
      promise.catch(() => this.loading.delete(group));
    }
    await loading.promise;
  }

  /** The group's headcount; call after `load`. */
  headcount(group: string): Headcount {
    const census = this.groups.get(group);
    return { available: census?.available ?? 0, alive: census?.alive ?? 0 };
  }

  /** Whether the group is loaded and the node is not among its live nodes (stopped, or never there). */
  isGone(group: string, nodeId: string): boolean {
    const census = this.groups.get(group);
    return census !== undefined && !census.states.has(nodeId);
  }

  /** A node's state as last committed; undefined when the group is not loaded or the node unknown. */
  stateOf(group: string, nodeId: string): NodeState | undefined {
    return this.groups.get(group)?.states.get(nodeId);
  }
}

interface GroupCensus {
  states: Map<string, NodeState>;
  available: number;
  alive: number;
}

/**
 * Moves one node to `state` (stopped: forgotten), keeping the counts. A failed node being
 * stopped stays counted as failed: its process is gone (or never started), so it is not alive.
 */
function set(census: GroupCensus, nodeId: string, next: NodeState): void {
  const before = census.states.get(nodeId);
  const state = next === "stopping" && before === "failed" ? "failed" : next;
  if (before !== undefined) {
    if (before === "running") census.available--;
    if (ALIVE.has(before)) census.alive--;
  }
  if (state === "stopped") {
    census.states.delete(nodeId);
    return;
  }
  census.states.set(nodeId, state);
  if (state === "running") census.available++;
  if (ALIVE.has(state)) census.alive++;
}

function apply(census: GroupCensus, event: Event): void {
  set(census, event.nodeId!, event.state as NodeState);
}
