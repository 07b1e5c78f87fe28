import { lstatSync, readdirSync, rmSync } from "node:fs";
import { basename, join } from "node:path";
import { removeAbandonedKerndatCopies } from "../criu/kerndat-cache.js";
import { removeAbandonedLocks } from "./dump-lock.js";
import type { EntryStore } from "./entry-store.js";
import { removeRetiredMemo } from "./file-hash.js";
import { removeStaleRuntimeDirs } from "./runtime-dir.js";

/** CRIU logs kept in logs/ for the warnings that point at them: the newest few, for a while. */
export const KEPT_LOGS = 20;
export const KEPT_LOG_AGE_MS = 14 * 24 * 60 * 60_000;

/**
 * What launches that are gone left behind (returned as paths relative to the cache): runtime
 * directories of launches killed with SIGKILL (their hard links would keep evicted snapshots'
 * space in use), pending dumps, half-deleted entries, locks, old logs, unfinished copies of
 * CRIU's kernel-feature cache, the hash memo of earlier versions. Run once the app is ready, off the path to it, and by `prune`.
 * Never fails a launch.
 */
export function cleanUpAfterGoneLaunches(cache: {
  readonly dir: string;
  readonly store: EntryStore;
  readonly logsDir: string;
}): string[] {
  const removed: string[] = [];
  const steps: readonly [string, () => string[]][] = [
    ["run/", () => removeStaleRuntimeDirs(cache.dir)],
    [`${basename(cache.store.root)}/`, () => cache.store.removeAbandoned()],
    [`${basename(cache.store.root)}/`, () => removeAbandonedLocks(cache.store.root)],
    ["logs/", () => pruneLogs(cache.logsDir)],
    ["kerndat/", () => removeAbandonedKerndatCopies(cache.dir)],
    ["", () => removeRetiredMemo(cache.dir)],
  ];
  for (const [where, step] of steps) {
    try {
      removed.push(...step().map((name) => `${where}${name}`));
    } catch {
      // The next launch tries again.
    }
  }
  return removed;
}

export function scheduleHousekeeping(cache: Parameters<typeof cleanUpAfterGoneLaunches>[0]): void {
  setImmediate(() => cleanUpAfterGoneLaunches(cache));
}

/** Keeps the newest KEPT_LOGS logs that are younger than KEPT_LOG_AGE_MS. */
export function pruneLogs(logsDir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(logsDir);
  } catch {
    return [];
  }
  const nowMs = Date.now();
  const logs = names
    .map((name) => ({ name, mtimeMs: mtimeOf(join(logsDir, name)) }))
    .sort((a, b) => b.mtimeMs - a.mtimeMs);
  const removed: string[] = [];
  logs.forEach((log, index) => {
    if (index < KEPT_LOGS && nowMs - log.mtimeMs < KEPT_LOG_AGE_MS) return;
    rmSync(join(logsDir, log.name), { force: true, recursive: true });
    removed.push(log.name);
  });
  return removed;
}

function mtimeOf(path: string): number {
  try {
    return lstatSync(path).mtimeMs;
  } catch {
    return 0;
  }
}
