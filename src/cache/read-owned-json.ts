import { readFileSync } from "node:fs";
import { describeUnsafePath } from "./cache-dir.js";

/**
 * Parses a bookkeeping file of an entry (manifest, stats) that is only used to size, order
 * or list entries, never to restore one. Undefined unless it is a regular file the user owns
 * that nobody else can write: a FIFO would hang the read, and a symlink or a foreign file
 * could make another user's data look like ours.
 */
export function readOwnedJson(path: string): unknown {
  if (describeUnsafePath(path, "file", 0o022)) return undefined;
  try {
    return JSON.parse(readFileSync(path, "utf8")) as unknown;
  } catch {
    return undefined;
  }
}
