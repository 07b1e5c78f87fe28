// Summaries of a handful of timings. With 5 runs a mean is at the mercy of one slow run, so
// the benchmarks report the median and show the spread as quartiles and extremes.

export interface Summary {
  readonly n: number;
  readonly median: number;
  readonly p25: number;
  readonly p75: number;
  readonly min: number;
  readonly max: number;
}

/** Linear interpolation between closest ranks (what numpy and most spreadsheets do). */
export function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const position = (sorted.length - 1) * q;
  const below = Math.floor(position);
  const low = sorted[below] ?? Number.NaN;
  const high = sorted[Math.min(below + 1, sorted.length - 1)] ?? low;
  return low + (high - low) * (position - below);
}

/** Undefined for no values, so that a mode that never ran shows as missing, not as 0 ms. */
export function summarize(values: readonly number[], digits = 1): Summary | undefined {
  if (values.length === 0) return undefined;
  const round = (value: number) => roundTo(value, digits);
  return {
    n: values.length,
    median: round(quantile(values, 0.5)),
    p25: round(quantile(values, 0.25)),
    p75: round(quantile(values, 0.75)),
    min: round(Math.min(...values)),
    max: round(Math.max(...values)),
  };
}

/**
 * Ratios (or differences) of two series measured in the same run, index by index: run i of
 * one mode ran right after run i of the other, so drift in the machine's speed over the
 * benchmark cancels out. Runs where either side failed are skipped.
 */
export function pairwise(
  a: readonly (number | null)[],
  b: readonly (number | null)[],
  combine: (a: number, b: number) => number,
): number[] {
  const out: number[] = [];
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const x = a[i];
    const y = b[i];
    if (x !== null && x !== undefined && y !== null && y !== undefined) out.push(combine(x, y));
  }
  return out;
}

export function roundTo(value: number, digits: number): number {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}
