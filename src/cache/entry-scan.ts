import { type Dirent, lstatSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { readStats } from "./entry-stats.js";
import type { EntryStore } from "./entry-store.js";
import { readOwnedJson } from "./read-owned-json.js";

/**
 * What the cache knows about an entry without trusting it: enough to size, order and
 * remove it. Nothing here is restored, so nothing here is verified; `lookup` does that.
 */
export interface ScannedEntry {
  readonly key: string;
  readonly dir: string;
  /** Every regular file under the entry (images, manifest, stats, dump log): what it costs on disk. */
  readonly sizeBytes: number;
  readonly ownerUid: number;
  /** Only entries the user owns are ever removed by warmstart; others are reported. */
  readonly isOwnedByUser: boolean;
  /** Last warm launch, else creation, else the directory's mtime: the eviction order. */
  readonly lastUsedAtMs: number;
}

// Entries are named by their sha256 key; dot-directories are pending or evicted dumps, and
// anything else (lock files, a stray file) is not an entry.
const ENTRY_NAME = /^[0-9a-f]{64}$/;

export function isEntryName(name: string): boolean {
  return ENTRY_NAME.test(name);
}

/** The keys of every entry directory in the store, sorted. */
export function listEntryKeys(store: EntryStore): string[] {
  let names: string[];
  try {
    names = readdirSync(store.root);
  } catch {
    return [];
  }
  return names.filter(isEntryName).sort();
}

export function scanEntries(store: EntryStore): ScannedEntry[] {
  const scanned: ScannedEntry[] = [];
  for (const key of listEntryKeys(store)) {
    const entry = scanEntry(store, key);
    if (entry) scanned.push(entry);
  }
  return scanned;
}

/** Undefined when the entry is gone (evicted by another process since it was listed). */
export function scanEntry(store: EntryStore, key: string): ScannedEntry | undefined {
  const dir = store.entryDir(key);
  let stat: ReturnType<typeof lstatSync>;
  try {
    stat = lstatSync(dir);
  } catch {
    return undefined;
  }
  const uid = process.getuid?.() ?? 0;
  const isDirectory = stat.isDirectory();
  return {
    key,
    dir,
    sizeBytes: isDirectory ? measureTreeBytes(dir) : stat.size,
    ownerUid: stat.uid,
    isOwnedByUser: stat.uid === uid,
    lastUsedAtMs: isDirectory ? readLastUsedAtMs(dir, stat.mtimeMs) : stat.mtimeMs,
  };
}

/** Sums the sizes of the regular files under dir; symlinks are counted as links, never followed. */
export function measureTreeBytes(dir: string): number {
  let total = 0;
  let children: Dirent[];
  try {
    children = readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const child of children) {
    const path = join(dir, child.name);
    if (child.isDirectory()) total += measureTreeBytes(path);
    else if (child.isFile()) {
      try {
        total += lstatSync(path).size;
      } catch {
        // Removed while we walked: it no longer costs anything.
      }
    }
  }
  return total;
}

function readLastUsedAtMs(dir: string, mtimeMs: number): number {
  const stats = readStats(dir);
  if (stats) return Date.parse(stats.lastUsedAt);
  const manifest = readOwnedJson(join(dir, "manifest.json")) as { createdAt?: unknown } | undefined;
  const createdAtMs = typeof manifest?.createdAt === "string" ? Date.parse(manifest.createdAt) : Number.NaN;
  // No readable manifest: the directory's own time is the best left.
  return Number.isNaN(createdAtMs) ? mtimeMs : createdAtMs;
}
