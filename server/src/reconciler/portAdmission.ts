import { resolveRolloutBounds } from "@drover/shared";
import type { Spec } from "../domain.js";
import type { Driver } from "../drivers/Driver.js";
import { ResourceExhaustedError } from "../errors.js";

/**
 * Ports as a resource of the host, like cpu and memory: where the driver gives every node a
 * port of its own from a range (the process driver's `--port-range`), a spec is admitted only
 * if each node it may run at once (count + max surge, resolved) can get one beside the ports
 * other groups' nodes hold now. Ports that other programs hold are not counted: only a start
 * can find those (and its error names them).
 */

/**
 * Refuses, RESOURCE_EXHAUSTED, a spec of `group` whose nodes cannot each get a port. Worked
 * example: --port-range 20000..20009 (10 ports), another group's 4 nodes hold 4, and count 5 +
 * max surge 2 = 7 nodes need 7 of the 6 left: 1 short.
 */
export function requirePorts(group: string, spec: Spec, driver: Driver): void {
  const use = driver.portUse?.(group);
  if (!use) return;
  const { maxSurge } = resolveRolloutBounds(spec);
  const peak = spec.count + maxSurge;
  const size = use.last - use.first + 1;
  const free = Math.max(0, size - use.heldByOtherGroups);
  if (peak <= free) return;
  const others = use.heldByOtherGroups > 0 ? `, ${use.heldByOtherGroups} of them held by other groups' nodes` : "";
  throw new ResourceExhaustedError(
    `group ${group}'s spec does not fit on this host (ports: ${peak} nodes (count ${spec.count} + max surge ${maxSurge}) need a port each, ` +
      `and --port-range ${use.first}..${use.last} has ${size}${others}: ${peak - free} short): ask for fewer nodes, or widen the server's --port-range`,
  );
}
