import { randomBytes } from "node:crypto";
import { renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { readOwnedJson } from "./read-owned-json.js";

/**
 * How an entry has been used since it was committed. The manifest is written once and
 * hashed; these numbers change on every warm launch, so they live in their own file beside
 * it. They order eviction and fill `warmstart ls`; nothing is restored from them.
 */
export interface EntryStats {
  /** ISO time of the last warm launch from this entry. */
  readonly lastUsedAt: string;
  readonly hits: number;
  /** readyMs of the last warm launch. */
  readonly warmReadyMs: number | null;
  /** The fastest warm launch so far: one slow launch on a busy machine proves nothing. */
  readonly bestWarmReadyMs?: number | null;
  /** readyMs of the cold launch that made the entry, copied from the manifest. */
  readonly coldReadyMs: number | null;
}

const STATS_FILE = "stats.json";

/**
 * A snapshot that restores no faster than the app starts is worse than none: it costs disk
 * and risk for nothing. Such an entry is kept (a later --refresh re-measures it) but
 * launches go cold.
 */
export function isWarmNotFaster(stats: EntryStats | undefined): boolean {
  const warmMs = fastestWarmReadyMs(stats);
  return warmMs != null && stats?.coldReadyMs != null && warmMs >= stats.coldReadyMs;
}

/** The fastest warm launch (stats written before bestWarmReadyMs existed have the last). */
export function fastestWarmReadyMs(stats: EntryStats | undefined): number | null {
  return stats?.bestWarmReadyMs ?? stats?.warmReadyMs ?? null;
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
  const stats: EntryStats = {
    lastUsedAt: now.toISOString(),
    hits: (previous?.hits ?? 0) + 1,
    warmReadyMs,
    bestWarmReadyMs: Math.min(warmReadyMs, previous?.bestWarmReadyMs ?? previous?.warmReadyMs ?? warmReadyMs),
    coldReadyMs: previous?.coldReadyMs ?? readManifestColdReadyMs(entryDir),
  };
  // Written beside the final file and renamed over it, so a reader never sees half of it.
  // No fsync: after a crash a lost update only costs a slightly wrong hit count.
  const tmp = join(entryDir, `.${STATS_FILE}.${process.pid}-${randomBytes(4).toString("hex")}.tmp`);
  try {
    writeFileSync(tmp, `${JSON.stringify(stats, null, 2)}\n`, { mode: 0o600, flag: "wx" });
    renameSync(tmp, join(entryDir, STATS_FILE));
    return stats;
  } catch {
    rmSync(tmp, { force: true });
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
    isMsOrNull(stats.coldReadyMs)
  );
}

function isMsOrNull(value: unknown): boolean {
  return value === null || (typeof value === "number" && Number.isFinite(value) && value >= 0);
}
