import type { ChildProcess } from "node:child_process";
import { Readable, Writable } from "node:stream";
import { exitCodeOfSignal, type OwnedHandle } from "../exec/owned-process.js";
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
  /** The launcher's ends of the runtime's control pipes (src/runtime/control-channel.ts). */
  readonly control?: ControlStreams;
}

export interface ControlStreams {
  readonly down: NodeJS.WritableStream;
  readonly up: NodeJS.ReadableStream;
}

/** The control streams a child was spawned with at stdio[downIndex] and stdio[downIndex + 1]. */
export function controlStreamsOf(child: ChildProcess, downIndex: number): ControlStreams | undefined {
  const down = child.stdio[downIndex];
  const up = child.stdio[downIndex + 1];
  if (!down || !up || !("write" in down) || !("read" in up)) return undefined;
  // The relays end when their sockets do: the child's "close" (and so `exited`) waits for them.
  return ownControlStreams(new Promise((resolve) => child.once("exit", resolve)), { down, up });
}

/** The launcher's ends of the app's control pipes, closed once `exit` settles. */
export function ownControlStreams(
  exit: Promise<unknown>,
  { down, up }: { readonly down: Writable; readonly up: Readable },
): ControlStreams {
  // Writes to a relay that died with the app must not crash the launcher.
  down.on("error", () => {});
  void exit.then(() => {
    down.destroy();
    up.destroy();
  });
  return { down, up };
}

/**
 * Signals the app's process group, as a terminal would: `npm start` or a shell script does
 * not pass SIGTERM on to the server it started, which would outlive them. The app leads its
 * group (it is spawned in a session of its own, and a restored copy keeps its group).
 */
export function signalAppGroup(pid: number, signal: NodeJS.Signals): void {
  // -0 is warmstart's own group (a spawn that failed has no pid): never signal that.
  if (!(pid > 1)) return;
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // Already gone: the exit event follows.
    }
  }
}

export interface OutputSinks {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
}

export function exitFromStatus(code: number | null, signal: NodeJS.Signals | null): AppExit {
  if (code !== null) return { exitCode: code, signal: null };
  return { exitCode: signal ? exitCodeOfSignal(signal) : 128, signal };
}

/** The launcher's ends of the app's stdin, stdout and stderr (null: not the launcher's). */
export interface AppStdio {
  readonly stdin: Writable | null;
  readonly stdout: Readable | null;
  readonly stderr: Readable | null;
}

/** The app's stdio as the child was spawned with them at stdio[first], [first + 1], [first + 2]. */
export function stdioOf(child: ChildProcess, first = 0): AppStdio {
  const [stdin, stdout, stderr] = child.stdio.slice(first, first + 3);
  return {
    stdin: stdin instanceof Writable ? stdin : null,
    stdout: stdout instanceof Readable ? stdout : null,
    stderr: stderr instanceof Readable ? stderr : null,
  };
}

/**
 * Streams the app's output to the sinks line by line (so stdout and stderr lines never
 * interleave mid-line) and keeps the recent lines for log probes and error messages.
 */
export function forwardOutput(
  streams: Pick<AppStdio, "stdout" | "stderr">,
  sinks: OutputSinks,
): { stdout: LineBuffer; stderr: LineBuffer } {
  const stdout = new LineBuffer({ maxRecent: 50 });
  const stderr = new LineBuffer({ maxRecent: 50 });
  stdout.onLine((line) => sinks.stdout.write(`${line}\n`));
  stderr.onLine((line) => sinks.stderr.write(`${line}\n`));
  streams.stdout?.on("data", (chunk: Buffer) => stdout.push(chunk));
  streams.stderr?.on("data", (chunk: Buffer) => stderr.push(chunk));
  streams.stdout?.on("end", () => stdout.flush());
  streams.stderr?.on("end", () => stderr.flush());
  return { stdout, stderr };
}

/** The app as the supervisor sees it, from the process warmstart spawned for it (the app
 * itself on a cold start, the restore chain on a warm one: its exit is the app's). */
export function toAppProcess(
  owned: OwnedHandle,
  sinks: OutputSinks,
  target: { readonly pid: number; readonly kill: (signal: NodeJS.Signals) => void },
  control: ControlStreams | undefined,
  stdio: AppStdio,
): AppProcess {
  const output = forwardOutput(stdio, sinks);
  // A closed stdin is normal for services; the app must not die of EPIPE on our side.
  stdio.stdin?.on("error", () => {});
  // Pipes the launcher made itself are not the child's: its "close" does not wait for them,
  // and the app's last lines must be out before its exit is reported.
  const outputClosed = Promise.all([stdio.stdout, stdio.stderr].map(whenClosed));
  return {
    pid: target.pid,
    ...output,
    exited: owned.exited.then(async (exit) => {
      await outputClosed;
      return exitFromStatus(exit.code, exit.signal);
    }),
    hasExited: () => owned.hasExited(),
    stdin: stdio.stdin,
    ...(control ? { control } : {}),
    kill: (signal) => {
      if (!owned.hasExited()) target.kill(signal);
    },
  };
}

function whenClosed(stream: Readable | null): Promise<void> {
  if (!stream || stream.closed || stream.destroyed) return Promise.resolve();
  stream.on("error", () => {});
  return new Promise((resolve) => stream.once("close", () => resolve()));
}
