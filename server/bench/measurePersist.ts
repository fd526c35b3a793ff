import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ulidFactory } from "../src/ids.js";
import type { PlannedTask, Spec } from "../src/domain.js";
import { plan } from "../src/planner/plan.js";
import { openSqliteStore } from "../src/store/SqliteStore.js";
import type { BenchConfig } from "./BenchConfig.js";
import { type Figure, figureOf } from "./Figure.js";
import { versionChange } from "./measurePlan.js";
import { BENCH_GROUP, MIGRATIONS_DIR, syntheticNodes } from "./seedDataDir.js";

const newId = ulidFactory();

/** One run: a fresh database, then the revision with its graph and every task in one durable transaction. */
async function timeStoreRevision(spec: Spec, tasks: readonly PlannedTask[]): Promise<number> {
  const dataDir = mkdtempSync(join(tmpdir(), "drover-bench-persist-"));
  const store = openSqliteStore(dataDir, MIGRATIONS_DIR);
  try {
    const started = performance.now();
    await store.storeRevision({ group: BENCH_GROUP, spec, graph: { id: newId(), tasks }, now: Date.now(), liveGraphs: [] });
    return performance.now() - started;
  } finally {
    await store.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/**
 * Figure 2: storing a graph (SqliteStore.storeRevision: the revision, the graph and every
 * task, committed with synchronous=FULL, and the stored graph it returns). Two graphs: the large
 * version change of figure 1, and a scale-up to the large count (one start per node).
 */
export async function measurePersist(config: BenchConfig): Promise<Figure[]> {
  const nodes = config.plan.largeNodes;
  const changeSpec = versionChange(nodes, config);
  const change = plan(syntheticNodes(nodes, 1), changeSpec).tasks;
  const scaleUpSpec = { count: nodes, version: 1, maxSurge: 0, maxUnavailable: 1 };
  const scaleUp = plan([], scaleUpSpec).tasks;
  const changeRuns: number[] = [];
  const scaleUpRuns: number[] = [];
  for (let run = 0; run < config.persist.runs; run++) {
    changeRuns.push(await timeStoreRevision(changeSpec, change));
    scaleUpRuns.push(await timeStoreRevision(scaleUpSpec, scaleUp));
  }
  const count = (n: number) => n.toLocaleString("en-US");
  return [
    figureOf({
      key: "persist.change_ms",
      label: `Persist: the ${count(nodes)}-node change's graph`,
      unit: "ms",
      runs: changeRuns,
      goal: { comparison: "at most", target: 1000 },
      note: `${count(change.length)} tasks, one transaction`,
    }),
    figureOf({
      key: "persist.scale_up_ms",
      label: `Persist: a ${count(scaleUp.length)}-task graph (scale-up)`,
      unit: "ms",
      runs: scaleUpRuns,
      goal: { comparison: "at most", target: 1000 },
      note: `0 → ${count(nodes)} nodes, one transaction`,
    }),
  ];
}
