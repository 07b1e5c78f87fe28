// serve's decisions, as pure functions of what the kernel showed: unit-tested without root,
// CRIU or a socket. serve.ts reads the kernel and follows what these say.
import type { ConnectionActivity } from "./activity.js";

export interface QuietFacts {
  /** Since the instance began serving. */
  readonly sinceServingMs: number;
  /** Connections in its listeners' accept queues. */
  readonly queued: number;
  /** Its established connections. */
  readonly connections: readonly ConnectionActivity[];
}

/**
 * How long the instance has carried no traffic: since it began serving, or since any of its
 * connections last received or sent data; 0 while connections queue or an answer is still
 * going out. An open keep-alive connection that carries nothing does not count as traffic,
 * so it cannot keep an instance up forever.
 */
export function measureQuietMs(facts: QuietFacts): number {
  if (facts.queued > 0) return 0;
  let quietMs = facts.sinceServingMs;
  for (const connection of facts.connections) {
    if (connection.sendQueueBytes > 0) return 0;
    quietMs = Math.min(quietMs, connection.lastReceivedMs, connection.lastSentMs);
  }
  return Math.max(0, quietMs);
}

/** `--idle 0` never stops an instance. */
export function isIdle(quietMs: number, idleMs: number): boolean {
  return idleMs > 0 && quietMs >= idleMs;
}

/** Consecutive monitor ticks with connections waiting before serve adds a copy. */
export const QUEUED_TICKS_TO_SCALE = 2;

/** Whether to restore one more copy: connections queue on every running one, and there is room. */
export function decideScaleUp(facts: {
  readonly running: number;
  readonly starting: number;
  readonly maxInstances: number;
  /** Ticks in a row on which the running copies' queues held connections. */
  readonly queuedTicks: number;
}): boolean {
  return (
    facts.running > 0 &&
    facts.starting === 0 &&
    facts.running + facts.starting < facts.maxInstances &&
    facts.queuedTicks >= QUEUED_TICKS_TO_SCALE
  );
}

/** A spare is kept while there is room for one more copy beside the running ones. */
export function isSpareWanted(facts: {
  readonly isSpareEnabled: boolean;
  readonly hasSpare: boolean;
  readonly isSpareStarting: boolean;
  readonly running: number;
  readonly maxInstances: number;
  readonly isDraining: boolean;
}): boolean {
  return (
    facts.isSpareEnabled &&
    !facts.hasSpare &&
    !facts.isSpareStarting &&
    !facts.isDraining &&
    facts.running < facts.maxInstances
  );
}

/** After a failed start, the next try waits: 1 s, doubling, at most 30 s. */
export function retryDelayMs(failuresInARow: number): number {
  return Math.min(30_000, 1000 * 2 ** Math.max(0, failuresInARow - 1));
}
