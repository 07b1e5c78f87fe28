import { linkSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import type { CacheEntry } from "../cache/entry-store.js";
import { readCriuErrors } from "../criu/criu-log.js";
import {
  type CommandLine,
  criuRestore,
  dieWithParentUnless,
  inNewPidNamespace,
  perlScript,
  withNotifySocketAt,
} from "../exec/command-lines.js";
import { spawnOwned } from "../exec/owned-process.js";
import {
  type AppProcess,
  controlStreamsOf,
  type OutputSinks,
  signalAppGroup,
  toAppProcess,
} from "./app-process.js";
import { type LazyPagesDaemon, startLazyPagesDaemon } from "./lazy-pages.js";
import {
  bashWrapper,
  REAPER_SCRIPT,
  RESTORE_CONTROL_FDS,
  RESTORE_STDIO_FDS,
  RESUMED_MARKER,
  restoreWrapper,
} from "./pipe-wrapper.js";

export interface WarmStartOptions {
  readonly criuPath: string;
  /** Restore memory on demand through a lazy-pages daemon. */
  readonly isLazy: boolean;
  readonly entry: CacheEntry;
  /** A private directory of this launch (0700), same filesystem as the cache. */
  readonly workDir: string;
  /** Absolute path; kept when the restore fails, so the warning can point at it. */
  readonly logPath: string;
  readonly sinks: OutputSinks;
  readonly isDetached: boolean;
  /** The launch's environment: PATH lookups of the restore chain are the cold start's. */
  readonly env: NodeJS.ProcessEnv;
  /** CRIU is stopped and the restore counts as failed after this. */
  readonly timeoutMs: number;
  /** Aborting stops the restore (the launch is being stopped). */
  readonly signal?: AbortSignal;
  /** Leave the restored app stopped until SIGCONT (serve's spare): the reaper's resume
   * marker then means "restored", and the app runs only when resumed. */
  readonly isLeftStopped: boolean;
  /** Makes the NOTIFY_SOCKET path in the image reach this launch's socket. */
  readonly notifyRedirect?: { readonly dir: string; readonly oldPath: string; readonly newPath: string };
}

export type WarmStartOutcome =
  | {
      readonly restored: true;
      readonly app: AppProcess;
      /** Settles when the staged images are no longer read (at once unless lazy). */
      readonly imagesReleased: Promise<void>;
      /** The lazy-pages daemon, which a detached launch leaves running. */
      readonly lazyPagesPid: number | undefined;
    }
  | {
      readonly restored: false;
      readonly reason: "restore-failed";
      /** CRIU's error lines (log and stderr), most specific first. */
      readonly errors: readonly string[];
      readonly logPath: string;
    };

type Failed = Extract<WarmStartOutcome, { restored: false }>;

/**
 * Restores the entry in a new PID and mount namespace (what criu-ns does, without its
 * Python start-up and its 1 s polling for the PID): the app gets its old PID inside the
 * namespace, so any number of restores run while the original PID is taken on the host.
 *
 *   warmstart ─ bash wrapper ⇒ setpriv ⇒ unshare ─ [sh: notify socket ⇒] criu restore ⇒ reaper (PID 1) ─ app
 *   (─ parent of, ⇒ exec)
 */
export async function startWarm(options: WarmStartOptions): Promise<WarmStartOutcome> {
  const failed = (errors: readonly string[]): Failed => ({
    restored: false,
    reason: "restore-failed",
    errors,
    logPath: options.logPath,
  });
  let imagesDir: string;
  try {
    imagesDir = linkImages(options.entry, options.workDir);
  } catch (error) {
    return failed([`could not stage the images: ${(error as Error).message}`]);
  }
  let lazy: LazyPagesDaemon | undefined;
  if (options.isLazy) {
    const started = await startLazyPagesDaemon(
      options.criuPath,
      imagesDir,
      options.logPath.replace(/\.log$/, "-lazy-pages.log"),
      options.isDetached,
      options.timeoutMs,
    );
    if (!started.isStarted) return failed(started.errors);
    lazy = started.daemon;
  }
  const outcome = await restore(options, imagesDir, lazy !== undefined);
  if (!outcome.restored) {
    lazy?.stop();
    return outcome;
  }
  const daemon = lazy;
  if (daemon) void outcome.app.exited.then(() => daemon.stop());
  return {
    ...outcome,
    imagesReleased: daemon ? daemon.done : Promise.resolve(),
    lazyPagesPid: daemon?.pid,
  };
}

/** The whole restore chain, from the wrapper that makes the pipes down to CRIU. */
function restoreCommand(options: WarmStartOptions, imagesDir: string, isLazy: boolean): CommandLine {
  const { manifest } = options.entry;
  const criu = criuRestore(options.criuPath, {
    imagesDir,
    logFile: options.logPath,
    logLevel: 2,
    inheritFds: [
      ...manifest.stdio.map((resource, index) => ({ fd: RESTORE_STDIO_FDS[index] ?? -1, resource })),
      ...(manifest.runtime
        ? [
            { fd: RESTORE_CONTROL_FDS.down, resource: manifest.runtime.control.down },
            { fd: RESTORE_CONTROL_FDS.up, resource: manifest.runtime.control.up },
          ]
        : []),
    ],
    execCommand: perlScript(REAPER_SCRIPT, [String(manifest.pid)]),
    isLazy,
    isLeftStopped: options.isLeftStopped,
  });
  const inNamespace = options.notifyRedirect ? withNotifySocketAt(options.notifyRedirect, criu) : criu;
  return dieWithParentUnless(options.isDetached, inNewPidNamespace(!options.isDetached, inNamespace));
}

async function restore(
  options: WarmStartOptions,
  imagesDir: string,
  isLazy: boolean,
): Promise<{ restored: true; app: AppProcess } | Failed> {
  const hasControl = options.entry.manifest.runtime !== undefined;
  const wrapper = bashWrapper(
    restoreWrapper(hasControl),
    restoreCommand(options, imagesDir, isLazy),
    options.env,
  );
  const owned = spawnOwned(wrapper.command, {
    env: wrapper.env,
    isSessionLeader: true,
    isKilledAtExit: !options.isDetached,
    stdio: [
      ...(options.isDetached
        ? (["ignore", "inherit", "inherit"] as const)
        : (["pipe", "pipe", "pipe"] as const)),
      "pipe",
      ...(hasControl ? (["pipe", "pipe"] as const) : []),
    ],
  });
  // Taken at once: a restore that fails must release them too, or their relays keep us alive.
  const controlStreams = hasControl ? controlStreamsOf(owned.child, 4) : undefined;
  const control = owned.child.stdio[3];
  const resumed = await waitForResume(control instanceof Readable ? control : null, owned.exited, options);
  const { manifest } = options.entry;
  const pid = resumed.isResumed ? findRestoredPid(owned.pid, manifest.pid) : undefined;
  if (pid === undefined) {
    await owned.stop("SIGKILL");
    const why = resumed.isResumed
      ? "the restored process was not found under the new PID namespace"
      : resumed.isTimedOut
        ? `criu restore did not finish within ${options.timeoutMs / 1000} s`
        : undefined;
    const printed = resumed.control
      .split("\n")
      .filter((line) => /error/i.test(line))
      .map((line) => line.trim());
    return {
      restored: false,
      reason: "restore-failed",
      errors: [...(await readCriuErrors(options.logPath)), ...printed, ...(why ? [why] : [])],
      logPath: options.logPath,
    };
  }
  const kill = (signal: NodeJS.Signals) => signalAppGroup(pid, signal);
  return { restored: true, app: toAppProcess(owned, options.sinks, { pid, kill }, controlStreams) };
}

interface ResumeWait {
  readonly isResumed: boolean;
  readonly isTimedOut: boolean;
  /** What CRIU and the reaper printed on the control channel. */
  readonly control: string;
}

/** The reaper announces the resume on the control channel; CRIU prints its fatal errors there. */
function waitForResume(
  channel: Readable | null,
  exited: Promise<unknown>,
  { timeoutMs, signal }: { readonly timeoutMs: number; readonly signal?: AbortSignal },
): Promise<ResumeWait> {
  return new Promise((resolve) => {
    let control = "";
    let isSettled = false;
    const settle = (isResumed: boolean, isTimedOut: boolean) => {
      if (isSettled) return;
      isSettled = true;
      clearTimeout(timer);
      resolve({ isResumed, isTimedOut, control });
    };
    const timer = setTimeout(() => settle(false, true), timeoutMs);
    if (signal?.aborted) settle(false, false);
    signal?.addEventListener("abort", () => settle(false, false), { once: true });
    channel?.on("data", (chunk: Buffer) => {
      control += chunk.toString();
      if (control.includes(RESUMED_MARKER)) settle(true, false);
    });
    void exited.then(() => settle(false, false));
  });
}

/**
 * CRIU writes into the images directory on restore (stats-restore), so it gets a private
 * directory of hard links to the entry's files: the entry stays exactly as committed,
 * and concurrent restores of one entry do not share a directory.
 */
function linkImages(entry: CacheEntry, workDir: string): string {
  const dir = join(workDir, "images");
  mkdirSync(dir, { mode: 0o700 });
  for (const name of Object.keys(entry.manifest.files))
    linkSync(join(entry.imagesDir, name), join(dir, name));
  return dir;
}

function readChildren(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").split(" ").filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** The last field of NSpid is the PID inside the innermost namespace. */
export function readNamespacePids(pid: number): number[] {
  try {
    const line = /^NSpid:\s*(.*)$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? "";
    return line.split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/**
 * The restored app's host PID: under unshare (the wrapper's PID, kept through the execs) is
 * the namespace's PID 1 (the reaper), and under it the process whose namespace PID is the
 * one it had when it was dumped.
 */
export function findRestoredPid(unsharePid: number, dumpedPid: number): number | undefined {
  for (const init of readChildren(unsharePid)) {
    if (readNamespacePids(init).at(-1) !== 1) continue;
    return readChildren(init).find((pid) => readNamespacePids(pid).at(-1) === dumpedPid);
  }
  return undefined;
}
