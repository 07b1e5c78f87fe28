import type { Stats } from "node:fs";

/**
 * What stat says about a file, enough to tell that it has not changed without reading it:
 * the same device and inode, size, mtime and ctime. ctime is there because it moves on every
 * write even when mtime is set back by hand. Times are Node's millisecond doubles (not
 * BigInt nanoseconds): the validation of a warm launch stats every input, and the number
 * form is the cheaper one; equal stat results give equal doubles.
 */
export interface FileStamp {
  readonly dev: number;
  readonly ino: number;
  readonly size: number;
  readonly mtimeMs: number;
  readonly ctimeMs: number;
}

export function toStamp(stat: Pick<Stats, "dev" | "ino" | "size" | "mtimeMs" | "ctimeMs">): FileStamp {
  return { dev: stat.dev, ino: stat.ino, size: stat.size, mtimeMs: stat.mtimeMs, ctimeMs: stat.ctimeMs };
}

export function isSameStamp(a: FileStamp, b: FileStamp): boolean {
  return (
    a.ino === b.ino &&
    a.mtimeMs === b.mtimeMs &&
    a.ctimeMs === b.ctimeMs &&
    a.size === b.size &&
    a.dev === b.dev
  );
}

export function formatStamp(stamp: FileStamp): string {
  return `${stamp.dev}:${stamp.ino}:${stamp.size}:${stamp.mtimeMs}:${stamp.ctimeMs}`;
}
