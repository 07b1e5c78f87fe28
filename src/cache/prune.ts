import { join } from "node:path";
import { judgeEntry } from "./entry-list.js";
import { removeEntry } from "./entry-remove.js";
import { scanEntries } from "./entry-scan.js";
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
  return { abandoned, removed, kept, limit };
}
