// One `warmstart run` launch timed from the outside: from spawning the real CLI (warmstart's
// own startup counts, as it does for a user) to the first moment the readiness probes pass,
// as this process sees them. Then the launch is stopped and its --report line read back.
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { setTimeout as delay } from "node:timers/promises";
import { CLI_PATH_IN_DIST, distPath } from "../dist-paths.js";
import { WarmstartError } from "../errors.js";
import type { LaunchReport } from "../launch/launch.js";
import { LineBuffer } from "../readiness/output-lines.js";
import { describeProbe, type ProbeSpec } from "../readiness/probe-spec.js";
import { waitUntilReady } from "../readiness/wait-ready.js";

export interface MeasureTtfrOptions {
  /** `warmstart run`'s arguments after `run`, up to and including `--` and the app's command. */
  readonly runArgs: readonly string[];
  readonly probes: readonly ProbeSpec[];
  /** The launch's --ready-timeout: warmstart gives up after it, and so does the measure. */
  readonly readyTimeoutMs: number;
  /** A file of its own that the launch appends its --report line to. */
  readonly reportFile: string;
  /**
   * Whether the launch may checkpoint (no --no-snapshot): after a cold start it is then
   * stopped only once its checkpoint is done, so that the next launch finds the snapshot.
   */
  readonly mayCheckpoint: boolean;
  /** Names the launch in messages: "cold launch 2 of 5". */
  readonly label: string;
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Aborting stops the launch (SIGTERM) and rejects. */
  readonly signal?: AbortSignal;
}

export interface TtfrMeasurement {
  /** From spawning `warmstart run` to the moment every probe had passed. */
  readonly ttfrMs: number;
  /** The launch's own account, written when it exited: mode, fallback, checkpoint. */
  readonly report: LaunchReport;
}

/** The CLI users run: its start-up is part of what they wait for. */
const CLI_PATH = distPath(CLI_PATH_IN_DIST);

/** How often tcp, http and file probes retry: the resolution of every TTFR (bench/ttfr.ts uses the same). */
const POLL_INTERVAL_MS = 2;
/** On top of --ready-timeout, for warmstart to give up and say so before the measure does. */
const TIMEOUT_MARGIN_MS = 5_000;
/** How long the previous launch's app gets to free its port (or file) before this one starts. */
const PROBE_RELEASE_TIMEOUT_MS = 10_000;
/** warmstart prints its "checkpointing" step right after its "ready" line, in the same write burst. */
const CHECKPOINTING_LINE_GRACE_MS = 1_000;
/** A dump of a few GB takes tens of seconds. */
const CHECKPOINT_TIMEOUT_MS = 600_000;
/** An app that ignores SIGTERM is killed after this (warmstart takes it along). */
const STOP_TIMEOUT_MS = 10_000;

// warmstart's own -v lines (src/commands/render-launch.ts), told from the app's by their prefix.
const OWN_PREFIX = "warmstart: ";
const READY_LINE = /^warmstart: \[\d+ ms\] ready, (cold|warm), pid \d+$/;
const CHECKPOINTING_LINE = /^warmstart: \[\d+ ms\] checkpointing$/;
const CHECKPOINT_DONE_LINE =
  /^warmstart: (\[\d+ ms\] snapshot (saved|skipped|abandoned)|warning: snapshot failed)/;

/** Probes this process can check itself; `log` and `notify` are read off the launch's output. */
const isOutsideProbe = (probe: ProbeSpec) =>
  probe.kind === "tcp" || probe.kind === "http" || probe.kind === "file";

export async function measureTtfr(options: MeasureTtfrOptions): Promise<TtfrMeasurement> {
  const { probes, label, signal } = options;
  const outside = probes.filter(isOutsideProbe);
  await waitForProbesToFail(outside, label, signal);
  throwIfAborted(signal, label);

  const startedAtMs = performance.now();
  const child = spawn(
    process.execPath,
    [CLI_PATH, "run", "-v", "--report", options.reportFile, ...options.runArgs],
    {
      cwd: options.cwd ?? process.cwd(),
      env: options.env ?? process.env,
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  // Separate buffers per stream, so a partial line of one never joins a line of the other.
  const stdout = new LineBuffer();
  const stderr = new LineBuffer();
  const appLines = new LineBuffer();
  const ownLines = new LineBuffer({ maxRecent: 500 });
  stdout.onLine((line) => appLines.push(`${line}\n`));
  stderr.onLine((line) => (line.startsWith(OWN_PREFIX) ? ownLines : appLines).push(`${line}\n`));
  child.stdout.on("data", (chunk: Buffer) => stdout.push(chunk));
  child.stderr.on("data", (chunk: Buffer) => stderr.push(chunk));
  const gone = new AbortController();
  let spawnError: Error | undefined;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once("error", (error) => {
      spawnError = error;
      gone.abort();
      resolve({ code: null, signal: null });
    });
    child.once("exit", (code, exitSignal) => {
      gone.abort();
      resolve({ code, signal: exitSignal });
    });
  });
  const closed = new Promise((resolve) => child.once("close", resolve));
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      if (child.exitCode === null && child.signalCode === null && !spawnError) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
        await exited;
        clearTimeout(timer);
      }
      // The last lines, for messages and the report; stdio may outlive the process a little.
      await Promise.race([closed, delay(1_000)]);
      stdout.flush();
      stderr.flush();
    })();
    return stopping;
  };
  const onAbort = () => void stop();
  signal?.addEventListener("abort", onAbort, { once: true });

  try {
    const timeoutMs = options.readyTimeoutMs + TIMEOUT_MARGIN_MS;
    const readyLine = waitForLine(ownLines, READY_LINE, timeoutMs, gone.signal);
    const [outsideReadyAtMs, heldReadyAtMs] = await Promise.all([
      waitForProbes(outside, appLines, timeoutMs, gone.signal),
      waitForHeldProbes(probes, appLines, readyLine, timeoutMs, gone.signal),
    ]);
    throwIfAborted(signal, label);
    if (outsideReadyAtMs === undefined || heldReadyAtMs === undefined) {
      const hasExited = gone.signal.aborted;
      await stop();
      throw notReadyError(label, hasExited, await exited, spawnError, [...stdout.recent, ...stderr.recent]);
    }
    const ttfrMs = Math.max(outsideReadyAtMs, heldReadyAtMs) - startedAtMs;

    // warmstart may see the probes pass a little after we do: stopping it earlier would end a
    // launch that never reported. A cold launch is then left to finish its checkpoint.
    const ready = await readyLine;
    if (ready?.[1] === "cold" && options.mayCheckpoint) {
      const grace = Math.min(CHECKPOINTING_LINE_GRACE_MS, timeoutMs);
      if (await waitForLine(ownLines, CHECKPOINTING_LINE, grace, gone.signal)) {
        await waitForLine(ownLines, CHECKPOINT_DONE_LINE, CHECKPOINT_TIMEOUT_MS, gone.signal);
      }
    }
    await stop();
    throwIfAborted(signal, label);
    const report = readLastReport(options.reportFile);
    if (!report) {
      throw new WarmstartError(
        "app-exited",
        `The ${label} wrote no --report line: warmstart ended with ${describeExit(await exited)}.`,
        { hint: lastLinesHint([...stdout.recent, ...stderr.recent]) },
      );
    }
    return { ttfrMs, report };
  } finally {
    signal?.removeEventListener("abort", onAbort);
    await stop();
  }
}

/** The performance.now() at which every probe had passed; undefined if never. */
async function waitForProbes(
  probes: readonly ProbeSpec[],
  output: LineBuffer,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<number | undefined> {
  const waitStartedAtMs = performance.now();
  const outcome = await waitUntilReady({
    probes,
    timeoutMs,
    output,
    signal,
    pollIntervalMs: POLL_INTERVAL_MS,
  });
  return outcome.ready ? waitStartedAtMs + outcome.elapsedMs : undefined;
}

/**
 * The moment `log` and `notify` probes held. A cold app prints its log line, which is read
 * here as warmstart reads it; a restored app printed it before the snapshot, and its
 * READY=1 goes to warmstart's socket: those count once warmstart says the launch is ready.
 */
async function waitForHeldProbes(
  probes: readonly ProbeSpec[],
  appLines: LineBuffer,
  readyLine: Promise<RegExpMatchArray | undefined>,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<number | undefined> {
  const logs = probes.filter((probe) => probe.kind === "log");
  const hasNotify = probes.some((probe) => probe.kind === "notify");
  if (logs.length === 0 && !hasNotify) return performance.now();
  const done = new AbortController();
  const onGone = () => done.abort();
  signal.addEventListener("abort", onGone, { once: true });
  const atReadyLine = readyLine.then((match) => (match ? performance.now() : undefined));
  const atLogLines = hasNotify
    ? new Promise<undefined>(() => {})
    : waitForProbes(logs, appLines, timeoutMs, done.signal);
  try {
    return await firstDefined([atReadyLine, atLogLines]);
  } finally {
    done.abort();
    signal.removeEventListener("abort", onGone);
  }
}

/** The first value that is not undefined; undefined once every promise gave undefined. */
function firstDefined<T>(promises: readonly Promise<T | undefined>[]): Promise<T | undefined> {
  return new Promise((resolve) => {
    let left = promises.length;
    for (const promise of promises) {
      void promise.then((value) => {
        left -= 1;
        if (value !== undefined || left === 0) resolve(value);
      });
    }
  });
}

/** The first line (already printed or later) that matches; undefined on timeout or abort. */
function waitForLine(
  lines: LineBuffer,
  pattern: RegExp,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<RegExpMatchArray | undefined> {
  return new Promise((resolve) => {
    let timer: NodeJS.Timeout | undefined;
    const settle = (match: RegExpMatchArray | undefined) => {
      clearTimeout(timer);
      unsubscribe();
      signal.removeEventListener("abort", onAbort);
      resolve(match);
    };
    const onAbort = () => settle(lines.recent.map((line) => pattern.exec(line)).find(Boolean) ?? undefined);
    const unsubscribe = lines.onLine((line) => {
      const match = pattern.exec(line);
      if (match) settle(match);
    });
    const seen = lines.recent.map((line) => pattern.exec(line)).find(Boolean);
    if (seen) return settle(seen);
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    timer = setTimeout(() => settle(undefined), timeoutMs);
  });
}

/**
 * A probe that passes before the launch has started would time nothing. The previous
 * launch's app may still be letting go of its port: it gets a few seconds.
 */
async function waitForProbesToFail(
  probes: readonly ProbeSpec[],
  label: string,
  signal: AbortSignal | undefined,
): Promise<void> {
  const deadlineMs = performance.now() + PROBE_RELEASE_TIMEOUT_MS;
  for (const probe of probes) {
    while (!signal?.aborted && (await passesNow(probe, signal))) {
      if (performance.now() > deadlineMs) {
        throw new WarmstartError(
          "invalid-option",
          `--ready ${describeProbe(probe)} already passes before the ${label} has started, so no launch can be timed by it.`,
          {
            hint: "something else answers there (another instance of the app?): stop it, or bench on a free port or path",
            details: { probe: describeProbe(probe) },
          },
        );
      }
      await delay(50);
    }
  }
}

async function passesNow(probe: ProbeSpec, signal: AbortSignal | undefined): Promise<boolean> {
  const outcome = await waitUntilReady({
    probes: [probe],
    timeoutMs: 100,
    output: new LineBuffer(),
    ...(signal ? { signal } : {}),
  });
  return outcome.ready;
}

function readLastReport(file: string): LaunchReport | undefined {
  if (!existsSync(file)) return undefined;
  const last = readFileSync(file, "utf8").trim().split("\n").at(-1);
  if (!last) return undefined;
  try {
    return JSON.parse(last) as LaunchReport;
  } catch {
    return undefined;
  }
}

function notReadyError(
  label: string,
  hasExited: boolean,
  exit: { code: number | null; signal: NodeJS.Signals | null },
  spawnError: Error | undefined,
  lastLines: readonly string[],
): WarmstartError {
  if (spawnError) {
    return new WarmstartError("spawn-failed", `Could not start the ${label}: ${spawnError.message}`, {
      cause: spawnError,
    });
  }
  if (hasExited) {
    return new WarmstartError(
      "app-exited",
      `The ${label} ended (${describeExit(exit)}) before its probes passed.`,
      { hint: lastLinesHint(lastLines), details: { exitCode: exit.code, lastLines: lastLines.slice(-10) } },
    );
  }
  return new WarmstartError(
    "readiness-timeout",
    `The ${label} was not ready after its --ready-timeout; it was stopped.`,
    { hint: lastLinesHint(lastLines), details: { lastLines: lastLines.slice(-10) } },
  );
}

function describeExit(exit: { code: number | null; signal: NodeJS.Signals | null }): string {
  return exit.code !== null ? `exit code ${exit.code}` : `signal ${exit.signal ?? "unknown"}`;
}

function lastLinesHint(lines: readonly string[]): string {
  const last = lines.slice(-10);
  return last.length > 0
    ? `its last output lines:\n${last.map((line) => `    ${line}`).join("\n")}`
    : "it printed nothing";
}

function throwIfAborted(signal: AbortSignal | undefined, label: string): void {
  if (signal?.aborted) {
    throw new WarmstartError("app-exited", `Interrupted during the ${label}.`, {
      details: { reason: String(signal.reason) },
    });
  }
}
