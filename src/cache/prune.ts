import { lstatSync, readdirSync, rmSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { judgeEntry } from "./entry-list.js";
import { removeEntry } from "./entry-remove.js";
import { measureTreeBytes, scanEntries } from "./entry-scan.js";
import type { EntryStore } from "./entry-store.js";
import { type CacheLimitOutcome, enforceCacheLimit } from "./eviction.js";
import { cleanUpAfterGoneLaunches } from "./housekeeping.js";

export interface PruneOptions {
  /** The cap; default: the smaller of 10 GiB and 20% of the free space. */
  readonly maxBytes?: number;
}

export interface PrunedEntry {
  readonly key: string;
  readonly state: "refused" | "corrupt";
  /** Why a launch would not use it. */
  readonly detail: string;
  readonly sizeBytes: number;
}

export interface KeptEntry extends PrunedEntry {
  /** Why prune left it: another user's entry, or a removal that failed. */
  readonly keptBecause: string;
}

export interface PruneReport {
  /** Stores of other image format versions (`v1`, ...): no launch of this warmstart reads them. */
  readonly otherFormats: readonly { readonly name: string; readonly sizeBytes: number }[];
  /** What launches that are gone left (pending dumps, runtime directories, locks, old
   * logs), as paths relative to the cache. */
  readonly abandoned: readonly string[];
  readonly removed: readonly PrunedEntry[];
  readonly kept: readonly KeptEntry[];
  readonly limit: CacheLimitOutcome;
}

/**
 * Removes what no launch will ever use: what launches that are gone left behind, the user's entries a lookup
 * refuses or finds damaged; then evicts the least recently used entries over the cap.
 */
export async function pruneCache(store: EntryStore, options: PruneOptions = {}): Promise<PruneReport> {
  const otherFormats = removeOtherFormats(dirname(store.root), basename(store.root));
  const abandoned = cleanUpAfterGoneLaunches({
    dir: store.cacheDir,
    store,
    logsDir: join(store.cacheDir, "logs"),
  });
  const removed: PrunedEntry[] = [];
  const kept: KeptEntry[] = [];
  for (const scanned of scanEntries(store)) {
    const judged = await judgeEntry(store, scanned);
    if (!judged || judged.state === "ok") continue;
    const pruned: PrunedEntry = {
      key: judged.key,
      state: judged.state,
      detail: judged.detail,
      sizeBytes: judged.sizeBytes,
    };
    const outcome = removeEntry(store, judged.key);
    if (outcome.removed) removed.push(pruned);
    else if (outcome.reason !== "missing") kept.push({ ...pruned, keptBecause: outcome.detail });
  }
  const limit = enforceCacheLimit(
    store,
    options.maxBytes === undefined ? {} : { maxBytes: options.maxBytes },
  );
  return { otherFormats, abandoned, removed, kept, limit };
}

/** Removes the user's stores of other format versions beside the current one. */
function removeOtherFormats(cacheDir: string, current: string): { name: string; sizeBytes: number }[] {
  const uid = process.getuid?.() ?? 0;
  const removed: { name: string; sizeBytes: number }[] = [];
  let names: string[];
  try {
    names = readdirSync(cacheDir);
  } catch {
    return [];
  }
  for (const name of names) {
    if (!/^v\d+$/.test(name) || name === current) continue;
    const dir = join(cacheDir, name);
    const stat = lstatSync(dir);
    // Never what another user wrote, never through a symlink.
    if (!stat.isDirectory() || stat.uid !== uid) continue;
    const sizeBytes = measureTreeBytes(dir);
    rmSync(dir, { recursive: true, force: true });
    removed.push({ name, sizeBytes });
  }
  return removed;
}
