import { spawn } from "node:child_process";
import { WarmstartError } from "../errors.js";
import {
  type AppProcess,
  exitFromStatus,
  forwardOutput,
  type OutputSinks,
  waitForExit,
} from "./app-process.js";
import { bashWrapper, coldWrapper } from "./pipe-wrapper.js";

export interface ColdStartOptions {
  readonly executable: string;
  readonly args: readonly string[];
  readonly cwd: string;
  readonly env: NodeJS.ProcessEnv;
  readonly sinks: OutputSinks;
  /** Keep the app running when warmstart dies (--detach). */
  readonly isDetached: boolean;
  /** In a network namespace of its own, with loopback only (prewarm). */
  readonly isNetworkIsolated: boolean;
}

/**
 * Starts the app in its own session (so it is its own session leader, which CRIU needs to
 * dump it without --shell-job, and so terminal signals reach it only through warmstart),
 * with stdio on real pipes that warmstart owns.
 */
export function startCold(options: ColdStartOptions): Promise<AppProcess> {
  // setpriv --pdeathsig: if warmstart is killed (even with SIGKILL) the app goes too,
  // instead of lingering as an orphan nobody supervises.
  const guard = options.isDetached ? [] : ["setpriv", "--pdeathsig", "KILL", "--"];
  const wrapper = bashWrapper(
    coldWrapper(options.isNetworkIsolated),
    [...guard, options.executable, ...options.args],
    options.env,
  );
  // unshare --net execs bash without forking: the PID stays the app's.
  const [file = "bash", ...args] = options.isNetworkIsolated
    ? ["unshare", "--net", "--", "bash", ...wrapper.args]
    : ["bash", ...wrapper.args];
  const child = spawn(file, args, {
    cwd: options.cwd,
    env: wrapper.env,
    detached: true,
    // Detached, the relays write straight to our stdout/stderr, which outlive warmstart.
    stdio: options.isDetached ? ["ignore", "inherit", "inherit"] : ["pipe", "pipe", "pipe"],
  });
  return new Promise((resolve, reject) => {
    child.once("error", (error) =>
      reject(
        new WarmstartError("spawn-failed", `Could not start ${file} to launch the app: ${error.message}`),
      ),
    );
    child.once("spawn", () => {
      const output = forwardOutput(child, options.sinks);
      const { exited, hasExited } = waitForExit(child, exitFromStatus);
      // A closed stdin is normal for services; the app must not die of EPIPE on our side.
      child.stdin?.on("error", () => {});
      resolve({
        pid: child.pid ?? -1,
        ...output,
        exited,
        hasExited,
        stdin: child.stdin,
        kill: (signal) => {
          if (!hasExited()) child.kill(signal);
        },
      });
    });
  });
}
