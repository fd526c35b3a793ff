/**
 * Healing: the plan that replaces a group's lost capacity without moving its rollout on.
 *
 * Lost capacity is a failed node that had been running (it has an exit status); a node that
 * never got past its start failed its graph, which the operator or the failure policy deals with.
 *
 * While the group's latest rollout is failed, paused, cancelled or still running, the
 * reconciler may not converge the group on its spec (that would finish a rollout the
 * operator stopped), but it must not let the group shrink either. So each failed node is
 * shut down (its process is gone; this only records it) and, while the group has fewer
 * than `count` nodes up, replaced by a node at the failed node's own version and revision
 * (so its own template): a ReplicaSet under a paused Deployment keeps its replicas the same
 * way, and Nomad replaces a lost allocation at its own job version.
 *
 * Worked example: count 3, a cancelled rollout left n1 at v2 and n2, n3 at v1; n2 dies.
 * Up: n1, n3 = 2 < 3, so n2 is shut down and a node at v1 (n2's revision) starts after it:
 *
 *   shut n2#0 → start v1#1
 *
 * Pure: no I/O, no clock; failed nodes oldest first, ties by id.
 */
import type { Node, PlannedTask, Spec, TaskGraphSpec } from "../domain.js";

export function planHeal(nodes: readonly Node[], spec: Spec, claimed: ReadonlySet<string> = new Set()): TaskGraphSpec {
  const failed = nodes
    .filter((node) => node.state === "failed" && !claimed.has(node.id))
    // Lost capacity is a node that ran and ended; one that never got past its start is its graph's failure, not a loss.
    .filter((node) => node.exitStatus !== undefined)
    .sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const up = nodes.filter((node) => node.state === "starting" || node.state === "running" || node.state === "unhealthy").length;
  const replace = Math.min(failed.length, Math.max(0, spec.count - up));
  const tasks: PlannedTask[] = [];
  const ends: number[] = [];
  failed.forEach((node, i) => {
    const shut = tasks.length;
    tasks.push({ id: shut, prerequisites: [], action: "shut_down_node", nodeId: node.id });
    if (i >= replace) {
      ends.push(shut);
      return;
    }
    const start: PlannedTask = { id: tasks.length, prerequisites: [shut], action: "start_node", version: node.version };
    if (node.revision !== undefined) start.revision = node.revision;
    if (node.templateHash !== undefined) start.templateHash = node.templateHash;
    tasks.push(start);
    ends.push(start.id);
  });
  if (ends.length > 1) tasks.push({ id: tasks.length, prerequisites: ends, action: "do_nothing" });
  return { tasks };
}
