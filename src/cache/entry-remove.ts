import { lstatSync } from "node:fs";
import { scanEntry } from "./entry-scan.js";
import type { EntryStore } from "./entry-store.js";

export type RemoveOutcome =
  | { readonly removed: true; readonly key: string; readonly sizeBytes: number }
  | { readonly removed: false; readonly key: string; readonly reason: "missing" }
  | {
      readonly removed: false;
      readonly key: string;
      readonly reason: "foreign-owned" | "failed";
      readonly detail: string;
    };

/**
 * Evicts an entry the user owns. Another user's entry in this cache is left for a person to
 * look at: warmstart never deletes what it did not write.
 */
export function removeEntry(store: EntryStore, key: string): RemoveOutcome {
  const scanned = scanEntry(store, key);
  if (!scanned) return { removed: false, key, reason: "missing" };
  if (!scanned.isOwnedByUser) {
    const uid = process.getuid?.() ?? 0;
    return {
      removed: false,
      key,
      reason: "foreign-owned",
      detail: `${scanned.dir} is owned by uid ${scanned.ownerUid}, not by you (uid ${uid})`,
    };
  }
  try {
    store.evict(key);
  } catch (error) {
    // Renamed away, so no launch sees it; what is left is an abandoned dir for `prune`.
    return { removed: false, key, reason: "failed", detail: (error as Error).message };
  }
  if (isPresent(scanned.dir)) {
    return { removed: false, key, reason: "failed", detail: `${scanned.dir} could not be renamed away` };
  }
  return { removed: true, key, sizeBytes: scanned.sizeBytes };
}

function isPresent(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}
