import { plan } from "../src/planner/plan.js";
import type { BenchConfig } from "./BenchConfig.js";
import { type Figure, figureOf, median } from "./Figure.js";
import { syntheticNodes } from "./seedDataDir.js";

/** The spec of the version change the plan and persist figures use: every node to version 2. */
export function versionChange(nodes: number, config: BenchConfig) {
  return { count: nodes, version: 2, maxSurge: config.plan.maxSurge, maxUnavailable: config.plan.maxUnavailable };
}

/**
 * Figure 1: the planner alone (the diff of nodes against the spec, and the DAG), for a
 * rolling version change of the small and the large group, and how the time grows.
 */
export function measurePlan(config: BenchConfig): Figure[] {
  const { smallNodes, largeNodes, runs } = config.plan;
  const timings = new Map<number, number[]>();
  const taskCounts = new Map<number, number>();
  for (const size of [smallNodes, largeNodes]) {
    const nodes = syntheticNodes(size, 1);
    const spec = versionChange(size, config);
    // One untimed run first, so that both sizes are timed with the planner compiled.
    plan(nodes, spec);
    const times: number[] = [];
    for (let run = 0; run < runs; run++) {
      const started = performance.now();
      const planned = plan(nodes, spec);
      times.push(performance.now() - started);
      taskCounts.set(size, planned.tasks.length);
    }
    timings.set(size, times);
  }
  const small = timings.get(smallNodes)!;
  const large = timings.get(largeNodes)!;
  const strategy = `max surge ${config.plan.maxSurge}, max unavailable ${config.plan.maxUnavailable}`;
  return [
    figureOf({
      key: "plan.small_ms",
      label: `Plan: ${smallNodes.toLocaleString("en-US")}-node version change`,
      unit: "ms",
      runs: small,
      note: `${taskCounts.get(smallNodes)!.toLocaleString("en-US")} tasks; ${strategy}`,
    }),
    figureOf({
      key: "plan.large_ms",
      label: `Plan: ${largeNodes.toLocaleString("en-US")}-node version change`,
      unit: "ms",
      runs: large,
      goal: { comparison: "at most", target: 1000 },
      note: `${taskCounts.get(largeNodes)!.toLocaleString("en-US")} tasks; ${strategy}`,
    }),
    {
      key: "plan.ratio",
      label: `Plan: ${largeNodes.toLocaleString("en-US")} / ${smallNodes.toLocaleString("en-US")} nodes, time ratio`,
      unit: "×",
      value: median(large) / median(small),
      runs: large.map((time, i) => time / small[i]!),
      goal: { comparison: "at most", target: 12 },
      note: `ratio of the medians; linear is ${largeNodes / smallNodes}`,
    },
  ];
}
