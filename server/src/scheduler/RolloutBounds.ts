import { percentOf, resolveRolloutBounds } from "@drover/shared";
import { type Spec, type Task, TaskAction } from "../domain.js";
import type { NodeCensus } from "./NodeCensus.js";

/**
 * The two bounds of a rolling update, checked against the group as it is now (Kubernetes'
 * deployment controller keeps the same two): a shut-down of an available node must leave at
 * least count − max unavailable available, and a start may not make more than count + max
 * surge alive. Steps let through whose node change is not committed yet count against the
 * bounds until it is (`admit` … `committed`), so two steps checked in the same moment cannot
 * both take the last spare node.
 */
export class RolloutBounds {
  private readonly admitted = new Map<number, "remove" | "add">();
  /** The spec's bounds in nodes (a percent resolved against its count). */
  private readonly resolved: { maxSurge: number; maxUnavailable: number };

  constructor(
    private readonly census: NodeCensus,
    private readonly group: string,
    private readonly spec: Spec,
  ) {
    this.resolved = resolveRolloutBounds(spec);
  }

  /**
   * Which bound running the task now would break, in words, or undefined. Worked example:
   * count 3, max unavailable 1, 3 running: shutting one down leaves 2 ≥ 3 − 1, so it goes; if
   * one of the other two has died meanwhile, it would leave 1 < 2, so it waits until the dead
   * node's replacement is available.
   */
  broken(task: Task): string | undefined {
    const { count } = this.spec;
    const { maxSurge, maxUnavailable } = this.resolved;
    const { available, alive } = this.census.headcount(this.group);
    let removals = 0;
    let additions = 0;
    for (const kind of this.admitted.values()) kind === "remove" ? removals++ : additions++;
    if (task.action === TaskAction.shutDownNode) {
      // Only an available node costs availability; a starting, unhealthy or failed one does not.
      if (this.census.stateOf(this.group, task.nodeId!) !== "running") return undefined;
      const floor = count - maxUnavailable;
      const left = available - removals - 1;
      if (left < floor) {
        return `shutting down ${task.nodeId} would leave ${left} available, below ${floor} (count ${count} − max unavailable ${given(this.spec.maxUnavailable, maxUnavailable)})`;
      }
      return undefined;
    }
    const ceiling = count + maxSurge;
    const made = alive + additions + 1;
    if (made > ceiling) return `starting a node would make ${made} alive, above ${ceiling} (count ${count} + max surge ${given(this.spec.maxSurge, maxSurge)})`;
    return undefined;
  }

  /** The task passed `broken`: it counts against the bounds until its node change is committed. */
  admit(task: Task): void {
    this.admitted.set(task.id, task.action === TaskAction.shutDownNode ? "remove" : "add");
  }

  /** The task's node change is committed (the census counts it now), or the task will not run after all. */
  release(taskId: number): void {
    this.admitted.delete(taskId);
  }
}

/** A bound as the spec gave it, with what it resolved to when that was a percent: `25% = 3`, `1`. */
function given(value: Spec["maxSurge"], resolved: number): string {
  return percentOf(value) === undefined ? String(resolved) : `${value} = ${resolved}`;
}
