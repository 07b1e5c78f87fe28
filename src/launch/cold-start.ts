import { WarmstartError } from "../errors.js";
import { dieWithParentUnless, inPrivateNetwork } from "../exec/command-lines.js";
import { spawnOwned } from "../exec/owned-process.js";
import {
  type AppProcess,
  controlStreamsOf,
  type OutputSinks,
  signalAppGroup,
  toAppProcess,
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
  /** Give the app the runtime's control pipes (src/runtime/protocol.ts). */
  readonly hasControl?: boolean;
}

/**
 * Starts the app in its own session (so it is its own session leader, which CRIU needs to
 * dump it without --shell-job, and so terminal signals reach it only through warmstart),
 * with stdio on real pipes that warmstart owns, under the parent-death guard.
 *
 *   warmstart ─ [unshare --net ⇒] bash wrapper ⇒ [setpriv ⇒] app      (─ parent of, ⇒ exec)
 */
export async function startCold(options: ColdStartOptions): Promise<AppProcess> {
  const wrapper = bashWrapper(
    coldWrapper(options.isNetworkIsolated, options.hasControl === true),
    dieWithParentUnless(options.isDetached, [options.executable, ...options.args]),
    options.env,
  );
  const command = options.isNetworkIsolated ? inPrivateNetwork(wrapper.command) : wrapper.command;
  const owned = spawnOwned(command, {
    cwd: options.cwd,
    env: wrapper.env,
    isSessionLeader: true,
    isKilledAtExit: !options.isDetached,
    // Detached, the relays write straight to our stdout/stderr, which outlive warmstart.
    stdio: [
      ...(options.isDetached
        ? (["ignore", "inherit", "inherit"] as const)
        : (["pipe", "pipe", "pipe"] as const)),
      ...(options.hasControl ? (["pipe", "pipe"] as const) : []),
    ],
  });
  const started = await owned.started;
  if (!started.isStarted) {
    throw new WarmstartError(
      "spawn-failed",
      `Could not start ${command[0]} to launch the app: ${started.error.message}`,
    );
  }
  const group = { pid: owned.pid, kill: (signal: NodeJS.Signals) => signalAppGroup(owned.pid, signal) };
  const control = options.hasControl ? controlStreamsOf(owned.child, 3) : undefined;
  return toAppProcess(owned, options.sinks, group, control);
}
