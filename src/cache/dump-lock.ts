import { closeSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";
import { isProcessAlive } from "./is-process-alive.js";

export interface DumpLock {
  release(): void;
}

/**
 * One dump per key at a time: concurrent cold launches of the same command all serve, but
 * only the first to be ready checkpoints; the others skip (they do not wait). The lock is a
 * file holding the owner's PID; a lock whose owner is dead (killed mid-dump) is taken over.
 */
export function tryAcquireDumpLock(root: string, key: string): DumpLock | undefined {
  mkdirSync(root, { recursive: true, mode: 0o700 });
  const path = join(root, `.lock-${key}`);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, "wx", 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return { release: () => unlinkSync(path) };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") return undefined;
    }
    if (isHeldByLiveProcess(path)) return undefined;
    try {
      unlinkSync(path);
    } catch {
      // Another launch took it over first; the next attempt sees its lock.
    }
  }
  return undefined;
}

function isHeldByLiveProcess(path: string): boolean {
  let pid: number;
  try {
    pid = Number(readFileSync(path, "utf8"));
  } catch {
    return false;
  }
  // An empty file is a lock being written this instant: treat it as held.
  if (!Number.isInteger(pid) || pid <= 0) return true;
  return isProcessAlive(pid);
}
