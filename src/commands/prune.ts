import { parseSize } from "../cache/parse-size.js";
import { type KeptEntry, pruneCache } from "../cache/prune.js";
import { describeEmptyCache, openStore, parseCommandArgs, rejectPositionals } from "./command-args.js";
import { formatBytes } from "./format.js";

const USAGE = "usage: warmstart prune [--cache-dir <dir>] [--max-cache-size <size>]";

/** `warmstart prune`: one line per thing removed or left, then what the cache holds. */
export async function runPruneCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(
    args,
    {
      "cache-dir": { type: "string" },
      "max-cache-size": { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
    USAGE,
  );
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  rejectPositionals(positionals, USAGE);
  const maxCacheSize = values["max-cache-size"];
  const maxBytes = maxCacheSize === undefined ? undefined : parseSize(maxCacheSize);
  const { cacheDir, store, isMissing } = openStore(values["cache-dir"]);
  if (isMissing) {
    process.stdout.write(`${describeEmptyCache(cacheDir, isMissing)}\n`);
    return 0;
  }
  const report = await pruneCache(store, maxBytes === undefined ? {} : { maxBytes });
  const lines = [
    ...report.otherFormats.map(
      (store) =>
        `removed ${store.name} (${formatBytes(store.sizeBytes)}): snapshots of an older warmstart, never used`,
    ),
    ...report.abandoned.map((path) => `removed ${path} (left by a launch that is gone)`),
    ...report.removed.map(
      (entry) =>
        `removed ${entry.key.slice(0, 12)} (${formatBytes(entry.sizeBytes)}): ${entry.state}: ${entry.detail}`,
    ),
    ...report.kept.map(describeKept),
    ...report.limit.evicted.map(
      (entry) =>
        `evicted ${entry.key.slice(0, 12)} (${formatBytes(entry.sizeBytes)}): least recently used, over the ${formatBytes(report.limit.maxBytes)} cap`,
    ),
    `cache: ${report.limit.entryCount} ${report.limit.entryCount === 1 ? "entry" : "entries"}, ${formatBytes(report.limit.totalBytes)} of ${formatBytes(report.limit.maxBytes)}`,
  ];
  process.stdout.write(`${lines.join("\n")}\n`);
  return 0;
}

function describeKept(entry: KeptEntry): string {
  const head = `kept ${entry.key.slice(0, 12)} (${formatBytes(entry.sizeBytes)}): ${entry.state}: ${entry.detail}`;
  // A foreign entry is refused for its owner, which is also why it stays: say it once.
  return entry.keptBecause === entry.detail
    ? `${head}; inspect it and remove it by hand`
    : `${head}; not removed: ${entry.keptBecause}`;
}
