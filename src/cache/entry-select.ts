import { listEntryKeys } from "./entry-scan.js";
import type { EntryStore } from "./entry-store.js";

export type KeyPrefixOutcome =
  | { readonly found: true; readonly key: string }
  | { readonly found: false; readonly reason: "not-found" }
  | { readonly found: false; readonly reason: "ambiguous"; readonly matches: readonly string[] };

/** The one entry whose key starts with prefix (as `ls` shows keys: 12 hex digits, or fewer). */
export function resolveKeyPrefix(store: EntryStore, prefix: string): KeyPrefixOutcome {
  const matches = listEntryKeys(store).filter((key) => key.startsWith(prefix.toLowerCase()));
  const [only] = matches;
  if (only === undefined) return { found: false, reason: "not-found" };
  if (matches.length > 1) return { found: false, reason: "ambiguous", matches };
  return { found: true, key: only };
}

export function isKeyPrefix(text: string): boolean {
  return /^[0-9a-f]{1,64}$/i.test(text);
}
