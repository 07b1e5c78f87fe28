import { readdirSync, statSync } from "node:fs";
import { isAbsolute, join, relative, resolve, sep } from "node:path";
import type { FileHashIndex } from "./file-hash.js";

/**
 * Expands `--input` globs (`*`, `?`, `**` for any depth, no braces) to the regular files
 * they match, sorted. Node 20 has no fs.glob. Directories named node_modules or .git are
 * entered only when the pattern names them, so `src/**` stays cheap.
 */
export interface InputPattern {
  /** The directory to search (or watch): the pattern's part before its first wildcard. */
  readonly base: string;
  /** True for absolute paths the pattern matches. */
  readonly matches: (path: string) => boolean;
  /** Whether node_modules and .git may be entered (only when the pattern names them). */
  readonly entersHidden: boolean;
}

export function parseInputPattern(pattern: string, cwd: string): InputPattern {
  const absolute = isAbsolute(pattern) ? pattern : resolve(cwd, pattern);
  const parts = absolute.split(sep).filter(Boolean);
  const firstWild = parts.findIndex((part) => /[*?]/.test(part));
  if (firstWild === -1) return { base: absolute, matches: (path) => path === absolute, entersHidden: true };
  const base = `${sep}${parts.slice(0, firstWild).join(sep)}`;
  const matcher = globToRegExp(parts.slice(firstWild).join("/"));
  return {
    base,
    matches: (path) =>
      path.startsWith(`${base}${sep}`) && matcher.test(relative(base, path).split(sep).join("/")),
    entersHidden: /node_modules|\.git/.test(pattern),
  };
}

/**
 * Expands `--input` globs (`*`, `?`, `**` for any depth, no braces) to the regular files
 * they match, sorted. Node 20 has no fs.glob. Directories named node_modules or .git are
 * entered only when the pattern names them, so `src/**` stays cheap.
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

export function globToRegExp(glob: string): RegExp {
  let source = "";
  for (let i = 0; i < glob.length; i++) {
    const char = glob[i] ?? "";
    if (char === "*" && glob[i + 1] === "*") {
      // `**/` matches zero or more directories; a trailing `**` matches everything below.
      const isDirPart = glob[i + 2] === "/";
      source += isDirPart ? "(?:.*/)?" : ".*";
      i += isDirPart ? 2 : 1;
    } else if (char === "*") source += "[^/]*";
    else if (char === "?") source += "[^/]";
    else source += char.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${source}$`);
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
