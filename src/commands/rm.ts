import { removeEntry } from "../cache/entry-remove.js";
import { listEntryKeys } from "../cache/entry-scan.js";
import { WarmstartError } from "../errors.js";
import {
  checkKeyPrefix,
  describeEmptyCache,
  openStore,
  parseCommandArgs,
  selectEntry,
} from "./command-args.js";
import { formatBytes } from "./format.js";

const USAGE = "usage: warmstart rm <key-prefix>... | --all [--cache-dir <dir>]";

/** `warmstart rm`: every prefix is resolved before anything is removed, so a typo removes nothing. */
export async function runRmCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(
    args,
    {
      all: { type: "boolean", default: false },
      "cache-dir": { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
    USAGE,
  );
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (values.all === positionals.length > 0) {
    throw new WarmstartError(
      "invalid-option",
      values.all
        ? "Expected key prefixes or --all, got both."
        : "Expected a key prefix or --all, got nothing.",
      { hint: USAGE },
    );
  }
  for (const prefix of positionals) checkKeyPrefix(prefix);
  const { cacheDir, store, isMissing } = openStore(values["cache-dir"]);
  const keys = values.all
    ? listEntryKeys(store)
    : [...new Set(positionals.map((p) => selectEntry(store, p)))];
  if (keys.length === 0) {
    process.stdout.write(`${describeEmptyCache(cacheDir, isMissing)}\n`);
    return 0;
  }
  let exitCode = 0;
  for (const key of keys) {
    const outcome = removeEntry(store, key);
    if (outcome.removed) {
      process.stdout.write(`removed ${key.slice(0, 12)} (${formatBytes(outcome.sizeBytes)})\n`);
    } else if (outcome.reason !== "missing") {
      exitCode = 1;
      const why = outcome.reason === "foreign-owned" ? "inspect it and remove it by hand" : "try again";
      process.stderr.write(`warmstart: kept ${key.slice(0, 12)}: ${outcome.detail}; ${why}\n`);
    }
  }
  return exitCode;
}
