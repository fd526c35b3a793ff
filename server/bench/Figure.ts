/**
 * One measured figure of the benchmark: the median of its runs, with the goal the issue
 * sets for it, if any. Times never become assertions: a missed goal is reported, not failed.
 */
export interface Goal {
  /** "at most": the value must not exceed the target; "at least": it must reach it. */
  comparison: "at most" | "at least";
  target: number;
}

export interface Figure {
  /** A stable name for the JSON file and the smoke test, like "plan.100k_ms". */
  key: string;
  /** What was measured, in words, for the table. */
  label: string;
  value: number;
  unit: string;
  goal?: Goal;
  /** Each run's value; the figure is their median. */
  runs: number[];
  /** What else a reader needs: sizes, the comparison the figure comes from. */
  note?: string;
}

/** Whether a figure meets its goal; undefined when it has none. */
export function goalMet(figure: Figure): boolean | undefined {
  if (!figure.goal) return undefined;
  return figure.goal.comparison === "at most" ? figure.value <= figure.goal.target : figure.value >= figure.goal.target;
}

/** Median of the runs (the mean of the middle two for an even count). */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** A figure whose value is the median of `runs`. */
export function figureOf(fields: Omit<Figure, "value">): Figure {
  return { ...fields, value: median(fields.runs) };
}

/**
 * Latencies in whole milliseconds, counted per millisecond, so that millions of samples
 * (1,000 watchers × every event) cost a fixed amount of memory.
 */
export class LatencyHistogram {
  private counts = new Float64Array(1024);
  count = 0;

  add(milliseconds: number): void {
    const bucket = Math.max(0, Math.round(milliseconds));
    if (bucket >= this.counts.length) {
      const grown = new Float64Array(Math.max(bucket + 1, this.counts.length * 2));
      grown.set(this.counts);
      this.counts = grown;
    }
    this.counts[bucket]!++;
    this.count++;
  }

  /** The smallest latency at or below which a fraction `q` (0..1) of the samples fall. */
  quantile(q: number): number {
    if (this.count === 0) return Number.NaN;
    const rank = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (let bucket = 0; bucket < this.counts.length; bucket++) {
      seen += this.counts[bucket]!;
      if (seen >= rank) return bucket;
    }
    return this.counts.length - 1;
  }
}

/** The q-quantile (0..1) of a list of samples, by the nearest-rank method. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}
