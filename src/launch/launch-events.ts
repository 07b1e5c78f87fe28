import type { CheckpointOutcome } from "./checkpoint.js";

/**
 * The launch lifecycle. Every launch walks one path through it:
 *
 *   resolving ─► looking-up ─┬─► restoring ─► checking-ready ─► serving ─► exited
 *                            │        │ (any failure: warning, evict)
 *                            │        ▼
 *                            └─► starting-cold ─► waiting-ready ─► serving ─► exited
 *                                                                  └─► checkpointing (beside serving)
 */
export type LaunchStep =
  | "resolving"
  | "looking-up"
  | "restoring"
  | "checking-ready"
  | "starting-cold"
  | "waiting-ready"
  | "serving"
  | "checkpointing"
  | "exited";

/** Why a launch that could have been warm was not. kebab-case, stable: scripts match on it. */
export type FallbackReason =
  | "criu-missing"
  | "criu-unusable"
  | "cache-dir-refused"
  | "entry-refused"
  | "entry-corrupt"
  | "restore-failed"
  | "restored-not-ready"
  | "warm-not-faster";

export type LaunchEvent =
  | { readonly type: "step"; readonly step: LaunchStep; readonly atMs: number; readonly detail?: string }
  | { readonly type: "fallback"; readonly reason: FallbackReason; readonly message: string }
  /** Something the user should know that changes no mode: a snapshot not taken, and why. */
  | { readonly type: "warning"; readonly message: string }
  | { readonly type: "ready"; readonly mode: "cold" | "warm"; readonly pid: number; readonly readyMs: number }
  | { readonly type: "checkpoint"; readonly outcome: CheckpointOutcome };

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
    case "starting-cold":
      return "starting cold";
    case "waiting-ready":
      return "waiting for readiness";
    case "serving":
      return "ready";
    case "checkpointing":
      return "checkpointing";
    case "exited":
      return "app exited";
  }
}
