import type { NotifyListener } from "../readiness/notify.js";
import type { OutputLines } from "../readiness/output-lines.js";
import { describeProbe, type ProbeSpec } from "../readiness/probe-spec.js";
import { describePendingProbes, waitUntilReady } from "../readiness/wait-ready.js";
import type { AppProcess } from "./app-process.js";
import type { ResolvedOptions } from "./launch-options.js";
import { isNetworkProbe, waitForNetworkProbesInside } from "./private-network.js";

type Readiness = { ready: true } | { ready: false; reason: "timeout" | "app-exited"; detail: string };

/** Waits for the probes, giving up early when the app exits. */
export async function waitForReadiness(
  app: AppProcess,
  opts: ResolvedOptions,
  probes: readonly ProbeSpec[],
  notify: NotifyListener | undefined,
): Promise<Readiness> {
  if (probes.length === 0)
    return app.hasExited() ? { ready: false, reason: "app-exited", detail: "" } : { ready: true };
  const abort = new AbortController();
  void app.exited.then(() => abort.abort());
  const output: OutputLines = mergeOutput(app);
  const inside = opts.isNetworkIsolated ? probes.filter(isNetworkProbe) : [];
  const [outcome, isInsideReady] = await Promise.all([
    waitUntilReady({
      probes: probes.filter((probe) => !inside.includes(probe)),
      timeoutMs: opts.readyTimeoutMs,
      output,
      ...(notify ? { notify } : {}),
      signal: abort.signal,
    }),
    inside.length > 0
      ? waitForNetworkProbesInside(app.pid, inside, opts.readyTimeoutMs, abort.signal)
      : Promise.resolve(true),
  ]);
  abort.abort();
  if (!isInsideReady && !app.hasExited()) {
    return { ready: false, reason: "timeout", detail: inside.map(describeProbe).join(", ") };
  }
  if (outcome.ready)
    return app.hasExited() ? { ready: false, reason: "app-exited", detail: "" } : { ready: true };
  if (outcome.reason === "aborted") return { ready: false, reason: "app-exited", detail: "" };
  return { ready: false, reason: "timeout", detail: describePendingProbes(outcome) };
}

function mergeOutput(app: AppProcess): OutputLines {
  return {
    get recent() {
      return [...app.stdout.recent, ...app.stderr.recent];
    },
    onLine(listener) {
      const offOut = app.stdout.onLine(listener);
      const offErr = app.stderr.onLine(listener);
      return () => {
        offOut();
        offErr();
      };
    },
  };
}

/**
 * After a restore the app is in the state it had when it was ready: the log line it printed
 * and the READY=1 it sent are in the past. What can be checked again (ports, URLs, files)
 * is; the rest held at checkpoint time.
 */
export function recheckableProbes(probes: readonly ProbeSpec[]): ProbeSpec[] {
  return probes.filter((probe) => probe.kind === "tcp" || probe.kind === "http" || probe.kind === "file");
}
