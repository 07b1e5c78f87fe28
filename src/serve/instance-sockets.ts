import { readdirSync, readlinkSync } from "node:fs";
import { listProcessTree } from "../launch/proc-sockets.js";
import { formatListener, isAtAddress, type ListenAddress } from "./listen-address.js";
import {
  closeFd,
  duplicateFd,
  isListeningStream,
  readAcceptQueue,
  readLocalAddress,
  setReusePort,
} from "./socket-calls.js";

/** An instance's listening socket, held by serve through a duplicate of its fd. */
export interface HeldListener {
  readonly address: ListenAddress;
  /** serve's duplicate: the socket closes only when serve closes it too. */
  readonly fd: number;
}

/**
 * Takes hold of the instance's listeners on the front's addresses: a duplicate of each
 * (pidfd_getfd), with SO_REUSEPORT turned back on (CRIU restores the dumped value, off for a
 * Node app, and a listener with it off would keep the front from listening beside it again).
 * Holding them lets serve read their queues, wait on a stopped spare's, and close each one
 * only once the front listens again, so that a stopped or crashed instance's queued
 * connections move to the front instead of being reset. Returns the addresses it did not
 * find the instance listening on, too.
 *
 * The instance's own socket fds are asked what they are (a listening stream, at which
 * address), one duplicate at a time: reading the namespace's TCP table instead
 * (/proc/<pid>/net/tcp) walks every hash bucket and took 2.5 ms with 9 sockets in it, in
 * the path of the first request.
 */
export function holdListeners(
  pid: number,
  addresses: readonly ListenAddress[],
): { readonly held: HeldListener[]; readonly missing: ListenAddress[]; readonly listening: string[] } {
  const held: HeldListener[] = [];
  const listening: string[] = [];
  for (const owner of readSocketFds(pid)) {
    const fd = duplicateFd(owner.pid, owner.fd);
    if (fd === undefined) continue;
    const local = isListeningStream(fd) ? readLocalAddress(fd) : undefined;
    const address = local
      ? addresses.find((candidate) => isAtAddress(candidate, local.host, local.port))
      : undefined;
    if (local) listening.push(formatListener(local.host, local.port));
    if (!address || held.some((listener) => listener.address === address)) {
      closeFd(fd);
      continue;
    }
    setReusePort(fd);
    held.push({ address, fd });
  }
  const missing = addresses.filter((address) => !held.some((listener) => listener.address === address));
  return { held, missing, listening };
}

/** Connections waiting in the held listeners' accept queues. */
export function readHeldQueue(held: readonly HeldListener[]): number {
  return held.reduce((sum, listener) => sum + Math.max(0, readAcceptQueue(listener.fd)), 0);
}

export function releaseListeners(held: readonly HeldListener[]): void {
  for (const listener of held) closeFd(listener.fd);
}

/** The socket fds of the process and its descendants, one per socket (a socket shared by
 * a parent and its forked workers is listed once). */
function readSocketFds(pid: number): { pid: number; fd: number }[] {
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
  return [...found.values()];
}
