import { open, readFile } from "node:fs/promises";

/**
 * A restored process has CRIU's copy of its anonymous memory in place, but the files it maps
 * (node's or java's executable, libc, its shared libraries) are mapped afresh and fault in
 * page by page as its code first runs: a resumed tiny Node server took ~210 page faults to
 * answer its first request, ~2.5 ms of its ~13 ms on these machines (a fault costs ~12 µs
 * in this VM). A spare waits stopped, so serve faults those pages in meanwhile: reading the
 * target's memory through /proc/<pid>/mem fills its page tables as its own touch would.
 * One byte per FAULT_AROUND_BYTES (the kernel maps that much of the page cache around each
 * file-backed read fault): ~1,450 reads for a Node server's 90 MiB of mappings, 75-95 ms on
 * Node's thread pool while the spare waits, none of it in the path of a request (it stops
 * when the spare resumes). Measured through serve, alternating: first answer 29.9 ms against
 * 33.9 ms without (tiny, medians of 8). Best effort: a process that exits or refuses (no
 * ptrace access) ends it quietly.
 */
const FAULT_AROUND_BYTES = 64 * 1024;

export interface FaultedIn {
  /** Bytes of file mappings walked. */
  readonly bytes: number;
  readonly ms: number;
}

/** The readable file-backed mappings of `maps` (/proc/<pid>/maps), as [start, end) pairs. */
export function mappedFileRanges(maps: string): [number, number][] {
  const ranges: [number, number][] = [];
  for (const line of maps.split("\n")) {
    const [range, perms, , , inode, path] = line.trim().split(/\s+/);
    if (!range || !perms?.startsWith("r") || inode === "0" || !path?.startsWith("/")) continue;
    const [start, end] = range.split("-").map((hex) => Number.parseInt(hex, 16));
    if (start !== undefined && end !== undefined && end > start) ranges.push([start, end]);
  }
  return ranges;
}

/** Faults in the file-backed pages of stopped process `pid`; undefined if it could not. */
export async function faultInMappedFiles(pid: number, signal: AbortSignal): Promise<FaultedIn | undefined> {
  const startedMs = performance.now();
  try {
    const ranges = mappedFileRanges(await readFile(`/proc/${pid}/maps`, "utf8"));
    const mem = await open(`/proc/${pid}/mem`, "r");
    try {
      const byte = Buffer.alloc(1);
      let bytes = 0;
      for (const [start, end] of ranges) {
        try {
          for (let at = start; at < end; at += FAULT_AROUND_BYTES) {
            if (signal.aborted) return undefined;
            await mem.read(byte, 0, 1, at);
          }
          bytes += end - start;
        } catch {
          // The part of a mapping past its file's end (EIO), or the process is gone.
          if (signal.aborted) return undefined;
        }
      }
      return { bytes, ms: performance.now() - startedMs };
    } finally {
      await mem.close();
    }
  } catch {
    return undefined;
  }
}
