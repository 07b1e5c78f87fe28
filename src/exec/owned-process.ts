import { type ChildProcess, type StdioOptions, spawn } from "node:child_process";
import { constants } from "node:os";
import type { Readable } from "node:stream";
import type { CommandLine } from "./command-lines.js";
import { type NativeSpawnOptions, posixSpawn, tryReap } from "./native-spawn.js";

/**
 * The one place warmstart spawns processes. Each spawned process is owned: it has a timeout
 * if it should not run forever, it is stopped with SIGTERM then SIGKILL (never left
 * half-stopped), and it is killed when warmstart exits, unless it is meant to outlive it
 * (`--detach`). Failures to spawn, time-outs and aborts are outcomes on `exited`, never
 * exceptions or unhandled events.
 */
export interface OwnedSpawnOptions {
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  /** Default: all ignored. */
  readonly stdio?: StdioOptions;
  /** A session (and process group) of its own: terminal signals reach it only through us,
   * and CRIU can dump it without --shell-job. */
  readonly isSessionLeader?: boolean;
  /** Killed when warmstart exits (default). False for what `--detach` leaves running. */
  readonly isKilledAtExit?: boolean;
  /** Stopped (SIGTERM, then SIGKILL after killGraceMs) when it runs longer. */
  readonly timeoutMs?: number;
  /** How long a SIGTERM gets before SIGKILL; default 5 s. */
  readonly killGraceMs?: number;
  /** Aborting stops it like a time-out does. */
  readonly signal?: AbortSignal;
}

export interface ProcessExit {
  /** null when a signal ended it (or it never started). */
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** Why it ended, as far as warmstart is concerned. */
  readonly reason: "exited" | "timed-out" | "aborted" | "spawn-failed";
  /** The spawn error, for "spawn-failed". */
  readonly error?: Error;
}

/** A process warmstart owns, however it was spawned. */
export interface OwnedHandle {
  /** -1 when it could not be spawned. */
  readonly pid: number;
  /** Resolves once the process runs, or with the reason it could not start. */
  readonly started: Promise<
    { readonly isStarted: true } | { readonly isStarted: false; readonly error: Error }
  >;
  /** Settles when it has exited and its stdio pipes are drained. Never rejects. */
  readonly exited: Promise<ProcessExit>;
  hasExited(): boolean;
  /** Sends a signal if it still runs. */
  kill(signal: NodeJS.Signals): void;
  /** SIGTERM (or `signal`), then SIGKILL after the grace period; resolves when it is gone. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<ProcessExit>;
}

/** A process spawned through Node: its ChildProcess has the stdio streams. */
export interface OwnedProcess extends OwnedHandle {
  readonly child: ChildProcess;
}

const DEFAULT_KILL_GRACE_MS = 5_000;

/** Processes to kill if warmstart exits while they run. */
const killedAtExit = new Set<OwnedHandle>();
let isExitHookInstalled = false;

function installExitHook(): void {
  if (isExitHookInstalled) return;
  isExitHookInstalled = true;
  // Synchronous by necessity: nothing asynchronous runs after "exit". SIGKILL to the process
  // group when it leads one, so what it started goes too.
  process.on("exit", () => {
    for (const owned of killedAtExit) killQuietly(owned, "SIGKILL");
  });
}

function killQuietly(owned: OwnedHandle, signal: NodeJS.Signals): void {
  if (owned.pid <= 0 || owned.hasExited()) return;
  try {
    process.kill(isGroupLeader.has(owned) ? -owned.pid : owned.pid, signal);
  } catch {
    // Gone already.
  }
}

const isGroupLeader = new WeakSet<OwnedHandle>();

export function spawnOwned(command: CommandLine, options: OwnedSpawnOptions = {}): OwnedProcess {
  const [file, ...args] = command;
  const child = spawn(file, args, {
    env: options.env ?? process.env,
    ...(options.cwd ? { cwd: options.cwd } : {}),
    stdio: options.stdio ?? "ignore",
    detached: options.isSessionLeader ?? false,
  });
  let hasExited = false;
  let endReason: ProcessExit["reason"] = "exited";
  let spawnError: Error | undefined;
  const started = new Promise<{ isStarted: true } | { isStarted: false; error: Error }>((resolve) => {
    child.once("spawn", () => resolve({ isStarted: true }));
    child.once("error", (error) => {
      // After a successful spawn, "error" means a failed kill: not a start failure.
      if (child.pid === undefined) {
        spawnError = error;
        resolve({ isStarted: false, error });
      }
    });
  });
  const exited = new Promise<ProcessExit>((resolve) => {
    const finish = (code: number | null, signal: NodeJS.Signals | null) => {
      if (hasExited) return;
      hasExited = true;
      timer.dispose();
      killedAtExit.delete(owned);
      resolve({
        code,
        signal,
        reason: spawnError ? "spawn-failed" : endReason,
        ...(spawnError ? { error: spawnError } : {}),
      });
    };
    child.once("close", finish);
    void started.then((outcome) => {
      if (!outcome.isStarted) finish(null, null);
    });
  });

  let stopping: Promise<ProcessExit> | undefined;
  const owned: OwnedProcess = {
    child,
    pid: child.pid ?? -1,
    started,
    exited,
    hasExited: () => hasExited,
    kill(signal) {
      if (hasExited || child.pid === undefined) return;
      try {
        child.kill(signal);
      } catch {
        // Exited meanwhile; "close" follows.
      }
    },
    stop(signal = "SIGTERM", graceMs = options.killGraceMs ?? DEFAULT_KILL_GRACE_MS) {
      stopping ??= stopWithGrace(owned, signal, graceMs);
      return stopping;
    },
  };
  own(owned, options);
  const timer = stopOnTimeoutOrAbort(owned, options, (reason) => {
    endReason = reason;
  });
  return owned;
}

/** Signals reach its process group if it leads one; it is killed at exit unless told not to. */
function own(
  owned: OwnedHandle,
  options: { readonly isSessionLeader?: boolean; readonly isKilledAtExit?: boolean },
): void {
  if (options.isSessionLeader) isGroupLeader.add(owned);
  if (options.isKilledAtExit ?? true) {
    installExitHook();
    killedAtExit.add(owned);
  }
}

/** `signal`, then SIGKILL after `graceMs`; resolves with the exit. */
async function stopWithGrace(
  owned: OwnedHandle,
  signal: NodeJS.Signals,
  graceMs: number,
): Promise<ProcessExit> {
  if (owned.hasExited()) return owned.exited;
  owned.kill(signal);
  const escalation = setTimeout(() => owned.kill("SIGKILL"), graceMs);
  const exit = await owned.exited;
  clearTimeout(escalation);
  return exit;
}

export interface NativeOwnedOptions extends NativeSpawnOptions {
  /** Killed when warmstart exits (default). */
  readonly isKilledAtExit?: boolean;
  /** This process's end of a socket whose other end only the child (and what it execs and
   * forks) holds: its close means the child is exiting, and is when it is reaped. */
  readonly endOfChild: Readable;
}

/** How long, at most, between two waitpid calls for a child whose socket end closed early. */
const REAP_POLL_MAX_MS = 100;

/**
 * A process spawned through posix_spawn (native-spawn.ts: no fork of the launcher), owned as
 * spawnOwned's are. Node does not see its exit: it is reaped (waitpid, WNOHANG) once
 * `endOfChild` closes or it is signalled, again with backoff until it is gone.
 */
export function spawnOwnedNative(command: CommandLine, options: NativeOwnedOptions): OwnedHandle {
  let pid: number;
  try {
    pid = posixSpawn(command, options);
  } catch (error) {
    return notSpawned(error as Error);
  }
  let hasExited = false;
  let resolveExit: (exit: ProcessExit) => void = () => {};
  const exited = new Promise<ProcessExit>((resolve) => {
    resolveExit = resolve;
  });
  let isReaping = false;
  const reap = (delayMs: number) => {
    if (hasExited) return;
    const status = tryReap(pid);
    if (status) {
      hasExited = true;
      killedAtExit.delete(owned);
      resolveExit({ ...status, reason: "exited" });
      return;
    }
    setTimeout(() => reap(Math.min(delayMs * 2, REAP_POLL_MAX_MS)), delayMs);
  };
  const startReaping = () => {
    if (isReaping) return;
    isReaping = true;
    reap(1);
  };
  let stopping: Promise<ProcessExit> | undefined;
  const owned: OwnedHandle = {
    pid,
    started: Promise.resolve({ isStarted: true }),
    exited,
    hasExited: () => hasExited,
    kill(signal) {
      if (hasExited) return;
      killQuietly(owned, signal);
      // Exiting, or already gone: the reaping finds out which.
      startReaping();
    },
    stop(signal = "SIGTERM", graceMs = DEFAULT_KILL_GRACE_MS) {
      stopping ??= stopWithGrace(owned, signal, graceMs);
      return stopping;
    },
  };
  if (options.endOfChild.closed || options.endOfChild.destroyed) startReaping();
  else options.endOfChild.once("close", startReaping);
  own(owned, options);
  return owned;
}

function notSpawned(error: Error): OwnedHandle {
  const exit: ProcessExit = { code: null, signal: null, reason: "spawn-failed", error };
  return {
    pid: -1,
    started: Promise.resolve({ isStarted: false, error }),
    exited: Promise.resolve(exit),
    hasExited: () => true,
    kill: () => {},
    stop: () => Promise.resolve(exit),
  };
}

/** Stops the process when it runs past its time-out or the signal aborts; says why first. */
function stopOnTimeoutOrAbort(
  owned: OwnedHandle,
  options: OwnedSpawnOptions,
  setReason: (reason: "timed-out" | "aborted") => void,
): { dispose(): void } {
  const stop = (reason: "timed-out" | "aborted") => {
    setReason(reason);
    void owned.stop();
  };
  const timer =
    options.timeoutMs !== undefined ? setTimeout(() => stop("timed-out"), options.timeoutMs) : undefined;
  timer?.unref();
  const onAbort = () => stop("aborted");
  if (options.signal?.aborted) onAbort();
  else options.signal?.addEventListener("abort", onAbort, { once: true });
  return {
    dispose: () => {
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", onAbort);
    },
  };
}

export interface CompletedProcess extends ProcessExit {
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command to its end and collects its output (criu --version, criu check, dump). */
export async function runToCompletion(
  command: CommandLine,
  options: Omit<OwnedSpawnOptions, "stdio"> = {},
): Promise<CompletedProcess> {
  const owned = spawnOwned(command, { ...options, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  owned.child.stdout?.on("data", (chunk) => {
    stdout += chunk;
  });
  owned.child.stderr?.on("data", (chunk) => {
    stderr += chunk;
  });
  const exit = await owned.exited;
  return { ...exit, stdout, stderr };
}

/** The exit code a shell gives a process a signal ended: 128 + the signal's number. */
export function exitCodeOfSignal(signal: NodeJS.Signals): number {
  return 128 + (constants.signals[signal] ?? 0);
}

/** What a failed command's exit looks like in a message: "exit code 3", "killed by SIGKILL",
 * "timed out", "could not start: ENOENT". */
export function describeExit(exit: ProcessExit): string {
  if (exit.reason === "spawn-failed") return `could not start: ${exit.error?.message ?? "unknown error"}`;
  if (exit.reason === "timed-out") return "timed out";
  if (exit.reason === "aborted") return "stopped";
  return exit.signal ? `killed by ${exit.signal}` : `exit code ${exit.code}`;
}
