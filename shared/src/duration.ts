/**
 * Durations as the server's flags and the client's take them, and as both write them back.
 *
 * The grammar is Go's time.ParseDuration (what kubectl and nomad take) with days added and
 * without the units finer than a millisecond: one or more parts, each a decimal number with an
 * optional fraction and a unit, largest unit first, each unit once:
 *
 *     500ms   90s   1.5m   1h30m   2m30.5s   7d   1d12h   0
 *
 * `0` needs no unit. A bare number other than 0 is refused: `30` could mean seconds as easily
 * as milliseconds. The whole must come to whole milliseconds (`1.0005s` is refused, not rounded).
 */

/** Milliseconds in each unit, largest first: the order the parts of a duration must come in. */
const UNITS = [
  ["d", 86_400_000],
  ["h", 3_600_000],
  ["m", 60_000],
  ["s", 1000],
  ["ms", 1],
] as const;

const PART = /(\d+(?:\.\d+)?)(ms|d|h|m|s)/y;

/** How a problem with a duration ends: what to write instead. */
export const DURATION_EXAMPLES = "write it like 500ms, 90s, 1h30m or 7d";

export type DurationReading = { milliseconds: number; problem?: undefined } | { milliseconds?: undefined; problem: string };

/**
 * Reads a duration (see the grammar above) into milliseconds, or says what is wrong with it in
 * words that follow `"<text>" is not a duration: `.
 */
export function readDuration(text: string): DurationReading {
  if (/^0+(?:\.0+)?$/.test(text)) return { milliseconds: 0 };
  if (text === "") return { problem: DURATION_EXAMPLES };
  if (/^\d+(?:\.\d+)?$/.test(text)) return { problem: `a number needs a unit (ms, s, m, h or d): ${DURATION_EXAMPLES}` };
  let total = 0;
  let position = 0;
  let smallestSoFar = -1;
  while (position < text.length) {
    PART.lastIndex = position;
    const match = PART.exec(text);
    if (!match) return { problem: DURATION_EXAMPLES };
    const unit = UNITS.findIndex(([name]) => name === match[2]);
    if (unit <= smallestSoFar) return { problem: `its units must come largest first, each once: ${DURATION_EXAMPLES}` };
    smallestSoFar = unit;
    total += Number(match[1]) * UNITS[unit]![1];
    position = PART.lastIndex;
  }
  const milliseconds = Math.round(total);
  if (Math.abs(total - milliseconds) > 1e-6) return { problem: `it must come to whole milliseconds: ${DURATION_EXAMPLES}` };
  if (!Number.isSafeInteger(milliseconds)) return { problem: `it is too long: ${DURATION_EXAMPLES}` };
  return { milliseconds };
}

/**
 * Writes a duration the way the grammar reads it, so that it can be pasted back: the largest
 * units that write it exactly, each part whole: 604800000 → `7d`, 5400000 → `1h30m`,
 * 90000 → `1m30s`, 1500 → `1500ms`, 61500 → `1m1500ms`, 0 → `0s`.
 */
export function durationText(milliseconds: number): string {
  let rest = Math.max(0, Math.round(milliseconds));
  if (rest === 0) return "0s";
  const parts: string[] = [];
  for (const [name, size] of UNITS) {
    // Seconds only when they are whole: 1500ms reads better than 1s500ms.
    if (name === "s" && rest % 1000 !== 0) continue;
    const count = Math.floor(rest / size);
    if (count > 0) parts.push(`${count}${name}`);
    rest -= count * size;
  }
  return parts.join("");
}
