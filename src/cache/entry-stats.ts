import { join } from "node:path";
import { replacePrivateFile } from "./private-file.js";
import { readOwnedJson } from "./read-owned-json.js";

/**
 * How an entry has been used since it was committed. The manifest is written once and
 * hashed; these numbers change on every launch, so they live in their own file beside it.
 * They order eviction, fill `warmstart ls` and drive the never-slower rule; nothing is
 * restored from them.
 */
export interface EntryStats {
  /** ISO time of the last warm launch from this entry. */
  readonly lastUsedAt: string;
  readonly hits: number;
  /** readyMs of the last warm launch. */
  readonly warmReadyMs: number | null;
  /** The fastest warm launch so far, for `ls`. */
  readonly bestWarmReadyMs?: number | null;
  /** readyMs of the cold launch that made the entry, copied from the manifest. */
  readonly coldReadyMs: number | null;
  /** The last SAMPLES warm launches' readyMs, oldest first. */
  readonly warmSamplesMs?: readonly number[];
  /** The last SAMPLES cold launches of this snapshot's app (the one that made it included). */
  readonly coldSamplesMs?: readonly number[];
  /** Cold launches the never-slower rule made since the last warm one. */
  readonly coldSinceWarm?: number;
}

const STATS_FILE = "stats.json";

/** The rule judges by the median of this many launches of each kind. */
export const SAMPLES = 3;
/** Under the rule, every this-many-th launch restores anyway, to measure again: a machine
 * whose page cache was cold after a reboot is not kept cold forever. */
export const REMEASURE_EVERY = 10;

export type NeverSlowerDecision =
  | { readonly action: "restore"; readonly isRemeasure: boolean }
  | { readonly action: "start-cold"; readonly warmMs: number; readonly coldMs: number };

/**
 * A snapshot that restores no faster than the app starts is worse than none: it costs disk
 * and risk for nothing. Such an entry is kept (a later launch measures again) but launches
 * go cold. Judged on the median of the last SAMPLES warm launches against the cold ones,
 * never on one launch: one slow restore (a cold page cache) proves nothing.
 */
export function decideNeverSlower(stats: EntryStats | undefined): NeverSlowerDecision {
  const warm = warmSamplesOf(stats);
  const cold = coldSamplesOf(stats);
  if (warm.length < SAMPLES || cold.length === 0) return { action: "restore", isRemeasure: false };
  const warmMs = median(warm);
  const coldMs = median(cold);
  if (warmMs < coldMs) return { action: "restore", isRemeasure: false };
  if ((stats?.coldSinceWarm ?? 0) + 1 >= REMEASURE_EVERY) return { action: "restore", isRemeasure: true };
  return { action: "start-cold", warmMs, coldMs };
}

/** Whether launches of the entry currently go cold by the rule (for `ls`). */
export function isWarmNotFaster(stats: EntryStats | undefined): boolean {
  const warm = warmSamplesOf(stats);
  const cold = coldSamplesOf(stats);
  return warm.length >= SAMPLES && cold.length > 0 && median(warm) >= median(cold);
}

/** The fastest warm launch (stats written before bestWarmReadyMs existed have the last). */
export function fastestWarmReadyMs(stats: EntryStats | undefined): number | null {
  return stats?.bestWarmReadyMs ?? stats?.warmReadyMs ?? null;
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[middle] ?? 0)
    : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
}

function warmSamplesOf(stats: EntryStats | undefined): readonly number[] {
  return stats?.warmSamplesMs ?? (stats?.warmReadyMs != null ? [stats.warmReadyMs] : []);
}

function coldSamplesOf(stats: EntryStats | undefined): readonly number[] {
  return stats?.coldSamplesMs ?? (stats?.coldReadyMs != null ? [stats.coldReadyMs] : []);
}

/** The entry's stats, or undefined when it has none yet (or they are unreadable or not its own). */
export function readStats(entryDir: string): EntryStats | undefined {
  const parsed = readOwnedJson(join(entryDir, STATS_FILE));
  return isEntryStats(parsed) ? parsed : undefined;
}

/**
 * Counts a warm launch. Best effort: the entry may have been evicted meanwhile or the disk
 * may be full, and neither may fail a launch that is already serving, so errors give
 * undefined. Two hits at the same instant can count once (last writer wins); the numbers
 * order eviction and inform the user, an exact count is not worth a lock on the warm path.
 */
export function recordHit(
  entryDir: string,
  warmReadyMs: number,
  now: Date = new Date(),
): EntryStats | undefined {
  const previous = readStats(entryDir);
  const coldReadyMs = previous?.coldReadyMs ?? readManifestColdReadyMs(entryDir);
  return writeStats(entryDir, {
    lastUsedAt: now.toISOString(),
    hits: (previous?.hits ?? 0) + 1,
    warmReadyMs,
    bestWarmReadyMs: Math.min(warmReadyMs, fastestWarmReadyMs(previous) ?? warmReadyMs),
    coldReadyMs,
    warmSamplesMs: [...warmSamplesOf(previous), warmReadyMs].slice(-SAMPLES),
    coldSamplesMs: previous?.coldSamplesMs ?? (coldReadyMs === null ? [] : [coldReadyMs]),
    coldSinceWarm: 0,
  });
}

/** Counts a cold launch the never-slower rule made instead of a restore. Best effort too. */
export function recordRuleColdLaunch(entryDir: string, coldReadyMs: number): EntryStats | undefined {
  const previous = readStats(entryDir);
  if (!previous) return undefined;
  return writeStats(entryDir, {
    ...previous,
    coldSamplesMs: [...coldSamplesOf(previous), coldReadyMs].slice(-SAMPLES),
    coldSinceWarm: (previous.coldSinceWarm ?? 0) + 1,
  });
}

function writeStats(entryDir: string, stats: EntryStats): EntryStats | undefined {
  // After a crash a lost update only costs a slightly wrong count.
  try {
    replacePrivateFile(join(entryDir, STATS_FILE), `${JSON.stringify(stats, null, 2)}\n`);
    return stats;
  } catch {
    return undefined;
  }
}

function readManifestColdReadyMs(entryDir: string): number | null {
  const manifest = readOwnedJson(join(entryDir, "manifest.json")) as { coldReadyMs?: unknown } | undefined;
  const coldReadyMs = manifest?.coldReadyMs;
  return typeof coldReadyMs === "number" && isMsOrNull(coldReadyMs) ? coldReadyMs : null;
}

function isEntryStats(value: unknown): value is EntryStats {
  if (!value || typeof value !== "object") return false;
  const stats = value as Record<string, unknown>;
  return (
    typeof stats.lastUsedAt === "string" &&
    !Number.isNaN(Date.parse(stats.lastUsedAt)) &&
    Number.isSafeInteger(stats.hits) &&
    isMsOrNull(stats.warmReadyMs) &&
    (stats.bestWarmReadyMs === undefined || isMsOrNull(stats.bestWarmReadyMs)) &&
    isMsOrNull(stats.coldReadyMs) &&
    (stats.warmSamplesMs === undefined || isMsList(stats.warmSamplesMs)) &&
    (stats.coldSamplesMs === undefined || isMsList(stats.coldSamplesMs)) &&
    (stats.coldSinceWarm === undefined || Number.isSafeInteger(stats.coldSinceWarm))
  );
}

function isMsList(value: unknown): boolean {
  return Array.isArray(value) && value.every((item) => typeof item === "number" && isMsOrNull(item));
}

function isMsOrNull(value: unknown): boolean {
  return value === null || (typeof value === "number" && Number.isFinite(value) && value >= 0);
}
