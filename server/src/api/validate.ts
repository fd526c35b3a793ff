import {
  DEFAULT_GROUP,
  DEFAULT_MAX_SURGE,
  DEFAULT_MAX_UNAVAILABLE,
  graphIdProblem,
  groupNameProblem,
  specProblems,
} from "@drover/shared";
import type { Spec } from "../domain.js";
import { InvalidArgumentError } from "../errors.js";

/** The group a request names, or the default group; refuses a malformed name. */
export function requireGroup(group: string): string {
  const name = group === "" ? DEFAULT_GROUP : group;
  const problem = groupNameProblem(name);
  if (problem) throw new InvalidArgumentError(problem);
  return name;
}

export function requireGraphId(graphId: string): string {
  const problem = graphIdProblem(graphId);
  if (problem) throw new InvalidArgumentError(problem);
  return graphId;
}

export function requireSpec(input: { count: number; version: number; maxSurge?: number; maxUnavailable?: number }): Spec {
  const spec = {
    count: input.count,
    version: input.version,
    maxSurge: input.maxSurge ?? DEFAULT_MAX_SURGE,
    maxUnavailable: input.maxUnavailable ?? DEFAULT_MAX_UNAVAILABLE,
  };
  const problems = specProblems(spec);
  if (problems.length > 0) throw new InvalidArgumentError(problems.join("; "));
  return spec;
}

export const DEFAULT_GRAPH_LIST_LIMIT = 20;
export const MAX_GRAPH_LIST_LIMIT = 1000;

export function requireListLimit(limit: number): number {
  if (limit === 0) return DEFAULT_GRAPH_LIST_LIMIT;
  if (limit > MAX_GRAPH_LIST_LIMIT) {
    throw new InvalidArgumentError(`limit ${limit} is invalid: it must be from 1 to ${MAX_GRAPH_LIST_LIMIT}`);
  }
  return limit;
}
