import type { AppProcess } from "./app-process.js";

/** The abort reason is the signal warmstart received (the CLI passes its name). */
export function toSignal(reason: unknown): NodeJS.Signals {
  return typeof reason === "string" && reason.startsWith("SIG") ? (reason as NodeJS.Signals) : "SIGTERM";
}

/**
 * While the launch waits for the app, aborting sends it the signal, as a signal to warmstart
 * would reach an app started without it. An abort that came earlier (during the lookup, or
 * while a failed restore was cleaned up) counts at once. Returns the function that stops
 * watching.
 */
export function stopOnAbort(signal: AbortSignal | undefined, app: AppProcess): () => void {
  if (!signal) return () => {};
  const stop = () => app.kill(toSignal(signal.reason));
  if (signal.aborted) {
    stop();
    return () => {};
  }
  signal.addEventListener("abort", stop, { once: true });
  return () => signal.removeEventListener("abort", stop);
}
