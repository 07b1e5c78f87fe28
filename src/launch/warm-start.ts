import { spawn } from "node:child_process";
import { linkSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { CacheEntry } from "../cache/entry-store.js";
import { toRestoreFlags } from "../criu/criu-flags.js";
import { readCriuErrors } from "../criu/criu-log.js";
import {
  type AppProcess,
  exitFromStatus,
  forwardOutput,
  type OutputSinks,
  waitForExit,
} from "./app-process.js";
import { type LazyPagesDaemon, startLazyPagesDaemon } from "./lazy-pages.js";
import {
  bashWrapper,
  REAPER_SCRIPT,
  RESTORE_STDIO_FDS,
  RESTORE_WRAPPER,
  RESUMED_MARKER,
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
}

export type WarmStartOutcome =
  | {
      readonly restored: true;
      readonly app: AppProcess;
      /** Settles when the staged images are no longer read (at once unless lazy). */
      readonly imagesReleased: Promise<void>;
    }
  | {
      readonly restored: false;
      readonly reason: "restore-failed";
      /** CRIU's error lines (log and stderr), most specific first. */
      readonly errors: readonly string[];
      readonly logPath: string;
    };

/**
 * Restores the entry in a new PID and mount namespace (what criu-ns does, without its
 * Python start-up and its 1 s polling for the PID): the app gets its old PID inside the
 * namespace, so any number of restores run while the original PID is taken on the host.
 *
 *   warmstart ─ bash wrapper ⇒ setpriv ⇒ unshare ─ criu restore ⇒ reaper (PID 1) ─ app
 *   (─ parent of, ⇒ exec)
 */
export async function startWarm(options: WarmStartOptions): Promise<WarmStartOutcome> {
  const failed = (errors: readonly string[]): WarmStartOutcome => ({
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
  return { ...outcome, imagesReleased: daemon ? daemon.done : Promise.resolve() };
}

function restore(
  options: WarmStartOptions,
  imagesDir: string,
  isLazy: boolean,
): Promise<{ restored: true; app: AppProcess } | Exclude<WarmStartOutcome, { restored: true }>> {
  const { manifest } = options.entry;
  const flags = toRestoreFlags({
    imagesDir,
    logFile: options.logPath,
    logLevel: 2,
    inheritFds: manifest.stdio.map((resource, index) => ({ fd: RESTORE_STDIO_FDS[index] ?? -1, resource })),
    execCommand: ["perl", "-e", REAPER_SCRIPT, String(manifest.pid)],
    isLazy,
  });
  // --kill-child: unshare's death takes the namespace down (PID 1 gets SIGKILL), and
  // setpriv makes warmstart's death take unshare down.
  const guard = options.isDetached ? [] : ["setpriv", "--pdeathsig", "KILL", "--"];
  const unshare = [
    "unshare",
    "--pid",
    "--fork",
    "--mount",
    "--mount-proc",
    ...(options.isDetached ? [] : ["--kill-child"]),
  ];
  const wrapper = bashWrapper(
    RESTORE_WRAPPER,
    [...guard, ...unshare, options.criuPath, ...flags],
    process.env,
  );
  const child = spawn("bash", wrapper.args, {
    env: wrapper.env,
    detached: true,
    stdio: options.isDetached ? ["ignore", "inherit", "inherit", "pipe"] : ["pipe", "pipe", "pipe", "pipe"],
  });
  child.stdin?.on("error", () => {});
  const output = forwardOutput(child, options.sinks);
  const { exited, hasExited } = waitForExit(child, exitFromStatus);

  return new Promise((resolve) => {
    let control = "";
    let isSettled = false;
    const fail = async () => {
      if (isSettled) return;
      isSettled = true;
      const logErrors = await readCriuErrors(options.logPath);
      const printed = control
        .split("\n")
        .filter((line) => /error/i.test(line))
        .map((line) => line.trim());
      resolve({
        restored: false,
        reason: "restore-failed",
        errors: [...logErrors, ...printed],
        logPath: options.logPath,
      });
    };
    child.on("error", () => void fail());
    child.stdio[3]?.on("data", (chunk: Buffer) => {
      control += chunk.toString();
      if (isSettled || !control.includes(RESUMED_MARKER)) return;
      const pid = findRestoredPid(child.pid ?? -1, manifest.pid);
      if (pid === undefined) {
        child.kill("SIGKILL");
        control += "\nerror: the restored process was not found under the new PID namespace";
        return;
      }
      isSettled = true;
      resolve({
        restored: true,
        app: {
          pid,
          ...output,
          exited,
          hasExited,
          stdin: child.stdin,
          kill: (signal) => {
            if (hasExited()) return;
            try {
              process.kill(pid, signal);
            } catch {
              // Already gone: the exit event follows.
            }
          },
        },
      });
    });
    void exited.then(() => void fail());
  });
}

/**
 * CRIU writes into the images directory on restore (stats-restore), so it gets a private
 * directory of hard links to the entry's files: the entry stays exactly as committed,
 * and concurrent restores of one entry do not share a directory.
 */
function linkImages(entry: CacheEntry, workDir: string): string {
  const dir = join(workDir, "images");
  mkdirSync(dir, { recursive: true, mode: 0o700 });
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
function readNamespacePids(pid: number): number[] {
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
