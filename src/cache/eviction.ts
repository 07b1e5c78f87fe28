import { lstatSync, statfsSync } from "node:fs";
import { dirname, join } from "node:path";
import { LRUCache } from "lru-cache";
import { invalidOption } from "../errors.js";
import { listEntryKeys, type ScannedEntry, scanEntries } from "./entry-scan.js";
import type { EntryStore, Manifest } from "./entry-store.js";
import { readOwnedJson } from "./read-owned-json.js";

const GIB = 1024 ** 3;

/** The default cap never exceeds this, however much space is free. */
export const DEFAULT_MAX_CACHE_BYTES = 10 * GIB;

// The cache is a convenience: it may fill a fifth of what is free, never the disk the app
// itself needs to write to.
const FREE_SPACE_SHARE = 0.2;

export interface CacheLimitOptions {
  /** The cap (`--max-cache-size`); default: the smaller of 10 GiB and 20% of the free space. */
  readonly maxBytes?: number;
  /** The entry just written: never evicted, even when it alone is over the cap. */
  readonly keep?: string;
}

export interface CacheLimitOutcome {
  readonly maxBytes: number;
  /** Least recently used first. */
  readonly evicted: readonly ScannedEntry[];
  /** The user's entries left and their bytes, `keep` included. */
  readonly entryCount: number;
  readonly totalBytes: number;
  /** Other users' entries: neither counted against the cap nor removed. */
  readonly foreign: readonly ScannedEntry[];
}

/** The smaller of 10 GiB and 20% of the free space on the filesystem that holds cacheDir. */
export function defaultMaxCacheBytes(cacheDir: string): number {
  const fs = statfsSync(cacheDir);
  return Math.min(DEFAULT_MAX_CACHE_BYTES, Math.floor(fs.bavail * fs.bsize * FREE_SPACE_SHARE));
}

/**
 * Evicts the user's least recently used entries until the rest fit under the cap. Entries
 * of other users are left alone: warmstart never deletes what it does not own.
 */
export function enforceCacheLimit(store: EntryStore, options: CacheLimitOptions = {}): CacheLimitOutcome {
  const maxBytes = options.maxBytes ?? defaultMaxCacheBytes(dirname(store.root));
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) {
    throw invalidOption("maxBytes", "a non-negative integer number of bytes", maxBytes);
  }
  const scanned = scanEntries(store);
  const owned = scanned.filter((entry) => entry.isOwnedByUser);
  const kept = owned.find((entry) => entry.key === options.keep);
  const candidates = owned
    .filter((entry) => entry !== kept)
    .sort((a, b) => a.lastUsedAtMs - b.lastUsedAtMs || (a.key < b.key ? -1 : 1));
  const evicted = selectOverflow(candidates, maxBytes - (kept?.sizeBytes ?? 0));
  for (const entry of evicted) store.evict(entry.key);
  const left = owned.filter((entry) => !evicted.includes(entry));
  return {
    maxBytes,
    evicted,
    entryCount: left.length,
    totalBytes: left.reduce((sum, entry) => sum + entry.sizeBytes, 0),
    foreign: scanned.filter((entry) => !entry.isOwnedByUser),
  };
}

/**
 * Replays the entries, oldest use first, into an LRU index bounded by the budget: whenever
 * the next one does not fit, the index drops its least recently used, and it refuses one
 * that alone exceeds the budget (keeping older ones that still fit, rather than emptying
 * the cache for it). What the index dropped or refused is what leaves the disk.
 */
function selectOverflow(byLastUse: readonly ScannedEntry[], budgetBytes: number): ScannedEntry[] {
  if (budgetBytes < 1) return [...byLastUse];
  const overflow: ScannedEntry[] = [];
  const index = new LRUCache<string, ScannedEntry>({
    maxSize: budgetBytes,
    // lru-cache needs a positive size; an empty entry still costs a directory.
    sizeCalculation: (entry) => Math.max(1, entry.sizeBytes),
    dispose: (entry, _key, reason) => {
      if (reason === "evict") overflow.push(entry);
    },
  });
  for (const entry of byLastUse) {
    const status: LRUCache.Status<string, ScannedEntry> = {};
    index.set(entry.key, entry, { status });
    if (status.maxEntrySizeExceeded) overflow.push(entry);
  }
  return overflow.sort((a, b) => a.lastUsedAtMs - b.lastUsedAtMs || (a.key < b.key ? -1 : 1));
}

/**
 * Evicts the user's other entries for the same command in the same directory with the same
 * environment. A new entry for such a launch means its code, inputs or runtime changed; the old snapshot would only be restored if they
 * changed back, and it holds disk space until then. Two kinds are kept: entries made for
 * another host part (another memory limit or CPU set: launches there still use them), and
 * the newest earlier entry under the same base key (inputs changed back, as when a branch is
 * checked out and back, find it warm). Returns the evicted keys.
 */
export function dropOlderEntriesOfCommand(
  store: EntryStore,
  manifest: Pick<Manifest, "key" | "command" | "fields" | "baseKey">,
): string[] {
  const uid = process.getuid?.() ?? 0;
  const dropped: string[] = [];
  const previousVersions: Partial<Manifest>[] = [];
  for (const key of listEntryKeys(store)) {
    if (key === manifest.key) continue;
    const dir = store.entryDir(key);
    try {
      const stat = lstatSync(dir);
      if (!stat.isDirectory() || stat.uid !== uid) continue;
    } catch {
      continue;
    }
    const other = readOwnedJson(join(dir, "manifest.json")) as Partial<Manifest> | undefined;
    if (!other || !isSameCommand(other, manifest)) continue;
    if (JSON.stringify(other.fields?.host) !== JSON.stringify(manifest.fields.host)) continue;
    if (other.baseKey === manifest.baseKey) {
      previousVersions.push({ ...other, key });
      continue;
    }
    store.evict(key);
    dropped.push(key);
  }
  const byAge = previousVersions.sort((a, b) => ((a.createdAt ?? "") < (b.createdAt ?? "") ? 1 : -1));
  for (const { key } of byAge.slice(1)) {
    if (key === undefined) continue;
    store.evict(key);
    dropped.push(key);
  }
  return dropped.sort();
}

function isSameCommand(other: Partial<Manifest>, manifest: Pick<Manifest, "command" | "fields">): boolean {
  return (
    Array.isArray(other.command) &&
    other.command.length === manifest.command.length &&
    other.command.every((arg, i) => arg === manifest.command[i]) &&
    typeof other.fields === "object" &&
    other.fields !== null &&
    other.fields.cwd === manifest.fields.cwd &&
    // Two instances of one app that differ only in configuration (PORT=3000 and PORT=3001)
    // are not versions of each other: each keeps its own snapshot.
    JSON.stringify(other.fields.env) === JSON.stringify(manifest.fields.env)
  );
}
