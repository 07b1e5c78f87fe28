import type { CheckpointOutcome } from "./checkpoint.js";

/**
 * The steps a launch reports (`-v`), in the order of the state machine in launch.ts:
 *
 *   resolving ─► looking-up ─┬─► restoring ─► checking-ready ─► serving ─► exited
 *                            │        │  └─► stopped ··· resuming ─┘ (serve's spare, resumed later)
 *                            │        │ (any failure: warning; evicted unless the snapshot is fine)
 *                            │        ▼
 *                            └─► starting-cold ─► waiting-ready ─► serving ─► exited
 *                                                                  └─► checkpointing ─► committing (beside serving)
 */
export type LaunchStep =
  | "resolving"
  | "looking-up"
  | "restoring"
  | "checking-ready"
  | "stopped"
  | "resuming"
  | "starting-cold"
  | "waiting-ready"
  | "serving"
  | "checkpointing"
  | "committing"
  | "exited";

/** Why a launch that could have been warm was not. kebab-case, stable: scripts match on it. */
export type FallbackReason =
  | "criu-missing"
  | "criu-unusable"
  | "cache-dir-refused"
  /** The key could not be computed (an input file unreadable, the cache's secret damaged). */
  | "key-failed"
  | "entry-refused"
  | "entry-corrupt"
  | "restore-failed"
  /** The restore could not be set up (images not staged, pipes not made, too few fds for
   * CRIU): this launch's conditions, not the snapshot's fault; the snapshot is kept. */
  | "restore-not-started"
  /** A port the snapshot listens on is held by another process: the snapshot is kept. */
  | "port-taken"
  | "restored-not-ready"
  /** The restored app's runtime did not reseed (or did not say so in time). */
  | "reseed-failed"
  /** A restore hook failed and --strict-hooks was given. */
  | "hook-failed"
  | "warm-not-faster";

export type LaunchEvent =
  | { readonly type: "step"; readonly step: LaunchStep; readonly atMs: number; readonly detail?: string }
  | { readonly type: "fallback"; readonly reason: FallbackReason; readonly message: string }
  /** Something the user should know that changes no mode: a snapshot not taken, and why. */
  | { readonly type: "warning"; readonly message: string }
  | {
      readonly type: "ready";
      readonly mode: "cold" | "warm";
      readonly pid: number;
      readonly readyMs: number;
      /** The snapshot restored (warm) or to be taken (cold); null without a cache. */
      readonly key: string | null;
      /** The restored snapshot's images (warm); null on a cold launch. */
      readonly imageBytes: number | null;
    }
  | { readonly type: "checkpoint"; readonly outcome: CheckpointOutcome; readonly atMs: number };

export function describeStep(step: LaunchStep): string {
  switch (step) {
    case "resolving":
      return "resolving the command and the cache key";
    case "looking-up":
      return "looking up the cache";
    case "restoring":
      return "restoring the snapshot";
    case "checking-ready":
      return "re-checking readiness after restore";
    case "stopped":
      return "restored, left stopped";
    case "resuming":
      return "resuming the stopped restore";
    case "starting-cold":
      return "starting cold";
    case "waiting-ready":
      return "waiting for readiness";
    case "serving":
      return "ready";
    case "checkpointing":
      return "checkpointing";
    case "committing":
      return "committing the snapshot";
    case "exited":
      return "app exited";
  }
}
