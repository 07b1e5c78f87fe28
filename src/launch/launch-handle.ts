import type { AppExit, AppProcess } from "./app-process.js";
import type { CheckpointOutcome } from "./checkpoint.js";
import type { FallbackReason } from "./launch-events.js";

export interface LaunchReport {
  readonly mode: "cold" | "warm";
  /** The snapshot's entry (restored, or saved by this cold launch), else the base key. */
  readonly key: string | null;
  /** What the app is (src/cache/key.ts): the same for every launch of one app, whichever
   * entry it restored or saved. */
  readonly baseKey: string | null;
  readonly command: readonly string[];
  readonly pid: number;
  readonly readyMs: number;
  readonly cache: "hit" | "miss" | "bypassed" | "unavailable";
  readonly fallbackReason: FallbackReason | null;
  readonly checkpointMs: number | null;
  readonly imageBytes: number | null;
  readonly checkpoint: "saved" | "failed" | "skipped" | "lost-race" | "abandoned" | null;
  readonly exitCode: number | null;
}

/** A launched app, ready. */
export interface Launch {
  readonly mode: "cold" | "warm";
  readonly pid: number;
  /** The restored entry's key; for a cold launch the base key (its entry's key, which names
   * the inputs seen while it started, is in report() once the snapshot is saved). */
  readonly key: string | null;
  readonly readyMs: number;
  /** Settles when the launch's own work after ready is done: a cold launch's checkpoint, a
   * warm launch's bookkeeping in the cache (undefined: no checkpoint was taken). */
  readonly checkpoint: Promise<CheckpointOutcome | undefined>;
  readonly exited: Promise<AppExit>;
  kill(signal: NodeJS.Signals): void;
  readonly stdin: NodeJS.WritableStream | null;
  /** The report line; exitCode is filled in once the app has exited. */
  report(): Promise<LaunchReport>;
}

export function toLaunch(
  launched: {
    mode: "cold" | "warm";
    app: AppProcess;
    key: string | null;
    readyMs: number;
    checkpoint: Promise<CheckpointOutcome | undefined>;
    /** Called before the signal goes to the app (a checkpoint in progress is abandoned). */
    onKill?: (signal: NodeJS.Signals) => void;
  },
  extra: Pick<LaunchReport, "command" | "cache" | "fallbackReason" | "imageBytes" | "baseKey">,
): Launch {
  const { app } = launched;
  let exitCode: number | null = null;
  void app.exited.then((exit) => {
    exitCode = exit.exitCode;
  });
  return {
    mode: launched.mode,
    pid: app.pid,
    key: launched.key,
    readyMs: launched.readyMs,
    checkpoint: launched.checkpoint,
    exited: app.exited,
    stdin: app.stdin,
    kill: (signal) => {
      launched.onKill?.(signal);
      app.kill(signal);
    },
    async report() {
      const outcome = await launched.checkpoint;
      return {
        mode: launched.mode,
        // A cold launch knows its entry's key once the snapshot is saved (it names the inputs).
        key: outcome?.saved ? outcome.entry.manifest.key : launched.key,
        baseKey: extra.baseKey,
        command: extra.command,
        pid: app.pid,
        readyMs: launched.readyMs,
        cache: extra.cache,
        fallbackReason: extra.fallbackReason,
        checkpointMs: outcome?.checkpointMs ?? null,
        imageBytes: outcome?.saved ? outcome.entry.manifest.imageBytes : extra.imageBytes,
        checkpoint: outcome
          ? outcome.saved
            ? "saved"
            : outcome.reason === "lost-race" || outcome.reason === "abandoned"
              ? outcome.reason
              : "failed"
          : launched.mode === "cold"
            ? "skipped"
            : null,
        exitCode,
      };
    },
  };
}
