import type { ProbeSpec } from "../readiness/probe-spec.js";
import { listListeningSockets } from "./proc-sockets.js";

/**
 * The ports of tcp/http probes on which no process of the app listens. A probe answered by
 * another process (an old instance still holding the port) would call a starting app
 * ready; a snapshot of it would be of an app that is not.
 */
export function findPortsNotHeldByApp(pid: number, probes: readonly ProbeSpec[]): number[] {
  const ports = probes.flatMap((probe) => {
    if (probe.kind === "tcp" && isLoopback(probe.host)) return [probe.port];
    if (probe.kind === "http" && isLoopback(new URL(probe.url).hostname)) return [urlPort(probe.url)];
    // Another host's ports cannot be checked from here.
    return [];
  });
  if (ports.length === 0) return [];
  const held = new Set(listListeningSockets(pid).map((socket) => socket.port));
  return [...new Set(ports)].filter((port) => !held.has(port));
}

function urlPort(url: string): number {
  const parsed = new URL(url);
  return parsed.port ? Number(parsed.port) : parsed.protocol === "https:" ? 443 : 80;
}

function isLoopback(host: string): boolean {
  return host === "localhost" || host.startsWith("127.") || host === "::1" || host === "[::1]";
}
