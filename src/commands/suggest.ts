import { createRequire } from "node:module";

/**
 * The candidate a typo most likely meant: within `maxDistance` edits, or undefined.
 * fastest-levenshtein is required here, on the error path only: a module load on every
 * launch costs milliseconds the warm path does not have.
 */
export function suggestClosest(
  typed: string,
  candidates: readonly string[],
  maxDistance: number,
): string | undefined {
  if (typed === "" || candidates.length === 0) return undefined;
  const { closest, distance } = createRequire(import.meta.url)(
    "fastest-levenshtein",
  ) as typeof import("fastest-levenshtein");
  const nearest = closest(typed, [...candidates]);
  return distance(typed, nearest) <= maxDistance ? nearest : undefined;
}
