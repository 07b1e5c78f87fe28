import { type BigIntStats, existsSync, lstatSync, mkdirSync, type Stats, statSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";

export type CacheDirOutcome =
  | { readonly usable: true; readonly dir: string }
  | { readonly usable: false; readonly dir: string; readonly reason: string };

/** $WARMSTART_CACHE_DIR, else $XDG_CACHE_HOME/warmstart, else ~/.cache/warmstart. */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.WARMSTART_CACHE_DIR) return resolve(env.WARMSTART_CACHE_DIR);
  if (env.XDG_CACHE_HOME) return join(resolve(env.XDG_CACHE_HOME), "warmstart");
  return join(homedir(), ".cache", "warmstart");
}

/**
 * Why a path may not hold process images, or undefined when it may. Images hold the app's
 * memory (secrets included) and are executed on restore: a directory another user can
 * write, or one reached through a symlink, could hand us their process to run.
 */
export function describeUnsafePath(
  path: string,
  kind: "directory" | "file",
  // Entries we wrote ourselves are 0700/0600; the cache root may be a shared-readable
  // directory the user made, as long as nobody else can write it.
  forbiddenModeBits = 0o022,
): string | undefined {
  let stat: ReturnType<typeof lstatSync>;
  try {
    stat = lstatSync(path);
  } catch (error) {
    return `${path} cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)})`;
  }
  return describeUnsafeStat(path, stat, kind, forbiddenModeBits);
}

/** describeUnsafePath for a path the caller has lstat'ed already (a stat it needs anyway). */
export function describeUnsafeStat(
  path: string,
  stat: Stats | BigIntStats,
  kind: "directory" | "file",
  forbiddenModeBits = 0o022,
): string | undefined {
  if (stat.isSymbolicLink()) return `${path} is a symlink`;
  if (kind === "directory" && stat.isFile()) return `${path} is a file, not a directory`;
  if (kind === "directory" && !stat.isDirectory()) return `${path} is not a directory`;
  if (kind === "file" && !stat.isFile()) return `${path} is not a regular file`;
  const uid = process.getuid?.() ?? 0;
  const mode = Number(stat.mode);
  if (Number(stat.uid) !== uid) return `${path} is owned by uid ${stat.uid}, not by you (uid ${uid})`;
  if ((mode & forbiddenModeBits) !== 0) {
    const what = (mode & 0o022) !== 0 ? "writable" : "readable";
    return `${path} is ${what} by other users (mode ${(mode & 0o777).toString(8)})`;
  }
  return undefined;
}

/** Creates the cache directory (0700) if needed and checks that it is safe to use. */
export function openCacheDir(dir: string): CacheDirOutcome {
  // Whatever is already there is judged as it is (a file there is "a file", not EEXIST).
  if (!existsSync(dir)) {
    const failure = makeDirectories(dir, 0o700);
    if (failure) return { usable: false, dir, reason: failure };
  }
  const unsafe = describeUnsafePath(dir, "directory");
  if (unsafe) return { usable: false, dir, reason: unsafe };
  return { usable: true, dir };
}

/**
 * `mkdir -p`, one level at a time, with an error that names the level that failed. Node 20's
 * recursive mkdir loops forever at 100% CPU on a path it cannot create under /proc (ENOENT
 * for the leaf, EEXIST for the parent, again), and words a read-only filesystem as ENOENT.
 * Undefined on success.
 */
export function makeDirectories(dir: string, mode: number): string | undefined {
  const missing: string[] = [];
  for (let path = resolve(dir); ; path = dirname(path)) {
    try {
      if (statSync(path).isDirectory()) break;
      return `cannot create ${dir}: ${path} exists and is not a directory`;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== "ENOENT" && code !== "ENOTDIR")
        return `cannot create ${dir}: ${path}: ${describeErrno(error)}`;
    }
    missing.unshift(path);
    if (path === dirname(path)) break;
  }
  for (const path of missing) {
    try {
      mkdirSync(path, { mode });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "EEXIST" && isDirectory(path)) continue;
      return `cannot create ${dir}: mkdir ${path}: ${describeErrno(error)}`;
    }
  }
  return undefined;
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

const ERRNO_WORDS: Readonly<Record<string, string>> = {
  EROFS: "the filesystem is read-only",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  ENOSPC: "no space left on the device",
  ENOENT: "the filesystem does not allow creating it",
  ENOTDIR: "a part of the path is not a directory",
  EEXIST: "it exists and is not a directory",
};

function describeErrno(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code ?? "";
  return ERRNO_WORDS[code] ? `${ERRNO_WORDS[code]} (${code})` : (error as Error).message;
}
