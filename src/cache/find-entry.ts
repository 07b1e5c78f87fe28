import { join } from "node:path";
import { describeChangedInput, findChangedInput } from "../inputs/discovered-inputs.js";
import { STAMPS_FILE } from "../inputs/native-stamps.js";
import { listEntryKeys } from "./entry-scan.js";
import type { CacheEntry, EntryStore, LookupOutcome } from "./entry-store.js";
import type { FileHashIndex } from "./file-hash.js";
import { baseKeySuffix, type CacheKeyFields, diffHostFields } from "./key.js";

export type FindOutcome =
  | {
      readonly hit: true;
      readonly entry: CacheEntry;
      /** The entry's discovered inputs are still to be checked (checkInputs): asked for with
       * areInputsDeferred, so that the launch restores while it checks them. */
      readonly isInputsUnchecked: boolean;
    }
  /** No entry fits; `explanation` says why, against the newest entry of this base key. */
  | { readonly hit: false; readonly reason: "missing"; readonly explanation: string }
  | {
      readonly hit: false;
      readonly reason: "refused" | "corrupt";
      readonly key: string;
      readonly detail: string;
      readonly dir: string;
    };

export interface FindOptions {
  /** Return the newest entry whose other checks hold with its inputs unchecked (when it has
   * any): its restore and the check of its inputs then overlap (warm-path.ts). */
  readonly areInputsDeferred?: boolean;
  /** Entries this launch already found unfit (newest first), and why the newest of them was. */
  readonly unfit?: UnfitEntries;
  /** The launch would inject warmstart's in-app runtime: an entry taken without one (under
   * --no-runtime) is passed over, since its copies cannot reseed and would share the
   * snapshot's random state. The runtime is not part of the key (a snapshot keeps the one it
   * was taken with across upgrades), so this is decided here. */
  readonly isRuntimeWanted?: boolean;
}

/** Why an entry taken without the runtime does not do for a launch that wants one. */
export const WITHOUT_RUNTIME =
  "the snapshot was taken without warmstart's runtime (--no-runtime): its copies would not reseed";

export interface UnfitEntries {
  readonly keys: ReadonlySet<string>;
  readonly explanation: string;
}

/**
 * The newest entry under the base key that this launch can restore: sound (the store's own
 * checks), made on a host like this one, and from inputs that are all still as they were.
 * Several entries may live under one base key (a branch checked out and back, two cgroups);
 * the newest valid one wins. A refused or damaged entry is reported only when no other
 * entry could be used, so that one bad entry does not hide a good one.
 */
export async function findEntry(
  store: EntryStore,
  baseKey: string,
  fields: CacheKeyFields,
  hashes: FileHashIndex,
  options: FindOptions = {},
): Promise<FindOutcome> {
  const found: CacheEntry[] = [];
  let problem: (LookupOutcome & { readonly hit: false; readonly reason: "refused" | "corrupt" }) | undefined;
  let problemKey = "";
  for (const key of listEntryKeysOf(store, baseKey)) {
    if (options.unfit?.keys.has(key)) continue;
    const outcome = await store.lookup(key, hashes);
    if (outcome.hit) {
      if (outcome.entry.manifest.baseKey === baseKey) found.push(outcome.entry);
    } else if (outcome.reason !== "missing" && !problem) {
      problem = outcome;
      problemKey = key;
    }
  }
  found.sort((a, b) => (a.manifest.createdAt < b.manifest.createdAt ? 1 : -1));
  let explanation = options.unfit?.explanation;
  for (const entry of found) {
    const hostChanges = diffHostFields(entry.manifest.fields.host, fields.host);
    if (hostChanges.length > 0) {
      explanation ??= hostChanges.join(", ");
      continue;
    }
    if (options.isRuntimeWanted === true && entry.manifest.runtime === undefined) {
      explanation ??= WITHOUT_RUNTIME;
      continue;
    }
    const isInputsUnchecked =
      options.areInputsDeferred === true && entry.manifest.discovered.files.length > 0;
    const why = isInputsUnchecked ? undefined : await checkInputs(entry, hashes);
    if (why === undefined) return { hit: true, entry, isInputsUnchecked };
    explanation ??= why;
  }
  if (problem) return { ...problem, key: problemKey };
  return { hit: false, reason: "missing", explanation: explanation ?? store.explainMiss(fields) };
}

/** Which of the entry's discovered inputs is no longer as recorded, or undefined when none. */
export async function checkInputs(entry: CacheEntry, hashes: FileHashIndex): Promise<string | undefined> {
  try {
    const changed = await findChangedInput(entry.manifest.discovered, hashes, {
      stampsFile: join(entry.dir, STAMPS_FILE),
    });
    return changed && describeChangedInput(changed);
  } catch (error) {
    // A stat refused (EACCES, ELOOP): the inputs cannot be shown to hold.
    return `an input cannot be checked: ${(error as Error).message}`;
  }
}

/** The keys of every entry under a base key. */
export function listEntryKeysOf(store: EntryStore, baseKey: string): string[] {
  const suffix = baseKeySuffix(baseKey);
  return listEntryKeys(store).filter((key) => key.endsWith(suffix));
}

/** Removes every entry under a base key but `kept` (`--refresh` replaces them). */
export function evictEntriesOf(store: EntryStore, baseKey: string, kept: string): void {
  for (const key of listEntryKeysOf(store, baseKey)) if (key !== kept) store.evict(key);
}
