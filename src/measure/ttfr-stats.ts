// The figures `warmstart bench` reports: medians and spreads of TTFRs, and run-by-run ratios.

/** One mode's launches: how many, and their median, fastest and slowest TTFR. */
export interface TtfrSummary {
  readonly count: number;
  readonly medianMs: number;
  readonly minMs: number;
  readonly maxMs: number;
}

/** Ratios of launches made side by side (run i of one mode over run i of the other). */
export interface RatioSummary {
  readonly count: number;
  readonly median: number;
  readonly min: number;
  readonly max: number;
}

/** The middle value, or the mean of the two middle values; NaN for no values. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  if (sorted.length === 0) return Number.NaN;
  if (sorted.length % 2 === 1) return sorted[middle] ?? Number.NaN;
  return ((sorted[middle - 1] ?? Number.NaN) + (sorted[middle] ?? Number.NaN)) / 2;
}

/** undefined for no values: a mode none of whose launches counted has no figures. */
export function summarizeTtfr(valuesMs: readonly number[]): TtfrSummary | undefined {
  if (valuesMs.length === 0) return undefined;
  return {
    count: valuesMs.length,
    medianMs: median(valuesMs),
    minMs: Math.min(...valuesMs),
    maxMs: Math.max(...valuesMs),
  };
}

/** Each pair's numerator / denominator (a zero denominator is left out); undefined for no pairs. */
export function summarizeRatios(
  pairs: readonly { readonly numerator: number; readonly denominator: number }[],
): RatioSummary | undefined {
  const ratios = pairs
    .filter((pair) => pair.denominator > 0)
    .map((pair) => pair.numerator / pair.denominator);
  if (ratios.length === 0) return undefined;
  return { count: ratios.length, median: median(ratios), min: Math.min(...ratios), max: Math.max(...ratios) };
}
