// The launch's decisions, as pure functions of what it found: unit-tested without root,
// CRIU or a process. launch.ts does the I/O and follows what these say.

import type { NeverSlowerDecision } from "../cache/entry-stats.js";
import type { CacheEntry, LookupOutcome } from "../cache/entry-store.js";
import { summarizeCriuErrors } from "../criu/criu-log.js";
import { CRIU_INSTALL_FIX, type FindCriuOutcome } from "../criu/find-criu.js";
import type { FallbackReason } from "./launch-events.js";
import { describePortHolder, type PortHolder } from "./proc-sockets.js";

/** Why this launch is not warm, as the user reads it. */
export interface Fallback {
  readonly reason: FallbackReason;
  readonly message: string;
}

/** How the launch used the cache, for its report. */
export type CacheUse = "hit" | "miss" | "bypassed" | "unavailable";

/** Whether snapshots are possible at all on this launch; null when they are. */
export function judgeCriu(found: FindCriuOutcome): Fallback | null {
  if (found.found) return null;
  if (found.reason === "missing") {
    return {
      reason: "criu-missing",
      message: `CRIU was not found, starting without snapshots (${CRIU_INSTALL_FIX})`,
    };
  }
  const what = found.reason === "too-old" ? `is version ${found.version.text}` : "does not report a version";
  return {
    reason: "criu-unusable",
    message: `${found.path} ${what}, warmstart needs CRIU >= 4.2 (${CRIU_INSTALL_FIX})`,
  };
}

export type LookupDecision =
  | {
      readonly action: "restore";
      readonly entry: CacheEntry;
      readonly isLazy: boolean;
      /** The never-slower rule let this one through to measure again. */
      readonly isRemeasure: boolean;
    }
  | {
      readonly action: "start-cold";
      readonly fallback: Fallback | null;
      readonly isEvicted: boolean;
      readonly isSnapshotWanted: boolean;
      readonly cacheUse: CacheUse;
      /** A cold launch the never-slower rule chose: its time is a cold sample of the entry. */
      readonly ruleEntryDir?: string;
      /** For -v, when there is nothing to warn about. */
      readonly detail?: string;
    };

export interface LookupFacts {
  readonly found: LookupOutcome;
  /** The never-slower rule's verdict on a hit's stats. */
  readonly neverSlower: NeverSlowerDecision;
  /** Processes listening where the snapshot will listen (empty unless it is a hit). */
  readonly portHolders: readonly PortHolder[];
  /** --lazy / --no-lazy, or undefined for the default. */
  readonly isLazy: boolean | undefined;
  readonly lazyMinImageBytes: number;
  /** Only asked on a miss (it reads the other entries). */
  readonly explainMiss: () => string;
}

/** After the lookup: restore, or start cold, saying why, and what becomes of the entry. */
export function decideAfterLookup(facts: LookupFacts): LookupDecision {
  const { found } = facts;
  if (!found.hit) {
    switch (found.reason) {
      case "missing":
        return coldStart(null, { detail: `miss: ${facts.explainMiss()}` });
      case "refused":
        // Never delete what we do not own: a refused entry stays for the user to inspect.
        return coldStart(
          {
            reason: "entry-refused",
            message: `cache entry refused: ${found.detail}; starting cold without a snapshot`,
          },
          { isSnapshotWanted: false, cacheUse: "unavailable" },
        );
      case "corrupt":
        return coldStart(
          {
            reason: "entry-corrupt",
            message: `cache entry is damaged: ${found.detail}; evicted it, starting cold`,
          },
          { isEvicted: true },
        );
    }
  }
  const { entry } = found;
  if (facts.neverSlower.action === "start-cold") {
    // The entry is valid, just not worth restoring: keep it, do not dump again.
    const { warmMs, coldMs } = facts.neverSlower;
    return coldStart(
      {
        reason: "warm-not-faster",
        message: `a warm start of this app was not faster (median warm ${warmMs} ms, cold ${coldMs} ms): starting it cold; it is measured again now and then, --refresh measures now`,
      },
      { isSnapshotWanted: false, ruleEntryDir: entry.dir },
    );
  }
  const [holder] = facts.portHolders;
  if (holder) {
    return coldStart(
      {
        reason: "port-taken",
        message: `${describePortHolder(holder)}, where the snapshot listens: kept the snapshot, starting cold (a restored app needs its listening ports free)`,
      },
      { isSnapshotWanted: false },
    );
  }
  return {
    action: "restore",
    entry,
    isLazy: facts.isLazy ?? entry.manifest.imageBytes >= facts.lazyMinImageBytes,
    isRemeasure: facts.neverSlower.isRemeasure,
  };
}

function coldStart(
  fallback: Fallback | null,
  options: {
    readonly isEvicted?: boolean;
    readonly isSnapshotWanted?: boolean;
    readonly cacheUse?: CacheUse;
    readonly ruleEntryDir?: string;
    readonly detail?: string;
  } = {},
): LookupDecision {
  return {
    action: "start-cold",
    fallback,
    isEvicted: options.isEvicted ?? false,
    isSnapshotWanted: options.isSnapshotWanted ?? true,
    cacheUse: options.cacheUse ?? "miss",
    ...(options.ruleEntryDir ? { ruleEntryDir: options.ruleEntryDir } : {}),
    ...(options.detail ? { detail: options.detail } : {}),
  };
}

export interface RestoreFailure {
  readonly fallback: Fallback;
  /** False when the snapshot is fine and something else was in the way. */
  readonly isEvicted: boolean;
}

/** After a failed restore: one that could not be set up, or a port in use, keeps the snapshot;
 * anything else CRIU failed at evicts it. */
export function decideAfterRestoreFailure(
  errors: readonly string[],
  /** CRIU's log, if it wrote one. */
  logPath: string | undefined,
  isStarted = true,
): RestoreFailure {
  const log = logPath === undefined ? "" : ` (CRIU log: ${logPath})`;
  if (!isStarted) {
    // Out of fds, a full or read-only runtime directory: this machine, now, not the snapshot.
    return {
      fallback: {
        reason: "restore-not-started",
        message: `the restore could not be set up (${errors.join("; ")}); kept the snapshot, starting cold`,
      },
      isEvicted: false,
    };
  }
  // CRIU needs fds of its own above the app's: under a low `ulimit -n` it cannot even start
  // ("Can't chose service_fd_base"). The limit is this launch's, not the snapshot's fault.
  if (errors.some((line) => /service_fd_base|Too many open files|EMFILE/.test(line))) {
    return {
      fallback: {
        reason: "restore-not-started",
        message: `restore failed: CRIU ran out of file descriptors (raise \`ulimit -n\`); kept the snapshot, starting cold${log}`,
      },
      isEvicted: false,
    };
  }
  if (errors.some((line) => /Address already in use|EADDRINUSE/.test(line))) {
    return {
      fallback: {
        reason: "port-taken",
        message: `restore failed: a port the app listens on is taken by another process (a restored app needs its listening ports free); kept the snapshot, starting cold${log}`,
      },
      isEvicted: false,
    };
  }
  return {
    fallback: {
      reason: "restore-failed",
      message: `restore failed: ${summarizeCriuErrors(errors)}; evicted the snapshot, starting cold${log}`,
    },
    isEvicted: true,
  };
}

/**
 * A restored copy that finds another process listening on one of its ports: CRIU binds
 * restored sockets with SO_REUSEPORT forced on, so the copy joined that listener's group and
 * the kernel would split connections between them, silently, where a cold start fails with
 * EADDRINUSE. Unless the launch shares ports on purpose (`serve`), the copy is stopped.
 */
export function decideAfterRestoredPorts(
  holders: readonly PortHolder[],
  portPolicy: "exclusive" | "shared",
): RestoreFailure | null {
  const [holder] = holders;
  if (!holder || portPolicy === "shared") return null;
  return {
    fallback: {
      reason: "port-taken",
      message: `the restored app would share its port with another listener (${describePortHolder(holder)}); stopped it and kept the snapshot, starting cold`,
    },
    isEvicted: false,
  };
}

export function decideAfterRestoredNotReady(detail: string): RestoreFailure {
  return {
    fallback: {
      reason: "restored-not-ready",
      message: `the restored app did not pass ${detail} after restore; evicted the snapshot, starting cold`,
    },
    isEvicted: true,
  };
}

export interface CheckpointDecision {
  readonly isTaken: boolean;
  /** Said when a snapshot is not taken for a reason the user should know. */
  readonly warning?: string;
}

/** Once a cold start is ready: checkpoint it, or say why not. */
export function decideCheckpoint(facts: {
  readonly isCacheUsable: boolean;
  readonly isSnapshotWanted: boolean;
  readonly isSnapshotDisabled: boolean;
  /** Ports a probe passed on where the app does not listen. */
  readonly foreignPorts: readonly number[];
  /** The launch is being stopped. */
  readonly isAborted: boolean;
}): CheckpointDecision {
  if (facts.foreignPorts.length > 0) {
    return {
      isTaken: false,
      warning: `port ${facts.foreignPorts.join(", ")} answered the readiness probe, but the app does not listen on it: another process holds it, so the app may not be ready; no snapshot taken`,
    };
  }
  if (!facts.isCacheUsable || !facts.isSnapshotWanted || facts.isSnapshotDisabled || facts.isAborted) {
    return { isTaken: false };
  }
  return { isTaken: true };
}
