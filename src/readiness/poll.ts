import { setTimeout as delay } from "node:timers/promises";

/**
 * Runs `attempt` every `intervalMs` until it returns true (resolves true) or `signal`
 * aborts (resolves false). Each attempt gets the signal so it can stop mid-way.
 */
export async function pollUntil(
  attempt: (signal: AbortSignal) => Promise<boolean>,
  intervalMs: number,
  signal: AbortSignal,
): Promise<boolean> {
  while (!signal.aborted) {
    if (await attempt(signal)) return true;
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
