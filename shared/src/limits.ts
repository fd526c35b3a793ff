/**
 * The rules a spec and its names must follow. Both sides use them: the CLI refuses bad
 * input before it calls, and the server refuses it again at the api boundary, with the
 * same words.
 */

import { quote } from "./format.js";
import { boundProblem, type IntOrPercent, isZeroBound } from "./rolloutBounds.js";

export const DEFAULT_GROUP = "default";
/** The most nodes one group may ask for. */
export const MAX_COUNT = 100_000;
/** Versions are positive 31-bit integers. */
export const MAX_VERSION = 2_147_483_647;
export const DEFAULT_MAX_SURGE = 0;
export const DEFAULT_MAX_UNAVAILABLE = 1;
/** A DNS label: lower-case letters, digits and '-', starting and ending with a letter or digit. */
export const GROUP_NAME_PATTERN = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
/** A ULID: 26 characters of Crockford's base 32. */
export const ULID_PATTERN = /^[0-9A-HJKMNP-TV-Z]{26}$/;

export interface SpecInput {
  count: number;
  version: number;
  maxSurge: IntOrPercent;
  maxUnavailable: IntOrPercent;
}

/** Returns why the group name is invalid, or undefined when it is valid. */
export function groupNameProblem(name: string): string | undefined {
  if (GROUP_NAME_PATTERN.test(name)) return undefined;
  return `group ${quote(name)} is invalid: use 1 to 63 lower-case letters, digits and '-', starting and ending with a letter or digit`;
}

/** Returns every rule the spec breaks, naming the field and its value. */
export function specProblems(spec: SpecInput): string[] {
  const problems: string[] = [];
  const integerIn = (name: string, value: number, min: number, max: number) => {
    if (!Number.isInteger(value) || value < min || value > max) {
      problems.push(`${name} ${value} is invalid: it must be an integer from ${min} to ${max}`);
    }
  };
  integerIn("count", spec.count, 0, MAX_COUNT);
  integerIn("version", spec.version, 1, MAX_VERSION);
  for (const [name, value] of [["max surge", spec.maxSurge], ["max unavailable", spec.maxUnavailable]] as const) {
    const problem = boundProblem(name, value, MAX_COUNT);
    if (problem) problems.push(problem);
  }
  // As Kubernetes refuses it: a percent that rounds to 0 is let through (see resolveRolloutBounds).
  if (isZeroBound(spec.maxSurge) && isZeroBound(spec.maxUnavailable)) {
    problems.push("max surge and max unavailable are both 0: at least one must be positive, or a rolling update could never make progress");
  }
  return problems;
}
