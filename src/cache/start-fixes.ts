import { join } from "node:path";
import { makeDirectories } from "./cache-dir.js";
import { replacePrivateFile } from "./private-file.js";
import { readOwnedJson } from "./read-owned-json.js";

/**
 * The variables pre-flight may set on a later cold start, and the only value each may take:
 * a fix file can turn something off that CRIU cannot carry, never set anything else in the
 * app's environment.
 */
export const FIXABLE_ENV: Readonly<Record<string, string>> = {
  // libuv's io_uring (Node 20.3 to 20.10 used it by default): CRIU cannot dump a ring.
  UV_USE_IO_URING: "0",
};

/** What the next cold starts of one base key set, and why (for the line that says so). */
export interface StartFixes {
  readonly env: Readonly<Record<string, string>>;
  readonly reason: string;
}

const FIXES_DIR = "fixes";

function keepFixable(env: object): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter(([name, value]) => FIXABLE_ENV[name] === value));
}

function fixesPath(cacheDir: string, baseKey: string): string {
  return join(cacheDir, FIXES_DIR, `${baseKey}.json`);
}

/**
 * Kept per base key, beside the entries: a dump that failed for a reason pre-flight can fix
 * leaves a fix for the next cold start of the same command, which then snapshots. Written
 * atomically (a temporary name, then rename); a fix file that is not ours, not private or
 * not understood is ignored.
 */
export function saveStartFixes(cacheDir: string, baseKey: string, fixes: StartFixes): void {
  const env = keepFixable(fixes.env);
  if (Object.keys(env).length === 0) return;
  const problem = makeDirectories(join(cacheDir, FIXES_DIR), 0o700);
  if (problem) throw new Error(problem);
  const path = fixesPath(cacheDir, baseKey);
  replacePrivateFile(path, JSON.stringify({ env, reason: fixes.reason }));
}

export function readStartFixes(cacheDir: string, baseKey: string): StartFixes | undefined {
  const parsed = readOwnedJson(fixesPath(cacheDir, baseKey)) as Partial<StartFixes> | undefined;
  if (!parsed || typeof parsed.env !== "object" || parsed.env === null || typeof parsed.reason !== "string")
    return undefined;
  const env = keepFixable(parsed.env);
  return Object.keys(env).length > 0 ? { env, reason: parsed.reason } : undefined;
}
