import { readdirSync, readFileSync, readlinkSync } from "node:fs";

// /proc/net/tcp "st" column: 0A is LISTEN. Every other state with an fd in the app is a
// connection that CRIU would have to dump (--tcp-established) and restore closed.
const LISTEN = "0A";

/** The app's TCP sockets that are not listening (connections, or ones still closing). */
export function countOpenConnections(pid: number): number {
  let inodes: Set<string>;
  try {
    inodes = new Set(
      readdirSync(`/proc/${pid}/fd`)
        .map((fd) => {
          try {
            return /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1];
          } catch {
            return undefined;
          }
        })
        .filter((inode): inode is string => inode !== undefined),
    );
  } catch {
    return 0;
  }
  let count = 0;
  for (const table of ["tcp", "tcp6"]) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/net/${table}`, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const columns = line.trim().split(/\s+/);
      const state = columns[3];
      const inode = columns[9];
      if (state && inode && state !== LISTEN && inodes.has(inode)) count++;
    }
  }
  return count;
}

/**
 * Gives the app a moment to close connections before it is dumped: the readiness probe's
 * own connection is still being torn down on the app's side when the probe passes, and a
 * connection in the image comes back closed on restore, which some apps do not survive
 * (an unhandled ECONNRESET). Real clients that stay connected only delay the dump by
 * `timeoutMs`; CRIU then dumps them with --tcp-established.
 */
export async function waitForConnectionsClosed(pid: number, timeoutMs: number): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const open = countOpenConnections(pid);
    if (open === 0 || performance.now() >= deadline) return open;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
