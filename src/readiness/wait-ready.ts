import { invalidOption } from "../errors.js";
import type { NotifyListener } from "./notify.js";
import type { OutputLines } from "./output-lines.js";
import { describeProbe, type ProbeSpec } from "./probe-spec.js";
import { describeEventProbeMiss, runProbe } from "./run-probe.js";

export interface WaitReadyOptions {
  /** All must pass, each once; a probe that passed stays passed. */
  readonly probes: readonly ProbeSpec[];
  /** Counted from the call. */
  readonly timeoutMs: number;
  /** The app's stdout and stderr lines, for `log:` probes. */
  readonly output: OutputLines;
  /** Required when a `notify` probe is among `probes`. */
  readonly notify?: NotifyListener;
  /** The caller aborts it when the wait is moot (the app exited, the user pressed Ctrl-C). */
  readonly signal?: AbortSignal;
  /** How often tcp, http and file probes retry. Default 10. */
  readonly pollIntervalMs?: number;
}

export type ReadyOutcome =
  | { ready: true; elapsedMs: number }
  | {
      ready: false;
      reason: "timeout";
      elapsedMs: number;
      pending: ProbeSpec[];
      /** What each pending probe saw last, in the order of `pending`. */
      lastResults: string[];
    }
  | { ready: false; reason: "aborted"; elapsedMs: number };

/** setTimeout fires after 1 ms when given more than this; longer waits are re-armed. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Waits until every probe has passed. Resolves only once every probe has stopped, so no
 * probe connection is left open when the caller goes on to checkpoint the app.
 */
export async function waitUntilReady(options: WaitReadyOptions): Promise<ReadyOutcome> {
  const startedAtMs = performance.now();
  const elapsedMs = () => performance.now() - startedAtMs;
  const { probes, timeoutMs, output, notify, signal } = options;
  const pollIntervalMs = options.pollIntervalMs ?? 10;
  if (!(timeoutMs >= 0)) throw invalidOption("timeoutMs", "a non-negative number of milliseconds", timeoutMs);
  if (!(pollIntervalMs > 0 && Number.isFinite(pollIntervalMs))) {
    throw invalidOption("pollIntervalMs", "a positive number of milliseconds", options.pollIntervalMs);
  }
  if (notify === undefined && probes.some((probe) => probe.kind === "notify")) {
    throw invalidOption(
      "notify",
      "a NotifyListener (from createNotifyListener) when a notify probe is used",
      notify,
    );
  }
  if (signal?.aborted) return { ready: false, reason: "aborted", elapsedMs: elapsedMs() };

  const stop = new AbortController();
  const passed = new Set<number>();
  const lastResults = new Map<number, string>();
  let runs: Promise<void>[] = [];
  const outcome = await new Promise<ReadyOutcome>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    const finish = (value: ReadyOutcome | Error) => {
      if (stop.signal.aborted) return;
      stop.abort();
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      if (value instanceof Error) reject(value);
      else resolve(value);
    };
    const onAbort = () => finish({ ready: false, reason: "aborted", elapsedMs: elapsedMs() });
    // Timers may fire a little early by the performance clock; re-arm for what is left.
    const onTimer = () => {
      const leftMs = timeoutMs - elapsedMs();
      if (leftMs > 0) {
        timer = setTimeout(onTimer, Math.min(Math.ceil(leftMs), MAX_TIMER_MS));
        return;
      }
      const indexes = probes.map((_, index) => index).filter((index) => !passed.has(index));
      finish({
        ready: false,
        reason: "timeout",
        elapsedMs: elapsedMs(),
        pending: indexes.map((index) => probes[index] as ProbeSpec),
        lastResults: indexes.map((index) =>
          describeLastResult(probes[index] as ProbeSpec, lastResults.get(index)),
        ),
      });
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    timer = setTimeout(onTimer, Math.min(timeoutMs, MAX_TIMER_MS));
    if (probes.length === 0) finish({ ready: true, elapsedMs: elapsedMs() });
    runs = probes.map(async (probe, index) => {
      const context = {
        output,
        notify,
        pollIntervalMs,
        signal: stop.signal,
        onFailure: (detail: string) => lastResults.set(index, detail),
      };
      try {
        if (!(await runProbe(probe, context))) return;
      } catch (error) {
        return finish(error instanceof Error ? error : new Error(String(error)));
      }
      passed.add(index);
      if (passed.size === probes.length) finish({ ready: true, elapsedMs: elapsedMs() });
    });
  });
  await Promise.all(runs);
  return outcome;
}

function describeLastResult(probe: ProbeSpec, lastResult: string | undefined): string {
  if (probe.kind === "log" || probe.kind === "notify") return describeEventProbeMiss(probe);
  return lastResult === undefined ? "no try finished" : `last try: ${lastResult}`;
}

/**
 * The probes a timeout left pending, each with what it saw last:
 * `tcp:localhost:4101 (connection refused), http://127.0.0.1:3000/health (HTTP 404)`.
 */
export function describePendingProbes(outcome: {
  pending: readonly ProbeSpec[];
  lastResults: readonly string[];
}): string {
  return outcome.pending
    .map((probe, index) => `${describeProbe(probe)} (${outcome.lastResults[index] ?? "no try finished"})`)
    .join(", ");
}
