import { type ListedEntry, listCacheEntries } from "../cache/entry-list.js";
import type { Manifest } from "../cache/entry-store.js";
import { listDiscoveredPaths } from "../inputs/discovered-inputs.js";
import { listServing, type ServeStatus } from "../serve/serve-status.js";
import { describeEmptyCache, openStore, parseCommandArgs, rejectPositionals } from "./command-args.js";
import { formatBytes, formatCommand, formatDirectory, formatDuration, renderTable } from "./format.js";

const USAGE = "usage: warmstart ls [--cache-dir <dir>] [--json]";

// The directory tells apart two `node server.js` of different apps; it is part of the key.
const HEADER = [
  "KEY",
  "COMMAND",
  "DIRECTORY",
  "SIZE",
  "AGE",
  "LAST USED",
  "HITS",
  "COLD MS",
  "WARM MS",
  "INPUTS",
] as const;
const NUMERIC_COLUMNS = new Set([3, 4, 5, 6, 7, 8, 9]);

/** `warmstart ls`: one line per entry, most recently used first; refused ones are never trusted. */
export async function runLsCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(
    args,
    {
      "cache-dir": { type: "string" },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    USAGE,
  );
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  rejectPositionals(positionals, USAGE);
  const { cacheDir, store, isMissing } = openStore(values["cache-dir"]);
  const entries = await listCacheEntries(store);
  const serving = isMissing ? [] : listServing(cacheDir);
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ cacheDir, entries: entries.map(toJson), serving }, null, 2)}\n`);
    return 0;
  }
  if (serving.length > 0) process.stdout.write(`${renderServing(serving).join("\n")}\n\n`);
  if (entries.length === 0) {
    process.stdout.write(`${describeEmptyCache(cacheDir, isMissing)}\n`);
    return 0;
  }
  const nowMs = Date.now();
  const lines = renderTable(
    HEADER,
    entries.map((entry) => toRow(entry, nowMs)),
    NUMERIC_COLUMNS,
  );
  process.stdout.write(`${lines.join("\n")}\n`);
  return 0;
}

/** What `warmstart serve` processes on this cache serve now. */
function renderServing(serving: readonly ServeStatus[]): string[] {
  const header = [
    "SERVE PID",
    "LISTEN",
    "COMMAND",
    "DIRECTORY",
    "INSTANCES",
    "SPARE",
    "IDLE AFTER",
    "RESTORES",
  ] as const;
  const rows = serving.map((status) => [
    String(status.pid),
    status.listen.join(","),
    formatCommand(status.command),
    formatDirectory(status.cwd),
    status.instances.length > 0 ? `${status.instances.length} (pid ${status.instances.join(", ")})` : "0",
    status.sparePid === null ? "-" : `pid ${status.sparePid}`,
    status.idleMs === 0 ? "never" : formatDuration(status.idleMs),
    String(status.restores),
  ]);
  return renderTable(header, rows, new Set([0, 7]));
}

function toRow(entry: ListedEntry, nowMs: number): string[] {
  const key = entry.key.slice(0, 12);
  if (entry.state !== "ok") return [key, `${entry.state}: ${entry.detail}`];
  return [
    key,
    formatCommand(entry.manifest.command),
    formatDirectory(entry.manifest.fields.cwd),
    formatBytes(entry.sizeBytes),
    formatDuration(nowMs - Date.parse(entry.manifest.createdAt)),
    `${formatDuration(nowMs - Date.parse(entry.lastUsedAt))} ago`,
    String(entry.hits),
    String(entry.coldReadyMs),
    entry.warmReadyMs === null
      ? "-"
      : `${entry.warmReadyMs}${entry.isWarmNotFaster ? " (not faster: runs cold)" : ""}`,
    describeInputs(entry.manifest),
  ];
}

function toJson(entry: ListedEntry): Record<string, unknown> {
  if (entry.state !== "ok") {
    return {
      key: entry.key,
      state: entry.state,
      detail: entry.detail,
      sizeBytes: entry.sizeBytes,
      ownerUid: entry.ownerUid,
    };
  }
  return {
    key: entry.key,
    state: entry.state,
    command: entry.manifest.command,
    cwd: entry.manifest.fields.cwd,
    sizeBytes: entry.sizeBytes,
    imageBytes: entry.manifest.imageBytes,
    createdAt: entry.manifest.createdAt,
    lastUsedAt: entry.lastUsedAt,
    hits: entry.hits,
    coldReadyMs: entry.coldReadyMs,
    warmReadyMs: entry.warmReadyMs,
    bestWarmReadyMs: entry.bestWarmReadyMs,
    // Launches of this entry go cold: its warm start was measured no faster.
    isWarmNotFaster: entry.isWarmNotFaster,
    baseKey: entry.manifest.baseKey,
    host: entry.manifest.fields.host,
    // What its cold start was seen reading: a change to any of them makes a launch miss it.
    inputs: {
      mode: entry.manifest.discovered.mode,
      declared: Object.keys(entry.manifest.fields.inputs),
      discovered: listDiscoveredPaths(entry.manifest.discovered),
    },
  };
}

/** How many inputs the entry checks; "(proc)" when they were read from /proc at dump time,
 * without fanotify, so files read and closed during startup are not among them. */
function describeInputs(manifest: Manifest): string {
  const count = manifest.discovered.files.length + Object.keys(manifest.fields.inputs).length;
  return manifest.discovered.mode === "proc" ? `${count} (proc)` : String(count);
}
