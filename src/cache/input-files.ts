import { readdirSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { isAbsolute, join, resolve, sep } from "node:path";
import type { FileHashIndex } from "./file-hash.js";

/** One `--input` pattern, resolved against the launch's directory. */
export interface InputPattern {
  /** The directory to search (or watch): the pattern's part before its first wildcard. */
  readonly base: string;
  /** True for absolute paths the pattern matches. */
  readonly matches: (path: string) => boolean;
  /** Whether node_modules and .git may be entered (only when the pattern names them). */
  readonly entersHidden: boolean;
}

type Picomatch = typeof import("picomatch");
let picomatch: Picomatch | undefined;

/** picomatch costs ~5 ms to load: only launches with a wildcard in an --input pay it. */
function loadPicomatch(): Picomatch {
  picomatch ??= createRequire(import.meta.url)("picomatch") as Picomatch;
  return picomatch;
}

/**
 * Globs as picomatch reads them (`*`, `?`, `**` for any depth, `[a-z]` classes, `{a,b}`
 * braces), dot files included: a config file named `.env` is as much an input as any.
 */
export function parseInputPattern(pattern: string, cwd: string): InputPattern {
  const absolute = isAbsolute(pattern) ? pattern : resolve(cwd, pattern);
  const entersHidden = /node_modules|\.git/.test(pattern);
  if (!/[*?[\]{}()!+@]/.test(absolute)) {
    return { base: absolute, matches: (path) => path === absolute, entersHidden: true };
  }
  const pm = loadPicomatch();
  const { base } = pm.scan(absolute);
  const isMatch = pm(absolute, { dot: true });
  return { base: base || sep, matches: (path) => isMatch(path), entersHidden };
}

/**
 * Expands `--input` globs to the regular files they match, sorted (Node 20 has no fs.glob).
 * Directories named node_modules or .git are entered only when the pattern names them, so
 * `src/**` stays cheap.
 */
export function expandInputGlobs(patterns: readonly string[], cwd: string): string[] {
  const files = new Set<string>();
  for (const pattern of patterns.map((text) => parseInputPattern(text, cwd))) {
    if (isFile(pattern.base)) {
      if (pattern.matches(pattern.base)) files.add(pattern.base);
      continue;
    }
    walk(
      pattern.base,
      (path) => {
        if (pattern.matches(path)) files.add(path);
      },
      pattern.entersHidden,
    );
  }
  return [...files].sort();
}

function walk(dir: string, visit: (path: string) => void, entersHidden: boolean): void {
  let entries: import("node:fs").Dirent[];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (!entersHidden && (entry.name === "node_modules" || entry.name === ".git")) continue;
      walk(path, visit, entersHidden);
    } else if (entry.isFile() || (entry.isSymbolicLink() && isFile(path))) {
      visit(path);
    }
  }
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** path -> sha256 of every file the globs match; a pattern that matches nothing counts too. */
export async function hashInputs(
  patterns: readonly string[],
  cwd: string,
  hashes: FileHashIndex,
): Promise<Record<string, string>> {
  const digests: Record<string, string> = {};
  for (const path of expandInputGlobs(patterns, cwd)) digests[path] = await hashes.hashFile(path);
  return digests;
}
