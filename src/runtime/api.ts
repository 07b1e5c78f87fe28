/**
 * `warmstart/runtime`: for apps that want a say in their checkpoints. No dependencies, and a
 * no-op outside warmstart (the hooks are kept and never called).
 *
 *   import { onCheckpoint, onRestore, isRestored } from "warmstart/runtime";
 *   onCheckpoint(() => pool.end());
 *   onRestore(() => { pool = new Pool(); });
 *
 * Checkpoint hooks run before the snapshot, newest first; restore hooks after it, oldest
 * first, in the restored copy and in the original (which keeps running after the dump, told
 * so by `info.isRestored === false`). Both may return promises: each phase's hooks share one
 * timeout (10 s unless warmstart's --hook-timeout says otherwise). A checkpoint hook that
 * throws or times out cancels that snapshot; the app keeps serving.
 */
import { getRegistry, type RestoreHook } from "./registry.js";

export type { RestoreInfo, SnapshotOutcome } from "./registry.js";

/** Runs `hook` before each snapshot. Returns a function that removes it. */
export function onCheckpoint(hook: () => unknown): () => void {
  return register(getRegistry().checkpointHooks, hook);
}

/** Runs `hook` after each snapshot: in a restored copy, and in the original. Returns a
 * function that removes it. */
export function onRestore(hook: RestoreHook): () => void {
  return register(getRegistry().restoreHooks, hook);
}

/** True in a process restored from a snapshot (from the moment its generators are reseeded). */
export function isRestored(): boolean {
  return getRegistry().restoreCount > 0;
}

/** True when warmstart's runtime runs in this process: the hooks will be called. */
export function isManaged(): boolean {
  return getRegistry().isManaged;
}

function register<T>(list: T[], hook: T): () => void {
  if (typeof hook !== "function") throw new TypeError(`Expected a function, got ${typeof hook}.`);
  list.push(hook);
  return () => {
    const index = list.indexOf(hook);
    if (index !== -1) list.splice(index, 1);
  };
}
