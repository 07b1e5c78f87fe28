import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { type ParseArgsConfig, parseArgs } from "node:util";
import { defaultCacheDir, describeUnsafePath } from "../cache/cache-dir.js";
import { isKeyPrefix, resolveKeyPrefix } from "../cache/entry-select.js";
import { EntryStore } from "../cache/entry-store.js";
import { invalidOption, WarmstartError } from "../errors.js";
import { suggestClosest } from "./suggest.js";

/**
 * parseArgs, with its errors turned into option errors in warmstart's words: an unknown
 * option names the closest known one and points at `warmstart help <command>` (Node's own
 * message quotes the flag with an unbalanced quote, and the whole usage is 50 lines).
 * An empty value is refused: `--cache-dir ''` would otherwise quietly mean a default.
 */
export function parseCommandArgs<T extends ParseArgsConfig["options"]>(
  args: string[],
  options: T,
  usage: string,
): ReturnType<typeof parseArgs<{ args: string[]; options: T; strict: true; allowPositionals: true }>> {
  let parsed: ReturnType<
    typeof parseArgs<{ args: string[]; options: T; strict: true; allowPositionals: true }>
  >;
  try {
    parsed = parseArgs({ args, options, strict: true, allowPositionals: true });
  } catch (error) {
    if (error instanceof Error && "code" in error && String(error.code).startsWith("ERR_PARSE_ARGS")) {
      throw describeParseError(error, String(error.code), Object.keys(options ?? {}), usage);
    }
    throw error;
  }
  for (const [name, value] of Object.entries(parsed.values)) {
    if (value === "" || (Array.isArray(value) && value.includes(""))) {
      throw invalidOption(`--${name}`, "a non-empty value", "");
    }
  }
  return parsed;
}

/** `run` from "Usage: warmstart run [options]...": the command a usage text is about. */
function commandOf(usage: string): string {
  return /^usage: warmstart (\S+)/i.exec(usage)?.[1] ?? "";
}

function describeParseError(error: Error, code: string, known: string[], usage: string): WarmstartError {
  const command = commandOf(usage);
  // A one-line usage is the best hint; a long one is what `help` is for.
  const hint = usage.includes("\n") ? `'warmstart help ${command}' lists its options` : usage;
  // Node quotes the flag as '--name' or '--name <value>'.
  const flag = /'(-{1,2}[^' ]+)/.exec(error.message)?.[1];
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" && flag) {
    const suggestion = suggestOption(flag, known);
    const didYouMean = suggestion ? ` (did you mean --${suggestion}?)` : "";
    return new WarmstartError("invalid-option", `Unknown option ${flag}${didYouMean}.`, {
      hint,
      cause: error,
      details: { option: flag, ...(suggestion ? { suggestion: `--${suggestion}` } : {}) },
    });
  }
  if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE" && flag) {
    const message = /argument missing/.test(error.message)
      ? `Expected ${flag} to be followed by a value, got nothing.`
      : `Expected ${flag} to be given without a value (it is a switch).`;
    return new WarmstartError("invalid-option", message, { hint, cause: error, details: { option: flag } });
  }
  return new WarmstartError("invalid-option", error.message, { hint, cause: error });
}

/** The known option a typo most likely meant: within two edits, or the only one it starts. */
function suggestOption(flag: string, known: readonly string[]): string | undefined {
  const name = flag.replace(/^-+/, "").replace(/=.*$/, "");
  const starting = known.filter((option) => name !== "" && option.startsWith(name));
  if (starting.length === 1) return starting[0];
  return suggestClosest(name, known, Math.min(2, Math.floor(name.length / 2)));
}

/**
 * The store in `--cache-dir` (or the default one), once the directory passes the safety
 * check. The cache commands only read and remove: they never create a cache (a typo in
 * --cache-dir must not leave a directory behind); a missing one is an empty store.
 */
export function openStore(cacheDirOption: string | undefined): {
  cacheDir: string;
  store: EntryStore;
  isMissing: boolean;
} {
  const cacheDir = cacheDirOption === undefined ? defaultCacheDir() : resolve(cacheDirOption);
  if (!existsSync(cacheDir)) return { cacheDir, store: new EntryStore(cacheDir), isMissing: true };
  const unsafe = describeUnsafePath(cacheDir, "directory");
  if (unsafe !== undefined) {
    throw new WarmstartError("cache-refused", `Cache directory refused: ${unsafe}.`, {
      hint: "it must be yours, not a symlink, and writable only by you (chmod 700); or pass another --cache-dir",
      details: { cacheDir, reason: unsafe },
    });
  }
  return { cacheDir, store: new EntryStore(cacheDir), isMissing: false };
}

/** What the cache commands print when they find no entry. */
export function describeEmptyCache(cacheDir: string, isMissing: boolean): string {
  return `No snapshots in ${cacheDir}${isMissing ? " (no such directory)" : ""}.`;
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
