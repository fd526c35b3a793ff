/**
 * The planner: from a group's nodes and its spec, the DAG of tasks that takes the group
 * to `spec.count` nodes running at `spec.version`.
 *
 * A plan has up to two phases.
 *
 * Phase A changes the size of the group, all at once: failed nodes are shut down (a
 * failed node counts for nothing, so its replacement is simply one more start), surplus
 * nodes are shut down, missing nodes are started. Nothing here can breach the rollout
 * bounds: a scale-up only adds, a scale-down only removes and stops at `count`.
 *
 * Phase B replaces the outdated nodes that phase A kept, in `lanes` parallel chains. An
 * unhealthy node counts as outdated whatever its version: it may still serve, so it is
 * replaced within the rollout bounds rather than dropped at once like a failed node.
 * A surge lane starts the new node before shutting down the old one, so at any moment it
 * adds at most one node; an unavailability lane shuts down first, so it takes away at
 * most one. With min(maxSurge, lanes) surge lanes and the rest unavailability lanes, the
 * group stays within count − maxUnavailable .. count + maxSurge.
 *
 * Worked example: 5 nodes n1..n5 at v1 (oldest first) → 5 at v2, maxSurge 1,
 * maxUnavailable 1. No phase A; lanes = min(5, 1 + 1) = 2: lane 0 surges, lane 1 takes
 * one away. Replacement i goes to lane i % 2, so lane 0 replaces n1, n3, n5 and lane 1
 * replaces n2, n4:
 *
 *   lane 0: start#0 → shut n1#1 → start#4 → shut n3#5 → start#8 → shut n5#9 ─┐
 *   lane 1: shut n2#2 → start#3 → shut n4#6 → start#7 ───────────────────────┴→ join#10
 *
 * (ids in planning order). Lane 0 is at most one node over (its start done, its shutdown
 * not begun), lane 1 at most one under (its shutdown begun, its start not done), so
 * running stays within 5 − 1 = 4 .. 5 + 1 = 6 however the tasks interleave.
 *
 * Why phase B waits for phase A (a join on every phase-A task gates the first task of
 * every lane): the lanes' bounds are relative to a baseline of exactly `count` live
 * nodes. Rolling during a scale-up would take nodes away while the group is still short
 * (2 → 4 nodes with one unavailability lane could sink to 1 running); rolling during a
 * scale-down would surge on top of nodes that are about to go (10 → 4 with one surge
 * lane could reach 11). Waiting costs some parallelism, but it makes both bounds hold
 * from the first rolling task to the last.
 *
 * Pure and linear: no I/O, no clock, no randomness; every choice is broken by a total
 * order ending in the node id, so the plan does not depend on the order of `nodes`.
 * Work is O(n log n) for the sorts and O(nodes + edges) otherwise.
 */
import { resolveRolloutBounds } from "@drover/shared";
import type { Node, PlannedTask, Spec, TaskGraphSpec } from "../domain.js";

// Ids are compared by code unit, not localeCompare: the plan must not depend on locale.
const byId = (a: Node, b: Node): number => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

const oldestFirst = (a: Node, b: Node): number => a.createdAt - b.createdAt || byId(a, b);
const newestFirst = (a: Node, b: Node): number => oldestFirst(b, a);

// An unhealthy node serves badly and a starting node has not served yet, so losing them costs the least.
const leastUseful = (node: Node): number => (node.state === "unhealthy" ? 0 : node.state === "starting" ? 1 : 2);
const startingFirst = (a: Node, b: Node): number => leastUseful(a) - leastUseful(b);

// Among good nodes, older ones have proven themselves; keep them.
const goodShutDownOrder = (a: Node, b: Node): number => startingFirst(a, b) || newestFirst(a, b);

// Among outdated nodes, the furthest behind go first.
const outdatedShutDownOrder = (a: Node, b: Node): number =>
  startingFirst(a, b) || a.version - b.version || newestFirst(a, b);

export interface PlanOptions {
  /**
   * Move this many nodes to the spec first (new nodes of a scale-up, then replacements), then
   * wait at an `await_promotion` gate before touching any other node. Only a new revision's
   * rollout has one; repairs do not.
   */
  canary?: number;
}

/** Whether a node runs something other than the spec: another version, or another template (by hash). */
export function isOutdated(node: Node, spec: Spec): boolean {
  if (node.version !== spec.version) return true;
  // A node recorded before templates were versioned has no hash: it is taken as current.
  return node.templateHash !== undefined && node.templateHash !== (spec.templateHash ?? "");
}

export function plan(nodes: readonly Node[], spec: Spec, options: PlanOptions = {}): TaskGraphSpec {
  const { count } = spec;
  // A percent is resolved against the spec's count: 25% of 10 is a surge of 3 and an unavailability of 2.
  const { maxSurge, maxUnavailable } = resolveRolloutBounds(spec);

  const failed: Node[] = [];
  const good: Node[] = [];
  const outdated: Node[] = [];
  for (const node of nodes) {
    switch (node.state) {
      case "failed":
        failed.push(node);
        break;
      // A starting node will be running at its version unless it fails, and a failure
      // is the reconciler's to notice and plan again for.
      case "starting":
      case "running":
        (isOutdated(node, spec) ? outdated : good).push(node);
        break;
      case "unhealthy":
        outdated.push(node);
        break;
      case "stopping":
      case "stopped":
        break;
    }
  }

  const tasks: PlannedTask[] = [];
  const start = (prerequisites: number[], gated = false): number => {
    const id = tasks.length;
    tasks.push(gated ? { id, prerequisites, action: "start_node", version: spec.version, gated } : { id, prerequisites, action: "start_node", version: spec.version });
    return id;
  };
  const shutDown = (prerequisites: number[], nodeId: string, gated = false): number => {
    const id = tasks.length;
    tasks.push(gated ? { id, prerequisites, action: "shut_down_node", nodeId, gated } : { id, prerequisites, action: "shut_down_node", nodeId });
    return id;
  };
  const join = (prerequisites: number[], action: "do_nothing" | "await_promotion" = "do_nothing"): number => {
    const id = tasks.length;
    tasks.push({ id, prerequisites, action });
    return id;
  };
  /** A rolling replacement of `replace` in lanes, each lane's first task after `after`; returns the lanes' last tasks. */
  const rolling = (replace: readonly Node[], after: readonly number[]): number[] => {
    const lanes = Math.min(replace.length, maxSurge + maxUnavailable);
    const surgeLanes = Math.min(maxSurge, lanes);
    const laneEnd: number[] = new Array<number>(lanes).fill(-1);
    for (let i = 0; i < replace.length; i++) {
      const lane = i % lanes;
      // Fresh arrays: no two tasks share a prerequisites array a consumer might mutate.
      const prerequisites = i < lanes ? [...after] : [laneEnd[lane]!];
      if (lane < surgeLanes) {
        laneEnd[lane] = shutDown([start(prerequisites, true)], replace[i]!.id, true);
      } else {
        laneEnd[lane] = start([shutDown(prerequisites, replace[i]!.id, true)]);
      }
    }
    return laneEnd;
  };
  const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);

  // Phase A.
  failed.sort(oldestFirst);
  for (const node of failed) shutDown([], node.id);

  let replace: Node[] = [];
  let fresh = 0;
  if (good.length >= count) {
    outdated.sort(outdatedShutDownOrder);
    for (const node of outdated) shutDown([], node.id);
    good.sort(goodShutDownOrder);
    for (let i = 0; i < good.length - count; i++) shutDown([], good[i]!.id);
  } else {
    // Replacing an outdated node keeps the group at its size while it changes version,
    // so keep as many outdated nodes as the group still needs and replace those.
    const toReplace = Math.min(outdated.length, count - good.length);
    outdated.sort(outdatedShutDownOrder);
    const surplus = outdated.length - toReplace;
    for (let i = 0; i < surplus; i++) shutDown([], outdated[i]!.id);
    // Unhealthy nodes are replaced first: they are the ones hurting the group.
    replace = outdated.slice(surplus).sort((a, b) => leastUseful(a) - leastUseful(b) || oldestFirst(a, b));
    fresh = Math.max(0, count - good.length - outdated.length);
  }

  // A canary: the first `canary` new nodes (fresh ones first, then replacements) go before a
  // promote gate, and everything else after it. With nothing left for after, no gate.
  const canary = Math.min(options.canary ?? 0, fresh + replace.length);
  if (canary > 0 && canary < fresh + replace.length) {
    const canaryFresh = Math.min(canary, fresh);
    for (let i = 0; i < canaryFresh; i++) start([]);
    const stageOne = tasks.length;
    const canaryReplace = replace.slice(0, canary - canaryFresh);
    const canaryEnds = canaryReplace.length > 0 ? rolling(canaryReplace, stageOne > 0 ? [join(range(0, stageOne))] : []) : [];
    const gate = join([...range(0, stageOne), ...canaryEnds].filter((id, i, all) => all.indexOf(id) === i), "await_promotion");
    const laterFresh: number[] = [];
    for (let i = canaryFresh; i < fresh; i++) laterFresh.push(start([gate]));
    const rest = replace.slice(canaryReplace.length);
    const restAfter = rest.length > 0 && laterFresh.length > 0 ? [join(laterFresh)] : [gate];
    const restEnds = rest.length > 0 ? rolling(rest, restAfter) : [];
    const ends = rest.length > 0 ? restEnds : laterFresh;
    if (ends.length > 1) join(ends);
    return { tasks };
  }

  for (let i = 0; i < fresh; i++) start([]);
  const phaseA = tasks.length;

  if (replace.length === 0) {
    // A final join gives the graph one task whose success means the whole plan's.
    if (phaseA > 0) join(range(0, phaseA));
    return { tasks };
  }

  // Phase B.
  const gate = phaseA > 0 ? [join(range(0, phaseA))] : [];
  const laneEnd = rolling(replace, gate);
  if (laneEnd.length > 1) join(laneEnd);
  return { tasks };
}
