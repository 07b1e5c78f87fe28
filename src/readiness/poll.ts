import { setTimeout as delay } from "node:timers/promises";
import type { Attempt } from "./attempt.js";

/**
 * Runs `attempt` every `intervalMs` until it passes (resolves true) or `signal` aborts
 * (resolves false). Each attempt gets the signal so it can stop mid-way; each failed one is
 * told to `onFailure`, so the caller knows what the probe saw last.
 */
export async function pollUntil(
  attempt: (signal: AbortSignal) => Promise<Attempt>,
  intervalMs: number,
  signal: AbortSignal,
  onFailure: (detail: string) => void,
): Promise<boolean> {
  while (!signal.aborted) {
    const result = await attempt(signal);
    if (result.isPassed) return true;
    // An attempt cut short by the end of the wait saw nothing worth reporting.
    if (!signal.aborted) onFailure(result.detail);
    await delay(intervalMs, undefined, { signal }).catch(() => {});
  }
  return false;
}

/**
 * Resolves true once `hasPassed()` holds or `subscribe` calls its `pass`, false when
 * `signal` aborts. Subscribes before checking, so an event between the two is not lost.
 */
export function waitForEvent(
  subscribe: (pass: () => void) => () => void,
  hasPassed: () => boolean,
  signal: AbortSignal,
): Promise<boolean> {
  return new Promise((resolve) => {
    let isSettled = false;
    const settle = (isPassed: boolean) => {
      if (isSettled) return;
      isSettled = true;
      unsubscribe();
      signal.removeEventListener("abort", onAbort);
      resolve(isPassed);
    };
    const onAbort = () => settle(false);
    const unsubscribe = subscribe(() => settle(true));
    signal.addEventListener("abort", onAbort, { once: true });
    if (signal.aborted) settle(false);
    else if (hasPassed()) settle(true);
  });
}
