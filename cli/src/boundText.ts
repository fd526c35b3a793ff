/**
 * Max surge or max unavailable as the spec gave it: `1`, or a percent with the nodes it
 * resolved to against the spec's count, `25% (3)` (`25%` alone where `withNodes` is false).
 */
export function boundText(nodes: number, percent: number | undefined, withNodes = true): string {
  if (percent === undefined) return String(nodes);
  return withNodes ? `${percent}% (${nodes})` : `${percent}%`;
}
