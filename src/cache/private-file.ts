import { randomBytes } from "node:crypto";
import { renameSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";

/**
 * Writes `content` to `path` as a file only its owner can read or write (0600): under a
 * temporary name of its own beside it (created exclusively, so never through a symlink left
 * there), then renamed over it, so that a reader sees the old file or the new one, never half
 * of one. No fsync: the callers' files are bookkeeping a crash may lose, not data. Throws, and
 * leaves no temporary behind.
 */
export function replacePrivateFile(path: string, content: string | Buffer): void {
  const temporary = join(
    dirname(path),
    `.${basename(path)}.${process.pid}-${randomBytes(4).toString("hex")}.tmp`,
  );
  try {
    writeFileSync(temporary, content, { mode: 0o600, flag: "wx" });
    renameSync(temporary, path);
  } finally {
    rmSync(temporary, { force: true });
  }
}
