import type { ChildProcess } from "node:child_process";
import { exitCodeOfSignal, type OwnedProcess } from "../exec/owned-process.js";
import { LineBuffer } from "../readiness/output-lines.js";

/** How the app ended: the code warmstart exits with (128+n for signal n, as shells do). */
export interface AppExit {
  readonly exitCode: number;
  readonly signal: NodeJS.Signals | null;
}

/** A running app, cold-started or restored, as the supervisor sees it. */
export interface AppProcess {
  /** The app's PID on the host (in warmstart's PID namespace). */
  readonly pid: number;
  readonly stdout: LineBuffer;
  readonly stderr: LineBuffer;
  readonly exited: Promise<AppExit>;
  readonly hasExited: () => boolean;
  kill(signal: NodeJS.Signals): void;
  /** The app's stdin, when the launcher has one to give. */
  readonly stdin: NodeJS.WritableStream | null;
}

export interface OutputSinks {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
}

export function exitFromStatus(code: number | null, signal: NodeJS.Signals | null): AppExit {
  if (code !== null) return { exitCode: code, signal: null };
  return { exitCode: signal ? exitCodeOfSignal(signal) : 128, signal };
}

/**
 * Streams the app's output to the sinks line by line (so stdout and stderr lines never
 * interleave mid-line) and keeps the recent lines for log probes and error messages.
 */
export function forwardOutput(
  child: ChildProcess,
  sinks: OutputSinks,
): { stdout: LineBuffer; stderr: LineBuffer } {
  const stdout = new LineBuffer({ maxRecent: 50 });
  const stderr = new LineBuffer({ maxRecent: 50 });
  stdout.onLine((line) => sinks.stdout.write(`${line}\n`));
  stderr.onLine((line) => sinks.stderr.write(`${line}\n`));
  child.stdout?.on("data", (chunk: Buffer) => stdout.push(chunk));
  child.stderr?.on("data", (chunk: Buffer) => stderr.push(chunk));
  child.stdout?.on("end", () => stdout.flush());
  child.stderr?.on("end", () => stderr.flush());
  return { stdout, stderr };
}

/** The app as the supervisor sees it, from the process warmstart spawned for it (the app
 * itself on a cold start, the restore chain on a warm one: its exit is the app's). */
export function toAppProcess(
  owned: OwnedProcess,
  sinks: OutputSinks,
  target: { readonly pid: number; readonly kill: (signal: NodeJS.Signals) => void } = owned,
): AppProcess {
  const output = forwardOutput(owned.child, sinks);
  // A closed stdin is normal for services; the app must not die of EPIPE on our side.
  owned.child.stdin?.on("error", () => {});
  return {
    pid: target.pid,
    ...output,
    exited: owned.exited.then((exit) => exitFromStatus(exit.code, exit.signal)),
    hasExited: () => owned.hasExited(),
    stdin: owned.child.stdin,
    kill: (signal) => {
      if (!owned.hasExited()) target.kill(signal);
    },
  };
}
