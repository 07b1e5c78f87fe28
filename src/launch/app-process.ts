import type { ChildProcess } from "node:child_process";
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
  const number = signal ? signalNumber(signal) : 0;
  return { exitCode: 128 + number, signal };
}

const SIGNAL_NUMBERS: Partial<Record<NodeJS.Signals, number>> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGABRT: 6,
  SIGKILL: 9,
  SIGUSR1: 10,
  SIGSEGV: 11,
  SIGUSR2: 12,
  SIGPIPE: 13,
  SIGALRM: 14,
  SIGTERM: 15,
};

function signalNumber(signal: NodeJS.Signals): number {
  return SIGNAL_NUMBERS[signal] ?? 0;
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

/** Resolves when the child has exited and its output pipes are drained. */
export function waitForExit(
  child: ChildProcess,
  toExit: (code: number | null, signal: NodeJS.Signals | null) => AppExit,
) {
  let hasExited = false;
  const exited = new Promise<AppExit>((resolve) => {
    child.on("close", (code, signal) => {
      hasExited = true;
      resolve(toExit(code, signal));
    });
  });
  return { exited, hasExited: () => hasExited };
}
