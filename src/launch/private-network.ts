import { readlinkSync } from "node:fs";
import { distPath } from "../dist-paths.js";
import { inNetworkOf, nodeScript } from "../exec/command-lines.js";
import { spawnOwned } from "../exec/owned-process.js";
import type { ProbeSpec } from "../readiness/probe-spec.js";

// A prewarm runs the new version of an app beside the one that serves, on the same ports.
// It gets a network namespace of its own (loopback only; startCold makes it): its ports do
// not clash, and its probes cannot be answered by the old version. CRIU dumps it from inside
// that namespace, so the image holds plain sockets that a restore recreates in the host's.

export function isNetworkProbe(probe: ProbeSpec): boolean {
  return probe.kind === "tcp" || probe.kind === "http";
}

/**
 * Runs tcp/http probes inside the app's network namespace; true when they all passed.
 * Waits first until the app has entered its namespace: until `unshare --net` has run, the
 * PID is the wrapper in the host's namespace, where the serving old version would answer.
 */
export async function waitForNetworkProbesInside(
  pid: number,
  probes: readonly ProbeSpec[],
  timeoutMs: number,
  signal: AbortSignal,
): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  const hostNamespace = readlinkSync("/proc/self/ns/net");
  while (readNetworkNamespace(pid) === hostNamespace) {
    if (signal.aborted || performance.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  if (readNetworkNamespace(pid) === undefined) return false;
  return runProbesInside(pid, probes, Math.max(1, deadline - performance.now()), signal);
}

function readNetworkNamespace(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/net`);
  } catch {
    return undefined;
  }
}

async function runProbesInside(
  pid: number,
  probes: readonly ProbeSpec[],
  timeoutMs: number,
  signal: AbortSignal,
): Promise<boolean> {
  const main = distPath("src/readiness/probe-main.js");
  const probe = nodeScript(main, [JSON.stringify(probes), String(Math.round(timeoutMs))]);
  const exit = await spawnOwned(inNetworkOf(pid, probe), { signal, killGraceMs: 0 }).exited;
  return exit.code === 0;
}
