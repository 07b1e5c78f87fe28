import { createHash, randomBytes } from "node:crypto";
import {
  closeSync,
  constants,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statfsSync,
  statSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import { kerndatProbe } from "../exec/command-lines.js";
import { runToCompletion } from "../exec/owned-process.js";

/**
 * CRIU probes the kernel's features at every start (its "kerndat": ~45 ms of every restore on
 * these machines, `criu check` 72 ms without it against 28 ms with it) unless it finds its
 * cache, /run/criu.kdat. It writes that cache only where /run is a tmpfs, so that a reboot
 * clears it; where /run is not one (these VMs, many containers) every restore probes again.
 *
 * warmstart keeps a copy per boot and per CRIU binary in the cache directory, made by CRIU
 * itself in a throwaway mount namespace with a tmpfs on /run, and bind-mounts it over
 * /run/criu.kdat inside each restore's private mount namespace, where CRIU loads it (it checks
 * the file's magic and size, not its filesystem). Outside that namespace /run/criu.kdat stays
 * an empty file, which any other CRIU finds stale and removes. A new boot or another CRIU
 * binary has no copy until one is made (once a launch is ready, never in its way).
 */
export const KERNDAT_TARGET = "/run/criu.kdat";
const TMPFS_MAGIC = 0x01021994;
const DIR_NAME = "kerndat";
/** How long CRIU's probe may take before it is given up. */
const PROBE_TIMEOUT_MS = 30_000;
/** A probe's unfinished copy: a dot file, renamed into place when the probe succeeds. */
const UNFINISHED_COPY = /^\.[0-9a-f]{12}\.tmp$/;

/** The copy of CRIU's cache for this boot and this CRIU, ready to be mounted, if there is one. */
export function findKerndatCache(cacheDir: string, criuPath: string): string | undefined {
  const file = cacheFileOf(cacheDir, criuPath);
  if (!file) return undefined;
  try {
    return lstatSync(file).isFile() && hasKerndatTarget() ? file : undefined;
  } catch {
    return undefined;
  }
}

/** /run/criu.kdat exists (made empty if not): a bind mount needs a file to cover. */
export function hasKerndatTarget(): boolean {
  try {
    // O_NOFOLLOW: never a file a symlink points at.
    closeSync(openSync(KERNDAT_TARGET, constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW, 0o600));
    return true;
  } catch {
    return false;
  }
}

/** Whether warmstart should keep a copy: CRIU keeps its own where /run is a tmpfs. */
export function isKerndatCacheWanted(): boolean {
  try {
    return statfsSync(dirname(KERNDAT_TARGET)).type !== TMPFS_MAGIC;
  } catch {
    return false;
  }
}

/**
 * Once a launch is ready: makes the copy for this boot and this CRIU if there is none yet, in
 * the background. Never in a launch's way.
 */
export function keepKerndatCache(cacheDir: string, criuPath: string): void {
  if (findKerndatCache(cacheDir, criuPath) || !isKerndatCacheWanted()) return;
  void makeKerndatCache(cacheDir, criuPath);
}

/** Makes the copy for this boot and this CRIU (best effort); older copies are removed. */
export async function makeKerndatCache(cacheDir: string, criuPath: string): Promise<void> {
  const file = cacheFileOf(cacheDir, criuPath);
  if (!file || !isKerndatCacheWanted()) return;
  const dir = dirname(file);
  const tmp = join(dir, `.${randomBytes(6).toString("hex")}.tmp`);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const probe = await runToCompletion(kerndatProbe(criuPath, KERNDAT_TARGET, tmp), {
      timeoutMs: PROBE_TIMEOUT_MS,
    });
    if (probe.code !== 0 || statSync(tmp).size === 0) return;
    renameSync(tmp, file);
    // Earlier boots' and CRIUs' copies; a concurrent launch's unfinished one (a dot file) stays.
    for (const name of readdirSync(dir))
      if (name !== basename(file) && !name.startsWith(".")) rmSync(join(dir, name), { force: true });
  } catch {
    // No copy: restores probe, as they would without one.
  } finally {
    rmSync(tmp, { force: true });
  }
}

/**
 * Unfinished copies that no probe will rename any more (returned as names): a launch killed
 * while it made one leaves it, and the probe it started may still write it after the launch is
 * gone. Older than twice the probe's time-out, none belongs to a probe still running.
 */
export function removeAbandonedKerndatCopies(cacheDir: string, nowMs = Date.now()): string[] {
  const dir = join(cacheDir, DIR_NAME);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    if (!UNFINISHED_COPY.test(name)) continue;
    try {
      if (nowMs - lstatSync(join(dir, name)).mtimeMs < 2 * PROBE_TIMEOUT_MS) continue;
      rmSync(join(dir, name), { force: true });
      removed.push(name);
    } catch {
      // Renamed or removed meanwhile.
    }
  }
  return removed;
}

/** <cache>/kerndat/criu-<hash of the boot and of the CRIU binary's identity>.kdat */
function cacheFileOf(cacheDir: string, criuPath: string): string | undefined {
  try {
    const bootId = readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
    const criu = statSync(criuPath);
    const identity = [bootId, criuPath, criu.dev, criu.ino, criu.size, criu.mtimeMs].join("\n");
    const hash = createHash("sha256").update(identity).digest("hex").slice(0, 24);
    return join(cacheDir, DIR_NAME, `criu-${hash}.kdat`);
  } catch {
    return undefined;
  }
}
