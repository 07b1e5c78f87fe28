import { readFileSync, writeFileSync } from "node:fs";
import type { ListenAddress } from "./listen-address.js";
import { closeFd, openListener, readAcceptQueue, startListening, stopListening } from "./socket-calls.js";

/** One public socket of the front: made by serve, or passed by systemd (LISTEN_FDS). */
export interface FrontSocket {
  readonly address: ListenAddress;
  readonly fd: number;
  /** Passed by systemd: systemd keeps its own fd of it, so it is never closed, only stopped. */
  readonly isInherited: boolean;
}

/**
 * The listen queue of the front's sockets: the kernel completes the handshakes of connections
 * that arrive while no instance runs, and they wait there (the clients see a connection that
 * answers late, never a refusal) until an instance takes them over.
 */
export const FRONT_BACKLOG = 4096;

/**
 * serve's public sockets. The front never accepts a connection: it holds the port (listening)
 * while no instance runs, and lets go of it (stops listening) once an instance listens on the
 * same port in the same reuseport group. Letting go with net.ipv4.tcp_migrate_req on moves the
 * connections queued on the front to the instance; taking the port back before an instance
 * stops moves that instance's queue to the front. No connection is refused or reset on either
 * hand-over. The sockets stay bound throughout, so the port is never free for another process.
 */
export class Front {
  readonly sockets: readonly FrontSocket[];
  #isHolding = true;

  private constructor(sockets: readonly FrontSocket[]) {
    this.sockets = sockets;
  }

  /** Listens on every address (SO_REUSEPORT). Throws, naming the address, if one cannot be had. */
  static open(addresses: readonly ListenAddress[]): Front {
    const sockets: FrontSocket[] = [];
    try {
      for (const address of addresses) {
        sockets.push({ address, fd: openListener(address, FRONT_BACKLOG), isInherited: false });
      }
    } catch (error) {
      for (const socket of sockets) closeFd(socket.fd);
      throw error;
    }
    return new Front(sockets);
  }

  /** Sockets systemd passed, already listening. */
  static adopt(sockets: readonly FrontSocket[]): Front {
    return new Front(sockets);
  }

  get isHolding(): boolean {
    return this.#isHolding;
  }

  get addresses(): ListenAddress[] {
    return this.sockets.map((socket) => socket.address);
  }

  /** The fds to wait on for a first connection (empty while an instance has the port). */
  get waitFds(): number[] {
    return this.#isHolding ? this.sockets.map((socket) => socket.fd) : [];
  }

  /** Takes the port back: listens again. Errors name the address that refused. */
  hold(): string[] {
    if (this.#isHolding) return [];
    this.#isHolding = true;
    return this.sockets.flatMap((socket) => {
      const outcome = startListening(socket.fd, FRONT_BACKLOG);
      return outcome.isListening ? [] : [`${socket.address.text}: ${outcome.error ?? "listen failed"}`];
    });
  }

  /** Lets go of the port: its queued connections move to the instances listening beside it. */
  release(): void {
    if (!this.#isHolding) return;
    this.#isHolding = false;
    for (const socket of this.sockets) stopListening(socket.fd);
  }

  /** Connections waiting on the front (0 while released). */
  readQueued(): number {
    if (!this.#isHolding) return 0;
    return this.sockets.reduce((sum, socket) => sum + Math.max(0, readAcceptQueue(socket.fd)), 0);
  }

  close(): void {
    for (const socket of this.sockets) closeFd(socket.fd);
  }
}

const MIGRATE_REQ = "/proc/sys/net/ipv4/tcp_migrate_req";

/**
 * net.ipv4.tcp_migrate_req (Linux 5.14, per network namespace): when a listener in a
 * reuseport group closes or stops listening, its queued connections move to another listener
 * of the group instead of being reset. The hand-overs depend on it; serve turns it on and
 * says so. It changes nothing for a listener without SO_REUSEPORT siblings.
 */
export function enableConnectionMigration(): { readonly isChanged: boolean; readonly error?: string } {
  try {
    if (readFileSync(MIGRATE_REQ, "utf8").trim() === "1") return { isChanged: false };
    writeFileSync(MIGRATE_REQ, "1\n");
    return { isChanged: true };
  } catch (error) {
    return { isChanged: false, error: (error as Error).message };
  }
}
