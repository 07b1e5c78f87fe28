import type { ChildProcess } from "node:child_process";
import type { Duplex } from "node:stream";
import { WarmstartError } from "../errors.js";
import { type CommandLine, dieWithParentUnless, inPrivateNetwork } from "../exec/command-lines.js";
import { spawnOwned } from "../exec/owned-process.js";
import {
  type AppProcess,
  controlStreamsOf,
  type OutputSinks,
  signalAppGroup,
  stdioOf,
  toAppProcess,
} from "./app-process.js";
import { bashWrapper, coldWrapper, gatedCommand } from "./pipe-wrapper.js";

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
  /** Runs the app in a private mount namespace and calls this with its PID once it is in
   * it (isPrivate false: the kernel refused one), before the app itself starts (input
   * recording, src/inputs/). */
  readonly gate?: (pid: number, isPrivate: boolean) => Promise<void>;
}

/**
 * Starts the app in its own session (so it is its own session leader, which CRIU needs to
 * dump it without --shell-job, and so terminal signals reach it only through warmstart),
 * with stdio on real pipes that warmstart owns, under the parent-death guard.
 *
 *   warmstart ─ [unshare --net ⇒] bash wrapper ⇒ [setpriv ⇒] [gate ⇒] app   (─ parent of, ⇒ exec)
 */
export async function startCold(options: ColdStartOptions): Promise<AppProcess> {
  const app: CommandLine = [options.executable, ...options.args];
  const stdio = [
    ...(options.isDetached
      ? (["ignore", "inherit", "inherit"] as const)
      : (["pipe", "pipe", "pipe"] as const)),
    ...(options.hasControl ? (["pipe", "pipe"] as const) : []),
  ];
  // The gate's channel comes after every other fd the app is given (stdio, control pipes).
  const gateFd = options.gate ? stdio.length : undefined;
  const wrapper = bashWrapper(
    coldWrapper(options.isNetworkIsolated, options.hasControl === true, gateFd),
    dieWithParentUnless(options.isDetached, gateFd === undefined ? app : gatedCommand(app, gateFd)),
    options.env,
  );
  const command = options.isNetworkIsolated ? inPrivateNetwork(wrapper.command) : wrapper.command;
  const owned = spawnOwned(command, {
    cwd: options.cwd,
    env: wrapper.env,
    isSessionLeader: true,
    isKilledAtExit: !options.isDetached,
    // Detached, the relays write straight to our stdout/stderr, which outlive warmstart.
    stdio: [...stdio, ...(gateFd === undefined ? [] : (["pipe"] as const))],
  });
  const started = await owned.started;
  if (!started.isStarted) {
    throw new WarmstartError(
      "spawn-failed",
      `Could not start ${command[0]} to launch the app: ${started.error.message}`,
    );
  }
  if (options.gate && gateFd !== undefined) await passGate(owned.child, gateFd, options.gate);
  const group = { pid: owned.pid, kill: (signal: NodeJS.Signals) => signalAppGroup(owned.pid, signal) };
  const control = options.hasControl ? controlStreamsOf(owned.child, 3) : undefined;
  return toAppProcess(owned, options.sinks, group, control, stdioOf(owned.child));
}

/** Waits for the gate's "r" (or "n"), lets `gate` run, then opens it. The app starts whatever
 * `gate` does: a recording that failed only costs the snapshot. */
function passGate(
  child: ChildProcess,
  gateFd: number,
  gate: (pid: number, isPrivate: boolean) => Promise<void>,
): Promise<void> {
  const channel = child.stdio[gateFd] as Duplex | null | undefined;
  if (!channel) return Promise.resolve();
  return new Promise((resolve) => {
    const open = async (said?: Buffer) => {
      channel.off("data", open);
      child.off("exit", open);
      try {
        await gate(child.pid ?? -1, said?.toString() === "r");
      } catch {
        // The recording is incomplete then (it says so at dump time); the app starts anyway.
      } finally {
        channel.on("error", () => {});
        channel.end("g");
        resolve();
      }
    };
    channel.once("data", open);
    child.once("exit", open);
  });
}
