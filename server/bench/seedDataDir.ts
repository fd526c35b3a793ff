import { fileURLToPath } from "node:url";
import { ulidFactory } from "../src/ids.js";
import type { Node, PlannedTask, Spec } from "../src/domain.js";
import type { SqliteStore } from "../src/store/SqliteStore.js";
import type { Transition } from "../src/store/Store.js";

export const MIGRATIONS_DIR = fileURLToPath(new URL("../../../migrations/", import.meta.url));
export const BENCH_GROUP = "bench";
export const BENCH_HOST = "bench-host";

const newId = ulidFactory();

/** Nodes as the store would hold them, running, oldest first; nothing is written. */
export function syntheticNodes(count: number, version: number, group = BENCH_GROUP): Node[] {
  const createdAt = Date.now();
  return Array.from({ length: count }, (_, i) => ({
    id: newId(),
    group,
    version,
    state: "running" as const,
    host: BENCH_HOST,
    createdAt: createdAt + i,
    updatedAt: createdAt + i,
  }));
}

/** Commits transitions through the store's own operation, in transactions of `batch`. */
export async function applyInBatches(store: SqliteStore, transitions: readonly Transition[], batch = 10_000): Promise<void> {
  for (let i = 0; i < transitions.length; i += batch) await store.apply(transitions.slice(i, i + batch), Date.now());
}

/**
 * Puts running nodes into a group directly through the store (one node event each), as
 * if the driver had started them: far faster than starting 100,000 nodes through a graph.
 * Returns the group's live nodes as the store now holds them.
 */
export async function seedNodes(store: SqliteStore, versions: { version: number; count: number }[], group = BENCH_GROUP): Promise<Node[]> {
  for (const { version, count } of versions) {
    await applyInBatches(
      store,
      Array.from({ length: count }, () => ({ type: "node" as const, nodeId: newId(), group, state: "running" as const, version, host: BENCH_HOST })),
    );
  }
  return store.listNodes(group, { all: false });
}

/** A group's first revision, without a graph: the group already matches it. */
export async function seedSpec(store: SqliteStore, spec: Spec, group = BENCH_GROUP): Promise<void> {
  await store.storeRevision({ group, spec, now: Date.now(), liveGraphs: [] });
}

/**
 * What a server that was killed part-way through a graph leaves behind: the first
 * `finished` tasks (in id order, which the planner keeps topological) succeeded with their
 * nodes' effects, and the next `inFlight` ready tasks running with their nodes starting or
 * stopping, as a real run commits them.
 */
export function halfFinishedTransitions(
  graphId: string,
  tasks: readonly PlannedTask[],
  finished: number,
  inFlight: number,
  nodes: readonly Node[],
  group = BENCH_GROUP,
): Transition[] {
  const versionOf = new Map(nodes.map((node) => [node.id, node.version]));
  const transitions: Transition[] = [{ type: "graph", graphId, group, state: "running" }];
  const done = new Set<number>();
  const node = (nodeId: string, state: "starting" | "running" | "stopping" | "stopped", taskId: number, version = 0): Transition => ({
    type: "node",
    nodeId,
    group,
    state,
    version: versionOf.get(nodeId) ?? version,
    host: BENCH_HOST,
    graphId,
    taskId,
  });
  for (const task of tasks.slice(0, finished)) {
    const nodeId = task.nodeId ?? newId();
    const base = { type: "task" as const, graphId, group, taskId: task.id, action: task.action, nodeId, version: task.version };
    transitions.push({ ...base, state: "running", attempt: 1 });
    if (task.action === "start_node") transitions.push(node(nodeId, "running", task.id, task.version));
    if (task.action === "shut_down_node") transitions.push(node(nodeId, "stopped", task.id));
    transitions.push({ ...base, state: "succeeded" });
    done.add(task.id);
  }
  let running = 0;
  for (const task of tasks.slice(finished)) {
    if (running === inFlight) break;
    if (task.action === "do_nothing" || !task.prerequisites.every((id) => done.has(id))) continue;
    const nodeId = task.nodeId ?? newId();
    transitions.push({ type: "task", graphId, group, taskId: task.id, action: task.action, nodeId, version: task.version, state: "running", attempt: 1 });
    transitions.push(node(nodeId, task.action === "start_node" ? "starting" : "stopping", task.id, task.version));
    running++;
  }
  return transitions;
}
