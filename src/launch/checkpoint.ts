import { execFile } from "node:child_process";
import { copyFileSync, mkdirSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { tryAcquireDumpLock } from "../cache/dump-lock.js";
import type { CacheEntry, EntryStore, Manifest } from "../cache/entry-store.js";
import { toDumpFlags } from "../criu/criu-flags.js";
import { readCriuErrors } from "../criu/criu-log.js";
import { waitForConnectionsClosed } from "./wait-connections-closed.js";

export interface CheckpointOptions {
  readonly criuPath: string;
  /** Runs CRIU inside the app's network namespace (a prewarm's private one). */
  readonly criuPrefix: readonly string[];
  readonly store: EntryStore;
  readonly logsDir: string;
  readonly pid: number;
  readonly manifest: Omit<Manifest, "files" | "imageBytes" | "pid" | "stdio" | "checkpointMs" | "createdAt">;
}

export type CheckpointOutcome =
  | { readonly saved: true; readonly entry: CacheEntry; readonly checkpointMs: number }
  | { readonly saved: false; readonly reason: "lost-race"; readonly checkpointMs: number }
  | {
      readonly saved: false;
      readonly reason: "dump-failed" | "app-not-pipes";
      readonly errors: readonly string[];
      readonly logPath?: string;
      readonly checkpointMs: number;
    };

/**
 * Checkpoints the running app with `criu dump --leave-running` into a pending directory and
 * commits it as a cache entry. The app keeps serving; it is frozen only while CRIU copies it.
 */
export async function checkpointApp(options: CheckpointOptions): Promise<CheckpointOutcome> {
  const startedMs = performance.now();
  const elapsed = () => Math.round(performance.now() - startedMs);
  let stdio: string[];
  try {
    stdio = [0, 1, 2].map((fd) => readlinkSync(`/proc/${options.pid}/fd/${fd}`));
  } catch (error) {
    return {
      saved: false,
      reason: "app-not-pipes",
      errors: [(error as Error).message],
      checkpointMs: elapsed(),
    };
  }
  // The app may have replaced its stdio (daemonizing, reopening a log file): the restore
  // could not hand it fresh pipes, so its output would be lost. Not worth a snapshot.
  if (!stdio.every((link) => /^pipe:\[\d+\]$/.test(link))) {
    return {
      saved: false,
      reason: "app-not-pipes",
      errors: [`the app's stdio is no longer the pipes warmstart gave it: ${stdio.join(", ")}`],
      checkpointMs: elapsed(),
    };
  }
  const lock = tryAcquireDumpLock(options.store.root, options.manifest.key);
  if (!lock) return { saved: false, reason: "lost-race", checkpointMs: elapsed() };
  try {
    // Another launch of the same key may have committed while this one was starting.
    if (options.store.hasEntry(options.manifest.key))
      return { saved: false, reason: "lost-race", checkpointMs: elapsed() };
    return await dumpAndCommit(options, stdio, elapsed);
  } finally {
    lock.release();
  }
}

async function dumpAndCommit(
  options: CheckpointOptions,
  stdio: string[],
  elapsed: () => number,
): Promise<CheckpointOutcome> {
  await waitForConnectionsClosed(options.pid, 1000);
  const pending = options.store.createPending(options.manifest.key);
  const logPath = join(pending.dir, "dump.log");
  const flags = toDumpFlags({
    pid: options.pid,
    imagesDir: pending.imagesDir,
    logFile: logPath,
    logLevel: 4,
    leaveRunning: true,
  });
  const failure = await new Promise<string | undefined>((resolve) => {
    const [file, ...args] = [...options.criuPrefix, options.criuPath, ...flags];
    execFile(file ?? options.criuPath, args, { timeout: 120_000 }, (error, _stdout, stderr) =>
      resolve(error ? `${stderr}`.trim() || error.message : undefined),
    );
  });
  if (failure !== undefined) {
    const errors = await readCriuErrors(logPath);
    mkdirSync(options.logsDir, { recursive: true, mode: 0o700 });
    const keptLog = join(options.logsDir, `dump-${options.manifest.key.slice(0, 12)}.log`);
    try {
      copyFileSync(logPath, keptLog);
    } catch {
      // No log was written (criu failed to start): the stderr line says why.
    }
    options.store.discardPending(pending.dir);
    return {
      saved: false,
      reason: "dump-failed",
      errors: errors.length > 0 ? errors : [failure],
      logPath: keptLog,
      checkpointMs: elapsed(),
    };
  }
  let entry: CacheEntry | undefined;
  try {
    entry = await options.store.commit(pending.dir, {
      ...options.manifest,
      pid: options.pid,
      stdio,
      createdAt: new Date().toISOString(),
      checkpointMs: elapsed(),
    });
  } catch (error) {
    // Typically ENOSPC while writing the manifest: nothing half-written may stay behind.
    options.store.discardPending(pending.dir);
    return {
      saved: false,
      reason: "dump-failed",
      errors: [(error as Error).message],
      checkpointMs: elapsed(),
    };
  }
  if (!entry) return { saved: false, reason: "lost-race", checkpointMs: elapsed() };
  return { saved: true, entry, checkpointMs: elapsed() };
}
