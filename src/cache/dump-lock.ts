import { randomBytes } from "node:crypto";
import {
  linkSync,
  lstatSync,
  readdirSync,
  readFileSync,
  rmSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { makeDirectories } from "./cache-dir.js";
import {
  currentOwner,
  formatOwnerTag,
  isAbandoned,
  OWNER_TAG_SOURCE,
  type OwnerStamp,
  parseOwnerTag,
} from "./owner-stamp.js";

export interface DumpLock {
  /** Removes the lock if it is still this process's. Never throws. */
  release(): void;
}

export type DumpLockOutcome =
  | { readonly isAcquired: true; readonly lock: DumpLock }
  /** Another live launch is dumping this key: skip, do not wait. */
  | { readonly isAcquired: false; readonly reason: "held"; readonly holder: string }
  /** The lock could not be taken for another reason (a full or read-only disk...). */
  | { readonly isAcquired: false; readonly reason: "failed"; readonly detail: string };

/**
 * The holder touches its lock this often while it dumps, and a lock untouched for
 * STALE_LOCK_AGE_MS whose owner cannot be judged (it lives in another PID namespace: another
 * container sharing the cache, or an earlier run of this one) is taken over.
 */
export const LOCK_HEARTBEAT_MS = 5_000;
export const STALE_LOCK_AGE_MS = 30_000;

const LOCK_PREFIX = ".lock-";
const LOCK_TMP = new RegExp(`^\\.locktmp-[0-9a-f]+-(${OWNER_TAG_SOURCE})-[0-9a-f]+$`);

/**
 * One dump per key at a time: concurrent cold launches of the same command all serve, but
 * only the first to be ready checkpoints; the others skip (they do not wait). The lock file
 * holds its owner's stamp (owner-stamp.ts). It is written beside and linked into place, so it
 * is never seen empty, and a lock whose owner is gone is taken over.
 */
export function tryAcquireDumpLock(root: string, key: string): DumpLockOutcome {
  const path = join(root, `${LOCK_PREFIX}${key}`);
  const owner = formatOwnerTag(currentOwner());
  const tmp = join(root, `.locktmp-${key.slice(0, 16)}-${owner}-${randomBytes(4).toString("hex")}`);
  const failure = makeDirectories(root, 0o700);
  if (failure) return { isAcquired: false, reason: "failed", detail: failure };
  try {
    writeFileSync(tmp, `${owner}\n`, { mode: 0o600, flag: "wx" });
  } catch (error) {
    return { isAcquired: false, reason: "failed", detail: `cannot write ${tmp}: ${messageOf(error)}` };
  }
  try {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        linkSync(tmp, path);
        return { isAcquired: true, lock: holdLock(path, owner) };
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EEXIST") {
          return {
            isAcquired: false,
            reason: "failed",
            detail: `cannot create ${path}: ${messageOf(error)}`,
          };
        }
      }
      const held = readLock(path);
      if (held && !isLockAbandoned(held)) {
        return {
          isAcquired: false,
          reason: "held",
          holder: held.stamp ? `pid ${held.stamp.pid}` : "unknown",
        };
      }
      // Abandoned: take it over. Two launches doing this at the same instant may both get
      // it; the second commit then finds the entry and counts as a lost race: no harm.
      rmSync(path, { force: true });
    }
    return { isAcquired: false, reason: "held", holder: "unknown" };
  } finally {
    rmSync(tmp, { force: true });
  }
}

/** Removes the lock files no launch holds any more. Returns their names. */
export function removeAbandonedLocks(root: string): string[] {
  let names: string[];
  try {
    names = readdirSync(root);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const path = join(root, name);
    const isLock = name.startsWith(LOCK_PREFIX);
    const held = isLock ? readLock(path) : undefined;
    // A lock's temporary file, left by a launch killed between writing and linking it.
    const tmpOwner = LOCK_TMP.exec(name)?.[1];
    const isLockTmp =
      tmpOwner !== undefined && isAbandoned(parseOwnerTag(tmpOwner), ageMs(path), STALE_LOCK_AGE_MS);
    if (isLockTmp || (held && isLockAbandoned(held))) {
      rmSync(path, { force: true });
      removed.push(name);
    }
  }
  return removed;
}

interface HeldLock {
  readonly stamp: OwnerStamp | undefined;
  readonly ageMs: number;
}

/** Undefined when the lock is gone. */
function readLock(path: string): HeldLock | undefined {
  try {
    const age = ageMs(path);
    return { stamp: parseOwnerTag(readFileSync(path, "utf8")), ageMs: age };
  } catch {
    return undefined;
  }
}

/**
 * A lock is linked into place complete, so one without a readable stamp was not written by
 * this version: an older warmstart's bare PID (which PID reuse makes meaningless) or an
 * empty file. Both are taken over; at worst two dumps race and one commit loses.
 */
function isLockAbandoned(held: HeldLock): boolean {
  return held.stamp === undefined || isAbandoned(held.stamp, held.ageMs, STALE_LOCK_AGE_MS);
}

function holdLock(path: string, owner: string): DumpLock {
  const heartbeat = setInterval(() => {
    try {
      const now = new Date();
      utimesSync(path, now, now);
    } catch {
      // Taken over or removed: release will find it is not ours.
    }
  }, LOCK_HEARTBEAT_MS);
  heartbeat.unref();
  return {
    release: () => {
      clearInterval(heartbeat);
      releaseIfOwn(path, owner);
    },
  };
}

function releaseIfOwn(path: string, owner: string): void {
  try {
    if (readFileSync(path, "utf8").trim() === owner) unlinkSync(path);
  } catch {
    // Removed already (by prune, or by a launch that judged it abandoned): nothing to do.
  }
}

function ageMs(path: string): number {
  try {
    return Date.now() - lstatSync(path).mtimeMs;
  } catch {
    return 0;
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
