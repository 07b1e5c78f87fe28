import { readSocketInodes, readTcpSockets, TCP_LISTEN } from "./proc-sockets.js";

/** The app's TCP sockets that are not listening (connections, or ones still closing): each
 * is one a restore brings back closed. */
export function countOpenConnections(pid: number): number {
  const inodes = readSocketInodes(pid);
  return readTcpSockets(pid).filter((socket) => socket.state !== TCP_LISTEN && inodes.has(socket.inode))
    .length;
}

/**
 * Gives the app a moment to close connections before it is dumped: the readiness probe's
 * own connection is still being torn down on the app's side when the probe passes, and a
 * connection in the image comes back closed on restore, which some apps do not survive
 * (an unhandled ECONNRESET). Real clients that stay connected only delay the dump by
 * `timeoutMs`; CRIU then dumps them as sockets to restore closed (--tcp-close).
 */
export async function waitForConnectionsClosed(pid: number, timeoutMs: number): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const open = countOpenConnections(pid);
    if (open === 0 || performance.now() >= deadline) return open;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
