import { stat } from "node:fs/promises";
import { type Attempt, failed, PASSED } from "./attempt.js";
import { requestOnce } from "./http-probe.js";
import type { NotifyListener } from "./notify.js";
import type { OutputLines } from "./output-lines.js";
import { pollUntil, waitForEvent } from "./poll.js";
import type { FileIdentity, ProbeSpec } from "./probe-spec.js";
import { connectOnce } from "./tcp-probe.js";

export interface ProbeContext {
  readonly output: OutputLines;
  readonly notify: NotifyListener | undefined;
  readonly pollIntervalMs: number;
  /** Aborts when the wait is over, whatever its outcome; the probe then stops and resolves false. */
  readonly signal: AbortSignal;
  /** What a polled probe's latest failed try saw ("connection refused", "HTTP 404"). */
  readonly onFailure: (detail: string) => void;
}

/** A connect or request that hangs (a SYN into a firewall) must not hold up the next try. */
const ATTEMPT_TIMEOUT_MS = 1000;

/** Resolves true when the probe has passed, false when stopped by the context's signal first. */
export function runProbe(spec: ProbeSpec, context: ProbeContext): Promise<boolean> {
  const { output, notify, pollIntervalMs, signal, onFailure } = context;
  switch (spec.kind) {
    case "tcp":
      return pollUntil(
        (s) => connectOnce(spec.host, spec.port, ATTEMPT_TIMEOUT_MS, s),
        pollIntervalMs,
        signal,
        onFailure,
      );
    case "http":
      return pollUntil(
        (s) => requestOnce(spec.url, ATTEMPT_TIMEOUT_MS, s),
        pollIntervalMs,
        signal,
        onFailure,
      );
    case "file":
      return pollUntil(() => checkFresh(spec.path, spec.existedAs), pollIntervalMs, signal, onFailure);
    case "log":
      return waitForEvent(
        (pass) => output.onLine((line) => spec.pattern.test(line) && pass()),
        () => output.recent.some((line) => spec.pattern.test(line)),
        signal,
      );
    case "notify": {
      if (notify === undefined) throw new Error("runProbe: a notify probe needs a NotifyListener");
      return waitForEvent(
        (pass) => notify.onMessage((fields) => fields.READY === "1" && pass()),
        () => notify.readyReceived,
        signal,
      );
    }
  }
}

/** What an event probe that never passed saw: it has no tries to report, only an absence. */
export function describeEventProbeMiss(spec: ProbeSpec): string {
  return spec.kind === "notify" ? "no READY=1 received" : "no line of output matched";
}

/** The file exists, and is not the one that was there before the app started. */
async function checkFresh(path: string, existedAs: FileIdentity | undefined): Promise<Attempt> {
  try {
    const now = await stat(path);
    if (existedAs && now.ino === existedAs.ino && now.mtimeMs === existedAs.mtimeMs) {
      return failed("it is the file left over from before the app started");
    }
    return PASSED;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return failed(code === "ENOENT" ? "no such file" : `cannot stat it (${code})`);
  }
}
