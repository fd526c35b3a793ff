/**
 * Max surge and max unavailable, each a number of nodes (`3`) or a percent of the spec's
 * count (`"25%"`), as Kubernetes' `IntOrString` takes them. A spec keeps them as given; the
 * planner, the rollout bounds and admission read them resolved, through `resolveRolloutBounds`.
 */

/** A number of nodes, or a whole percent of the spec's count written with `%`. */
export type IntOrPercent = number | `${number}%`;

/** The percent a bound was given as (`"25%"` → 25), or undefined when it was given as a number of nodes. */
export function percentOf(value: IntOrPercent): number | undefined {
  return typeof value === "string" ? Number(value.slice(0, -1)) : undefined;
}

/** A bound given as a percent: `25` → `"25%"`. */
export const asPercent = (percent: number): `${number}%` => `${percent}%`;

/** A command-line value: `"25%"` stays a percent, anything else is read as a number (and checked by `boundProblem`). */
export function parseIntOrPercent(text: string): IntOrPercent {
  const percent = /^(\d+)%$/.exec(text);
  if (percent) return asPercent(Number(percent[1]));
  return /^\d+$/.test(text) ? Number(text) : Number.NaN;
}

/** Why a bound is invalid, naming it and its value; undefined when it is valid. */
export function boundProblem(name: string, value: IntOrPercent, maxNodes: number): string | undefined {
  const percent = percentOf(value);
  if (percent !== undefined) {
    if (Number.isInteger(percent) && percent >= 0 && percent <= 100) return undefined;
    return `${name} ${value} is invalid: a percent must be a whole number from 0% to 100%`;
  }
  if (Number.isInteger(value) && (value as number) >= 0 && (value as number) <= maxNodes) return undefined;
  return `${name} ${value} is invalid: it must be an integer from 0 to ${maxNodes}, or a percent of count like 25%`;
}

/** Whether a bound was given as zero nodes, or as 0%. */
export const isZeroBound = (value: IntOrPercent): boolean => value === 0 || percentOf(value) === 0;

/**
 * Max surge and max unavailable in nodes, for a spec of `count` nodes, as Kubernetes'
 * deployment controller resolves them (ResolveFenceposts): a surge percent rounds up, an
 * unavailability percent rounds down, so that a percent never takes availability below what
 * it says; and when both come to 0, which only rounding can do (a spec may not give both as
 * 0), max unavailable becomes 1, so that the rollout can move at all.
 *
 * Worked example: count 10, max surge 25%, max unavailable 25% → surge ⌈2.5⌉ = 3, unavailable
 * ⌊2.5⌋ = 2: the group stays within 10 − 2 = 8 .. 10 + 3 = 13 nodes. Count 3, max surge 0,
 * max unavailable 25% → 0 and ⌊0.75⌋ = 0, so unavailable becomes 1.
 */
export function resolveRolloutBounds(spec: { count: number; maxSurge: IntOrPercent; maxUnavailable: IntOrPercent }): {
  maxSurge: number;
  maxUnavailable: number;
} {
  // count × percent is an exact integer (at most 100,000 × 100), so the rounding is exact too.
  const scaled = (value: IntOrPercent, roundUp: boolean): number => {
    const percent = percentOf(value);
    if (percent === undefined) return value as number;
    return roundUp ? Math.ceil((spec.count * percent) / 100) : Math.floor((spec.count * percent) / 100);
  };
  const maxSurge = scaled(spec.maxSurge, true);
  const maxUnavailable = scaled(spec.maxUnavailable, false);
  return { maxSurge, maxUnavailable: maxSurge === 0 && maxUnavailable === 0 ? 1 : maxUnavailable };
}
