import { Gauge, type Registry } from "prom-client";
import { GraphState } from "../domain.js";
import type { GroupStatus, Store } from "../store/Store.js";

/**
 * The per-group gauges an alert is written with, in kube-state-metrics' way: each group with a
 * spec is one series per gauge, and its newest graph's state is one series per state, 1 for the
 * state it is in and 0 for the others. They are read at scrape time, all from one store read
 * (`listGroupStatuses`, what `groups ls` shows), so they cost nothing between scrapes and a group that is gone from the
 * store is gone from the next scrape.
 *
 * A group has converged when its up-to-date nodes and its available nodes both equal its
 * desired nodes: the README's alert is the PromQL of the opposite, held for 10 minutes.
 */
export function registerGroupGauges(registry: Registry, store: Store): void {
  // prom-client collects every metric of a scrape at once: the first gauge's collect reads the
  // store, the others of the same scrape share that read.
  let reading: Promise<GroupStatus[]> | undefined;
  const statuses = (): Promise<GroupStatus[]> => {
    if (!reading) {
      reading = store.listGroupStatuses();
      const forget = () => setImmediate(() => (reading = undefined));
      reading.then(forget, forget);
    }
    return reading;
  };
  const perGroup = (name: string, help: string, value: (status: GroupStatus) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ["group"] as const,
      registers: [registry],
      async collect() {
        this.reset();
        for (const status of await statuses()) this.set({ group: status.group }, value(status));
      },
    });
  perGroup("drover_group_desired_nodes", "The count of the group's current spec.", (status) => status.spec.count);
  perGroup("drover_group_desired_version", "The version of the group's current spec.", (status) => status.spec.version);
  perGroup("drover_group_revision", "The group's current spec revision.", (status) => status.revision);
  perGroup("drover_group_available_nodes", "The group's nodes that serve: running and past min-ready, whatever their version.", (status) => status.nodes.available);
  perGroup(
    "drover_group_up_to_date_nodes",
    "The group's nodes up (starting, running or unhealthy) that run its current spec's version and template, as Kubernetes counts UP-TO-DATE.",
    (status) => status.nodes.upToDate,
  );
  new Gauge({
    name: "drover_group_graph_state",
    help: "The state of the group's newest graph: 1 for its state, 0 for the others (no series before its first graph).",
    labelNames: ["group", "state"] as const,
    registers: [registry],
    async collect() {
      this.reset();
      for (const status of await statuses()) {
        if (!status.graph) continue;
        for (const state of Object.values(GraphState)) this.set({ group: status.group, state }, state === status.graph.state ? 1 : 0);
      }
    },
  });
}
