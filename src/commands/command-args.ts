import { resolve } from "node:path";
import { type ParseArgsConfig, parseArgs } from "node:util";
import { defaultCacheDir, openCacheDir } from "../cache/cache-dir.js";
import { isKeyPrefix, resolveKeyPrefix } from "../cache/entry-select.js";
import { EntryStore } from "../cache/entry-store.js";
import { invalidOption, WarmstartError } from "../errors.js";

/**
 * parseArgs, with its errors turned into option errors that point at this command's usage
 * (the CLI's fallback hint names `warmstart help run`).
 */
export function parseCommandArgs<T extends ParseArgsConfig["options"]>(
  args: string[],
  options: T,
  usage: string,
): ReturnType<typeof parseArgs<{ args: string[]; options: T; strict: true; allowPositionals: true }>> {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: true });
  } catch (error) {
    if (error instanceof Error && "code" in error && String(error.code).startsWith("ERR_PARSE_ARGS")) {
      throw new WarmstartError("invalid-option", error.message, { hint: usage, cause: error });
    }
    throw error;
  }
}

/** The store in `--cache-dir` (or the default one), once the directory passes the safety check. */
export function openStore(cacheDirOption: string | undefined): { cacheDir: string; store: EntryStore } {
  const cacheDir = cacheDirOption === undefined ? defaultCacheDir() : resolve(cacheDirOption);
  const opened = openCacheDir(cacheDir);
  if (!opened.usable) {
    throw new WarmstartError("cache-refused", `Cache directory refused: ${opened.reason}.`, {
      hint: "it must be yours, not a symlink, and writable only by you (chmod 700); or pass another --cache-dir",
      details: { cacheDir, reason: opened.reason },
    });
  }
  return { cacheDir, store: new EntryStore(cacheDir) };
}

export function rejectPositionals(positionals: readonly string[], usage: string): void {
  const [first] = positionals;
  if (first !== undefined) {
    throw new WarmstartError("invalid-option", `Unexpected argument ${JSON.stringify(first)}.`, {
      hint: usage,
    });
  }
}

/** Checked before the cache is opened: a typo is an option error, not a missing entry. */
export function checkKeyPrefix(prefix: string): void {
  if (!isKeyPrefix(prefix)) {
    throw invalidOption("a key prefix", "1 to 64 hexadecimal digits, as `warmstart ls` shows them", prefix);
  }
}

/** The key of the one entry the prefix names; an error naming the prefix otherwise. */
export function selectEntry(store: EntryStore, prefix: string): string {
  const outcome = resolveKeyPrefix(store, prefix);
  if (outcome.found) return outcome.key;
  if (outcome.reason === "not-found") {
    throw new WarmstartError(
      "not-found",
      `No cache entry has a key starting with ${prefix} in ${store.root}.`,
      {
        hint: "'warmstart ls' shows the keys",
        details: { prefix },
      },
    );
  }
  throw new WarmstartError(
    "invalid-option",
    `Key prefix ${prefix} matches ${outcome.matches.length} cache entries: ${outcome.matches.join(", ")}.`,
    { hint: "give more digits of the key", details: { prefix, matches: outcome.matches } },
  );
}
