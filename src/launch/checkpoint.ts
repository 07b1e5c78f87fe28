import { copyFileSync, mkdirSync, readlinkSync, statfsSync } from "node:fs";
import { join } from "node:path";
import { tryAcquireDumpLock } from "../cache/dump-lock.js";
import type { CacheEntry, EntryStore, Manifest } from "../cache/entry-store.js";
import { readCriuErrors } from "../criu/criu-log.js";
import {
  type CommandLine,
  criuDump,
  dieWithParentAsGroup,
  inMountNamespaceOf,
  inNetworkOf,
} from "../exec/command-lines.js";
import { describeExit, spawnOwned } from "../exec/owned-process.js";
import {
  afterCheckpoint,
  beforeCheckpoint,
  type ControlChannel,
  type RuntimeContext,
} from "../runtime/app-runtime.js";
import type { RuntimeManifest } from "../runtime/runtime-manifest.js";
import { listListeningSockets } from "./proc-sockets.js";
import { waitForConnectionsClosed } from "./wait-connections-closed.js";

export interface CheckpointOptions {
  readonly criuPath: string;
  /** Dump from inside the app's network namespace (a prewarm's private one). */
  readonly isNetworkIsolated: boolean;
  /** The app runs in a private mount namespace (a recorded cold start): CRIU dumps from it. */
  readonly isMountPrivate: boolean;
  /** CRIU is not guarded by the parent-death signal: the launch waits for it before exiting. */
  readonly isDetached: boolean;
  readonly store: EntryStore;
  readonly logsDir: string;
  readonly pid: number;
  /** Replace an existing entry of the key once the new one is complete (--refresh). */
  readonly isReplacing: boolean;
  /** Aborting stops CRIU and abandons the snapshot (warmstart is being stopped). */
  readonly signal: AbortSignal;
  /** Called when the dump is done and its images are being sealed into the cache. */
  readonly onCommitting?: () => void;
  /**
   * Looks at the app just before the dump (pre-flight: what CRIU cannot carry), and returns
   * what explains a failed dump's CRIU errors, if anything does.
   */
  readonly inspect?: (pid: number) => Promise<(errors: readonly string[]) => DumpExplanation | undefined>;
  readonly manifest: Omit<
    Manifest,
    "files" | "imageBytes" | "pid" | "stdio" | "checkpointMs" | "createdAt" | "listen" | "runtime"
  >;
  /** The in-app runtime and the hooks: asked before the dump, told after it. */
  readonly runtime?: { readonly channel: ControlChannel | undefined; readonly context: RuntimeContext };
}

/** Pre-flight's reading of a failed dump: the finding in plain words, and its fix if any. */
export interface DumpExplanation {
  readonly text: string;
  readonly fixEnv?: Readonly<Record<string, string>>;
}

export type CheckpointOutcome =
  | { readonly saved: true; readonly entry: CacheEntry; readonly checkpointMs: number }
  | {
      readonly saved: false;
      readonly reason: "lost-race";
      readonly holder: string;
      readonly checkpointMs: number;
    }
  /** warmstart was stopped while it dumped: nothing was kept. */
  | { readonly saved: false; readonly reason: "abandoned"; readonly checkpointMs: number }
  | {
      readonly saved: false;
      /** hook-failed: a checkpoint hook failed or timed out, or the app's runtime did not answer. */
      readonly reason: "dump-failed" | "app-not-pipes" | "lock-failed" | "commit-failed" | "hook-failed";
      readonly errors: readonly string[];
      /** What in the app explains the failure, in plain words (pre-flight's finding). */
      readonly explanation?: string;
      /** Variables that would have avoided it, for the next cold start (pre-flight's fix). */
      readonly fixEnv?: Readonly<Record<string, string>>;
      readonly logPath?: string;
      readonly checkpointMs: number;
    };

/** A dump of several GB takes tens of seconds; one that takes longer is stuck. */
const DUMP_TIMEOUT_MS = 10 * 60_000;

/** How long the dump's guard gets to kill its group before it is sent SIGKILL itself. */
const GUARD_GRACE_MS = 2_000;

/**
 * Checkpoints the running app with `criu dump --leave-running` into a pending directory and
 * commits it as a cache entry. The app keeps serving; it is frozen only while CRIU copies it.
 * Never throws: every failure is an outcome, and the lock and the pending directory are
 * released on every path.
 */
export async function checkpointApp(options: CheckpointOptions): Promise<CheckpointOutcome> {
  const startedMs = performance.now();
  const elapsed = () => Math.round(performance.now() - startedMs);
  const stdio = readStdio(options.pid);
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
  const locked = tryAcquireDumpLock(options.store.root, options.manifest.key);
  if (!locked.isAcquired) {
    return locked.reason === "held"
      ? { saved: false, reason: "lost-race", holder: locked.holder, checkpointMs: elapsed() }
      : { saved: false, reason: "lock-failed", errors: [locked.detail], checkpointMs: elapsed() };
  }
  try {
    // Another launch of the same key may have committed while this one was starting.
    if (!options.isReplacing && options.store.hasEntry(options.manifest.key))
      return { saved: false, reason: "lost-race", holder: "an earlier launch", checkpointMs: elapsed() };
    return await dumpAndCommit(options, stdio, elapsed);
  } catch (error) {
    // A full disk, a directory that vanished: reported, never thrown at a serving app.
    return { saved: false, reason: "commit-failed", errors: [messageOf(error)], checkpointMs: elapsed() };
  } finally {
    locked.lock.release();
  }
}

async function dumpAndCommit(
  options: CheckpointOptions,
  stdio: string[],
  elapsed: () => number,
): Promise<CheckpointOutcome> {
  await waitForConnectionsClosed(options.pid, 1000);
  const { runtime } = options;
  const prepared = runtime
    ? await beforeCheckpoint(runtime.channel, options.pid, runtime.context)
    : undefined;
  if (prepared && !prepared.isReady) {
    // warmstart stopped meanwhile takes the app down: its runtime never answering is that
    // stop, not a hook's failure (which would say the app keeps serving).
    if (options.signal.aborted) return { saved: false, reason: "abandoned", checkpointMs: elapsed() };
    return { saved: false, reason: "hook-failed", errors: [prepared.detail], checkpointMs: elapsed() };
  }
  // The app's runtimes are blocked from here until they are told how the dump went: on every
  // path, as soon as it is over (not after the commit: they wait for no hashing).
  let isReleased = false;
  const release = (isDumped: boolean): string | undefined => {
    if (isReleased || !prepared?.isReady) return undefined;
    isReleased = true;
    return afterCheckpoint(runtime?.channel, prepared, isDumped);
  };
  try {
    return await dumpBlocked(
      options,
      stdio,
      elapsed,
      release,
      prepared?.isReady ? prepared.manifest : undefined,
    );
  } finally {
    release(false);
  }
}

async function dumpBlocked(
  options: CheckpointOptions,
  stdio: string[],
  elapsed: () => number,
  release: (isDumped: boolean) => string | undefined,
  runtime: RuntimeManifest | undefined,
): Promise<CheckpointOutcome> {
  // After the hooks (a pool they closed is no finding), before the dump.
  const explain = await options.inspect?.(options.pid);
  const pending = options.store.createPending(options.manifest.key);
  try {
    const logPath = join(pending.dir, "dump.log");
    const listen = listListeningSockets(options.pid);
    const dump = criuDump(options.criuPath, {
      pid: options.pid,
      imagesDir: pending.imagesDir,
      logFile: logPath,
      logLevel: 4,
      leaveRunning: true,
    });
    const inMounts = options.isMountPrivate ? inMountNamespaceOf(options.pid, dump) : dump;
    const command: CommandLine = options.isNetworkIsolated ? inNetworkOf(options.pid, inMounts) : inMounts;
    const exit = await spawnToEnd(command, options);
    const unsafe = release(exit.reason !== "aborted" && exit.code === 0);
    if (exit.reason === "aborted") return { saved: false, reason: "abandoned", checkpointMs: elapsed() };
    if (exit.code !== 0) {
      const logged = await readCriuErrors(logPath);
      const errors = logged.length > 0 ? logged : [exit.stderr.trim() || `criu dump: ${describeExit(exit)}`];
      // A full disk truncates CRIU's own log (it is written there too): say it from statfs.
      const fullDisk = describeFullDisk(pending.dir);
      const explained = fullDisk ? { text: fullDisk } : explain?.(errors);
      return {
        saved: false,
        reason: "dump-failed",
        errors,
        ...(explained ? { explanation: explained.text } : {}),
        ...(explained?.fixEnv ? { fixEnv: explained.fixEnv } : {}),
        ...keepLog(logPath, options),
        checkpointMs: elapsed(),
      };
    }
    if (unsafe !== undefined)
      return { saved: false, reason: "hook-failed", errors: [unsafe], checkpointMs: elapsed() };
    options.onCommitting?.();
    const committed = await options.store.commit(
      pending.dir,
      {
        ...options.manifest,
        pid: options.pid,
        stdio,
        listen,
        ...(runtime ? { runtime } : {}),
        createdAt: new Date().toISOString(),
        checkpointMs: elapsed(),
      },
      { replace: options.isReplacing },
    );
    if (!committed.isCommitted) {
      return { saved: false, reason: "lost-race", holder: "another launch", checkpointMs: elapsed() };
    }
    return { saved: true, entry: committed.entry, checkpointMs: elapsed() };
  } finally {
    // Renamed into the cache when committed; otherwise nothing of it may stay behind.
    options.store.discardPending(pending.dir);
  }
}

async function spawnToEnd(command: CommandLine, options: CheckpointOptions) {
  // A detached dump must outlive warmstart; any other dies with it, helpers included.
  const owned = spawnOwned(options.isDetached ? command : dieWithParentAsGroup(command), {
    stdio: ["ignore", "ignore", "pipe"],
    timeoutMs: DUMP_TIMEOUT_MS,
    // Stopped at once, a CRIU killed mid-dump lets the frozen app go on: SIGTERM to the guard
    // kills its whole group with SIGKILL (SIGKILL to the guard itself would spare CRIU's
    // helpers). Unguarded, SIGKILL at once.
    isSessionLeader: !options.isDetached,
    killGraceMs: options.isDetached ? 0 : GUARD_GRACE_MS,
    signal: options.signal,
  });
  let stderr = "";
  owned.child.stderr?.on("data", (chunk) => {
    stderr += chunk;
  });
  return { ...(await owned.exited), stderr };
}

/** The dump log of a failed dump, kept in logs/ for the warning to point at. */
function keepLog(logPath: string, options: CheckpointOptions): { logPath?: string } {
  try {
    mkdirSync(options.logsDir, { recursive: true, mode: 0o700 });
    const kept = join(options.logsDir, `dump-${options.manifest.key.slice(0, 12)}.log`);
    copyFileSync(logPath, kept);
    return { logPath: kept };
  } catch {
    // No log was written (criu failed to start): the stderr line says why.
    return {};
  }
}

/** Below this much free space the cache's filesystem is called full. */
const FULL_DISK_BYTES = 4 * 1024 * 1024;

function describeFullDisk(path: string): string | undefined {
  try {
    const fs = statfsSync(path);
    const freeBytes = fs.bavail * fs.bsize;
    if (freeBytes >= FULL_DISK_BYTES) return undefined;
    return `the cache's filesystem is full: No space left on the device (ENOSPC), ${Math.round(freeBytes / 1024)} KiB free of ${Math.round((fs.blocks * fs.bsize) / 1048576)} MiB`;
  } catch {
    return undefined;
  }
}

function readStdio(pid: number): string[] {
  return [0, 1, 2].map((fd) => {
    try {
      return readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch (error) {
      return `fd ${fd}: ${(error as NodeJS.ErrnoException).code ?? messageOf(error)}`;
    }
  });
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
