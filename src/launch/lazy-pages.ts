import { rmSync } from "node:fs";
import { readCriuErrors, readLazyFaults } from "../criu/criu-log.js";
import { KERNDAT_TARGET } from "../criu/kerndat-cache.js";
import {
  criuLazyPages,
  dieWithParentAsGroup,
  guardedWithKerndat,
  inNewMountNamespace,
  withKerndatCache,
} from "../exec/command-lines.js";
import { describeExit, type OwnedProcess, spawnOwned } from "../exec/owned-process.js";
import { findRestoreChain } from "../exec/restore-chain.js";

export interface LazyPagesDaemon {
  readonly pid: number;
  /** Settles when the daemon has exited: every page is in the app, or the app is gone. */
  readonly done: Promise<void>;
  /** Learning: once done, the pages the app faulted on, per PID in the images (readLazyFaults);
   * undefined when not learning or when the daemon failed. */
  readonly faults: Promise<Map<number, number[]> | undefined>;
  stop(): void;
}

export type LazyPagesOutcome =
  | { readonly isStarted: true; readonly daemon: LazyPagesDaemon }
  | { readonly isStarted: false; readonly errors: readonly string[] };

const STATUS_FD = 3;

/**
 * Starts `criu lazy-pages` on the staged images and resolves once it listens (it writes \0
 * to --status-fd), so the restore that follows never races it. The daemon serves faults
 * first and copies the remaining pages in the background, then exits by itself; it must
 * outlive nothing but the app, so it dies with warmstart unless the launch is detached.
 * Its log is removed when it ends well; kept for the warning when it does not.
 */
export async function startLazyPagesDaemon(
  criuPath: string,
  imagesDir: string,
  logPath: string,
  isDetached: boolean,
  /** The daemon reads the image's metadata before it listens: seconds at most. */
  timeoutMs: number,
  /** warmstart's copy of CRIU's kernel-feature cache: the daemon probes the kernel too. */
  kerndatFile: string | undefined,
  /** Log every fault it serves (level 4), for `faults`. */
  isLearning: boolean,
): Promise<LazyPagesOutcome> {
  const lazyPages = criuLazyPages(criuPath, {
    imagesDir,
    logFile: logPath,
    logLevel: isLearning ? 4 : 2,
    statusFd: STATUS_FD,
  });
  const daemonCommand = kerndatFile
    ? inNewMountNamespace(withKerndatCache(kerndatFile, KERNDAT_TARGET, lazyPages))
    : lazyPages;
  // Without the kernel-feature copy (a new boot) the daemon probes the kernel in forked
  // helpers, as a dump does: they must die with warmstart too, so the guard then stays in
  // between and kills its whole group (SIGTERM to it does that at once). With the copy the
  // daemon forks nothing and the guard execs it, sparing the warm path a process.
  const isGroupGuarded = !isDetached && !kerndatFile;
  const command = isDetached
    ? daemonCommand
    : kerndatFile
      ? guardedWithKerndat(findRestoreChain(), { file: kerndatFile, target: KERNDAT_TARGET }, lazyPages)
      : dieWithParentAsGroup(daemonCommand);
  const killSignal = isGroupGuarded ? "SIGTERM" : "SIGKILL";
  const daemon = spawnOwned(command, {
    isSessionLeader: true,
    isKilledAtExit: !isDetached,
    stdio: ["ignore", "ignore", "pipe", "pipe"],
  });
  let stderr = "";
  daemon.child.stderr?.on("data", (chunk) => {
    stderr += chunk;
  });
  const status = await waitForStatus(daemon, timeoutMs);
  if (status !== "listening") {
    const exit = await daemon.stop(killSignal);
    const why =
      status === "timed-out"
        ? `was not ready within ${timeoutMs / 1000} s`
        : `exited before it was ready (${describeExit(exit)})`;
    return {
      isStarted: false,
      errors: [
        ...(await readCriuErrors(logPath)),
        ...(stderr ? [stderr.trim()] : []),
        `criu lazy-pages ${why}`,
      ],
    };
  }
  const faults = daemon.exited.then(async (exit) => {
    const learned = exit.code === 0 && isLearning ? await readLazyFaults(logPath) : undefined;
    if (exit.code === 0) rmSync(logPath, { force: true });
    return learned;
  });
  return {
    isStarted: true,
    daemon: {
      pid: daemon.pid,
      done: faults.then(() => undefined),
      faults,
      stop: () => daemon.kill(killSignal),
    },
  };
}

function waitForStatus(
  daemon: OwnedProcess,
  timeoutMs: number,
): Promise<"listening" | "timed-out" | "exited"> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve("timed-out"), timeoutMs);
    daemon.child.stdio[STATUS_FD]?.once("data", () => {
      clearTimeout(timer);
      resolve("listening");
    });
    void daemon.exited.then(() => {
      clearTimeout(timer);
      resolve("exited");
    });
  });
}
