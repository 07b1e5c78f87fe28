import { readdirSync, readlinkSync } from "node:fs";
import { listProcessTree, readTcpSockets, TCP_LISTEN } from "../launch/proc-sockets.js";
import { formatListener, isAtAddress, type ListenAddress } from "./listen-address.js";
import { closeFd, duplicateFd, readAcceptQueue, setReusePort } from "./socket-calls.js";

/** An instance's listening socket, held by serve through a duplicate of its fd. */
export interface HeldListener {
  readonly address: ListenAddress;
  /** serve's duplicate: the socket closes only when serve closes it too. */
  readonly fd: number;
  readonly inode: string;
}

/**
 * Takes hold of the instance's listeners on the front's addresses: a duplicate of each
 * (pidfd_getfd), with SO_REUSEPORT turned back on (CRIU restores the dumped value, off for a
 * Node app, and a listener with it off would keep the front from listening beside it again).
 * Holding them lets serve read their queues, wait on a stopped spare's, and close each one
 * only once the front listens again, so that a stopped or crashed instance's queued
 * connections move to the front instead of being reset. Returns the addresses it did not
 * find the instance listening on, too.
 */
export function holdListeners(
  pid: number,
  addresses: readonly ListenAddress[],
): { readonly held: HeldListener[]; readonly missing: ListenAddress[]; readonly listening: string[] } {
  const listening = readTcpSockets(pid).filter((socket) => socket.state === TCP_LISTEN);
  const fdsByInode = readSocketFds(pid);
  const held: HeldListener[] = [];
  const missing: ListenAddress[] = [];
  for (const address of addresses) {
    const socket = listening.find(
      (candidate) =>
        isAtAddress(address, candidate.localAddress, candidate.localPort) && fdsByInode.has(candidate.inode),
    );
    const owner = socket ? fdsByInode.get(socket.inode) : undefined;
    const fd = owner ? duplicateFd(owner.pid, owner.fd) : undefined;
    if (!socket || fd === undefined) {
      missing.push(address);
      continue;
    }
    setReusePort(fd);
    held.push({ address, fd, inode: socket.inode });
  }
  const own = listening.filter((socket) => fdsByInode.has(socket.inode));
  return {
    held,
    missing,
    listening: own.map((socket) => formatListener(socket.localAddress, socket.localPort)),
  };
}

/** Connections waiting in the held listeners' accept queues. */
export function readHeldQueue(held: readonly HeldListener[]): number {
  return held.reduce((sum, listener) => sum + Math.max(0, readAcceptQueue(listener.fd)), 0);
}

export function releaseListeners(held: readonly HeldListener[]): void {
  for (const listener of held) closeFd(listener.fd);
}

/** Socket inode -> the process of the tree holding it and its fd number. */
function readSocketFds(pid: number): Map<string, { pid: number; fd: number }> {
  const found = new Map<string, { pid: number; fd: number }>();
  for (const member of listProcessTree(pid)) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${member}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const inode = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${member}/fd/${fd}`))?.[1];
        if (inode && !found.has(inode)) found.set(inode, { pid: member, fd: Number(fd) });
      } catch {
        // Closed meanwhile.
      }
    }
  }
  return found;
}
