import { type ScannedEntry, scanEntries } from "./entry-scan.js";
import { fastestWarmReadyMs, isWarmNotFaster, readStats } from "./entry-stats.js";
import type { EntryStore, Manifest } from "./entry-store.js";

/** An entry as `warmstart ls` shows it. */
export type ListedEntry =
  | {
      readonly state: "ok";
      readonly key: string;
      readonly dir: string;
      readonly sizeBytes: number;
      readonly manifest: Manifest;
      readonly lastUsedAt: string;
      readonly hits: number;
      readonly coldReadyMs: number;
      /** The last warm launch's readyMs. */
      readonly warmReadyMs: number | null;
      /** The fastest warm launch's. */
      readonly bestWarmReadyMs: number | null;
      /** Launches of the entry go cold: its warm starts were measured no faster. */
      readonly isWarmNotFaster: boolean;
    }
  | {
      // What a launch would refuse or evict: its manifest is not trusted, so not shown.
      readonly state: "refused" | "corrupt";
      readonly key: string;
      readonly dir: string;
      readonly sizeBytes: number;
      readonly ownerUid: number;
      readonly isOwnedByUser: boolean;
      readonly detail: string;
    };

/**
 * Every entry with its size and use, judged by the same lookup a launch does (owner, modes,
 * symlinks, sizes, metadata hashes; `verify` also hashes the pages). Most recently used
 * first, then the entries a launch would not use.
 */
export async function listCacheEntries(store: EntryStore): Promise<ListedEntry[]> {
  const listed: ListedEntry[] = [];
  for (const scanned of scanEntries(store)) {
    const entry = await judgeEntry(store, scanned);
    if (entry) listed.push(entry);
  }
  const rank = (entry: ListedEntry) => (entry.state === "ok" ? Date.parse(entry.lastUsedAt) : -Infinity);
  return listed.sort((a, b) => rank(b) - rank(a) || (a.key < b.key ? -1 : 1));
}

/** Undefined when another process removed the entry meanwhile. */
export async function judgeEntry(store: EntryStore, scanned: ScannedEntry): Promise<ListedEntry | undefined> {
  const { key, dir, sizeBytes } = scanned;
  const found = await store.lookup(key);
  if (found.hit) {
    const { manifest } = found.entry;
    const stats = readStats(dir);
    return {
      state: "ok",
      key,
      dir,
      sizeBytes,
      manifest,
      lastUsedAt: stats?.lastUsedAt ?? manifest.createdAt,
      hits: stats?.hits ?? 0,
      coldReadyMs: stats?.coldReadyMs ?? manifest.coldReadyMs,
      warmReadyMs: stats?.warmReadyMs ?? null,
      bestWarmReadyMs: fastestWarmReadyMs(stats),
      isWarmNotFaster: isWarmNotFaster(stats),
    };
  }
  if (found.reason === "missing") return undefined;
  return {
    state: found.reason,
    key,
    dir,
    sizeBytes,
    ownerUid: scanned.ownerUid,
    isOwnedByUser: scanned.isOwnedByUser,
    detail: found.detail,
  };
}
