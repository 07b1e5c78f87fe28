import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * A file of the build, from the dist/ directory: warmstart runs some of its own files as
 * separate processes (the CLI for `bench`, the in-namespace probe for prewarm), and this
 * code may run from tsc's output (dist/src/...) or from the bundle (dist/bundle/...).
 */
export function distPath(relative: string): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (basename(dir) !== "dist") {
    const parent = dirname(dir);
    if (parent === dir)
      throw new Error(`warmstart: ${fileURLToPath(import.meta.url)} is not inside a dist/ directory`);
    dir = parent;
  }
  return join(dir, relative);
}

/** The CLI users run (package.json "bin"). */
export const CLI_PATH_IN_DIST = "bundle/cli.cjs";
