/**
 * Where `warmstart/runtime` (imported by the app, maybe from another copy or version of
 * warmstart in its own node_modules) and the runtime warmstart injects meet: one object per
 * JavaScript realm (the main thread and each worker have their own), under a global symbol
 * whose name carries the protocol version. Whoever comes first creates it. A later protocol
 * that changes this shape takes a new symbol, and the injected runtime serves both.
 * No imports: it is bundled into both sides.
 */

export const REGISTRY_SYMBOL_NAME = "warmstart.runtime/1";

/** Where the copy that runs the after-hooks stands. */
export type SnapshotOutcome =
  /** This process is a copy restored from the snapshot. */
  | "restored"
  /** This process is the original; the snapshot was saved and it keeps running. */
  | "saved"
  /** This process is the original; no snapshot was kept (a hook or the dump failed). */
  | "cancelled";

export interface RestoreInfo {
  readonly outcome: SnapshotOutcome;
  /** True in a restored copy, false in the original process. */
  readonly isRestored: boolean;
}

export type CheckpointHook = () => unknown;
export type RestoreHook = (info: RestoreInfo) => unknown;

export interface Registry {
  readonly protocol: 1;
  readonly checkpointHooks: CheckpointHook[];
  readonly restoreHooks: RestoreHook[];
  /** Set by the injected runtime: this realm takes part in warmstart's checkpoints. */
  isManaged: boolean;
  /** How many times this realm resumed as a restored copy (0 in the original). */
  restoreCount: number;
}

export function getRegistry(): Registry {
  const key = Symbol.for(REGISTRY_SYMBOL_NAME);
  const scope = globalThis as unknown as Record<symbol, Registry | undefined>;
  let registry = scope[key];
  if (!registry) {
    registry = { protocol: 1, checkpointHooks: [], restoreHooks: [], isManaged: false, restoreCount: 0 };
    Object.defineProperty(globalThis, key, { value: registry, enumerable: false });
  }
  return registry;
}
