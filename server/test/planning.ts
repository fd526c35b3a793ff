import type { Node, NodeState, Spec } from "../src/domain.js";

/** Shapes for planner tests: a node of group "web", and a spec with the default strategy unless told. */
export const node = (id: string, version: number, state: NodeState = "running", createdAt = 0): Node => ({
  id,
  group: "web",
  version,
  state,
  host: "local",
  createdAt,
  updatedAt: createdAt,
});

export const spec = (count: number, version: number, maxSurge = 0, maxUnavailable = 1): Spec => ({ count, version, maxSurge, maxUnavailable });
