import { spawn } from "node:child_process";
import { toLazyPagesFlags } from "../criu/criu-flags.js";
import { readCriuErrors } from "../criu/criu-log.js";

export interface LazyPagesDaemon {
  /** Settles when the daemon has exited: every page is in the app, or the app is gone. */
  readonly done: Promise<void>;
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
 */
export function startLazyPagesDaemon(
  criuPath: string,
  imagesDir: string,
  logPath: string,
  isDetached: boolean,
): Promise<LazyPagesOutcome> {
  const guard = isDetached ? [] : ["setpriv", "--pdeathsig", "KILL", "--"];
  const flags = toLazyPagesFlags({ imagesDir, logFile: logPath, logLevel: 2, statusFd: STATUS_FD });
  const [file = criuPath, ...args] = [...guard, criuPath, ...flags];
  const daemon = spawn(file, args, { detached: true, stdio: ["ignore", "ignore", "pipe", "pipe"] });
  let stderr = "";
  daemon.stderr?.on("data", (chunk) => {
    stderr += chunk;
  });
  const done = new Promise<void>((resolve) => daemon.once("close", () => resolve()));
  return new Promise((resolve) => {
    const fail = async (why: string) =>
      resolve({
        isStarted: false,
        errors: [...(await readCriuErrors(logPath)), ...(stderr ? [stderr.trim()] : []), why],
      });
    daemon.once("error", (error) => void fail(`cannot start criu lazy-pages: ${error.message}`));
    daemon.stdio[STATUS_FD]?.once("data", () =>
      resolve({
        isStarted: true,
        daemon: {
          done,
          stop: () => {
            if (daemon.exitCode === null && daemon.signalCode === null) daemon.kill("SIGKILL");
          },
        },
      }),
    );
    daemon.once("exit", () => void fail("criu lazy-pages exited before it was ready"));
  });
}
