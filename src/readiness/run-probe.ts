import { stat } from "node:fs/promises";
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
}

/** A connect or request that hangs (a SYN into a firewall) must not hold up the next try. */
const ATTEMPT_TIMEOUT_MS = 1000;

/** Resolves true when the probe has passed, false when stopped by the context's signal first. */
export function runProbe(spec: ProbeSpec, context: ProbeContext): Promise<boolean> {
  const { output, notify, pollIntervalMs, signal } = context;
  switch (spec.kind) {
    case "tcp":
      return pollUntil(
        (s) => connectOnce(spec.host, spec.port, ATTEMPT_TIMEOUT_MS, s),
        pollIntervalMs,
        signal,
      );
    case "http":
      return pollUntil((s) => requestOnce(spec.url, ATTEMPT_TIMEOUT_MS, s), pollIntervalMs, signal);
    case "file":
      return pollUntil(() => isFresh(spec.path, spec.existedAs), pollIntervalMs, signal);
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

/** The file exists, and is not the one that was there before the app started. */
async function isFresh(path: string, existedAs: FileIdentity | undefined): Promise<boolean> {
  try {
    const now = await stat(path);
    return !existedAs || now.ino !== existedAs.ino || now.mtimeMs !== existedAs.mtimeMs;
  } catch {
    return false;
  }
}
