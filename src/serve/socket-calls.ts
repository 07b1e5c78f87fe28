import { WarmstartError } from "../errors.js";
import { type LibcFunction, loadLibc as loadLibcOnce } from "../exec/libc.js";
import type { ListenAddress } from "./listen-address.js";
import { INET_DIAG_INFO, NLMSG_DONE, NLMSG_ERROR, splitNetlinkMessages } from "./netlink.js";
import { explainPortInUseHere } from "./port-in-use.js";

// The socket calls Node 20's `net` does not offer, made through koffi (an FFI package whose
// prebuilt binaries ship inside the npm package: no compiler). serve needs them to hold a
// port with SO_REUSEPORT (so that a restored app can bind it beside the front), to read a
// listener's accept queue, to take a restored app's listening socket into its own hands
// (pidfd_getfd), to wait for a connection without accepting it (poll on a worker thread), and
// to ask sock_diag about the established connections (what `ss` would spawn a process for).

interface Libc {
  readonly socket: LibcFunction;
  readonly setsockopt: LibcFunction;
  readonly getsockopt: LibcFunction;
  readonly bind: LibcFunction;
  readonly listen: LibcFunction;
  readonly shutdown: LibcFunction;
  readonly close: LibcFunction;
  readonly getsockname: LibcFunction;
  readonly syscall: LibcFunction;
  readonly poll: LibcFunction;
  readonly eventfd: LibcFunction;
  readonly write: LibcFunction;
  readonly read: LibcFunction;
  readonly fcntl: LibcFunction;
  readonly errno: () => number;
  readonly strerror: (errno: number) => string;
}

const AF_INET = 2;
const AF_INET6 = 10;
const SOCK_STREAM = 1;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_REUSEADDR = 2;
const SO_TYPE = 3;
const SO_REUSEPORT = 15;
const SO_ACCEPTCONN = 30;
const IPPROTO_TCP = 6;
const IPPROTO_IPV6 = 41;
const IPV6_V6ONLY = 26;
const TCP_INFO = 11;
/** struct tcp_info: for a listener, tcpi_unacked is the accept queue's length (tcp_get_info). */
const TCP_INFO_BYTES = 104;
const TCPI_UNACKED_OFFSET = 24;
const POLLIN = 0x1;
const POLLERR = 0x8;
const POLLHUP = 0x10;
const POLLNVAL = 0x20;
const SYS_PIDFD_OPEN = 434;
const SYS_PIDFD_GETFD = 438;
const AF_NETLINK = 16;
const SOCK_DGRAM = 2;
const NETLINK_SOCK_DIAG = 4;
const SOCK_DIAG_BY_FAMILY = 20;
const NLM_F_REQUEST = 0x1;
const NLM_F_DUMP = 0x300;
const TCP_ESTABLISHED = 1;
/** nlmsghdr (16 bytes) + inet_diag_req_v2 (56 bytes). */
const DIAG_REQUEST_BYTES = 72;
/** One recv of a dump: the kernel fills it with as many messages as fit. */
const DIAG_RECV_BYTES = 64 * 1024;
const EFD_CLOEXEC = 0o2000000;
const EFD_NONBLOCK = 0o4000;

let libc: Libc | undefined;

function loadLibc(): Libc {
  if (libc) return libc;
  const lib = loadLibcOnce();
  libc = {
    socket: lib.func("int socket(int, int, int)"),
    setsockopt: lib.func("int setsockopt(int, int, int, _In_ int *, uint32_t)"),
    getsockopt: lib.func("int getsockopt(int, int, int, _Out_ uint8_t *, _Inout_ uint32_t *)"),
    bind: lib.func("int bind(int, _In_ uint8_t *, uint32_t)"),
    listen: lib.func("int listen(int, int)"),
    shutdown: lib.func("int shutdown(int, int)"),
    close: lib.func("int close(int)"),
    getsockname: lib.func("int getsockname(int, _Out_ uint8_t *, _Inout_ uint32_t *)"),
    syscall: lib.func("long syscall(long, long, long, long)"),
    poll: lib.func("int poll(_Inout_ uint8_t *, unsigned long, int)"),
    eventfd: lib.func("int eventfd(unsigned int, int)"),
    write: lib.func("long write(int, _In_ uint8_t *, unsigned long)"),
    read: lib.func("long read(int, _Out_ uint8_t *, unsigned long)"),
    fcntl: lib.func("int fcntl(int, int, int)"),
    errno: lib.errno,
    strerror: lib.strerror,
  };
  return libc;
}

/** The last call's errno, in words ("Address already in use"). */
function lastError(lib: Libc): { code: number; message: string } {
  const code = lib.errno();
  return { code, message: lib.strerror(code) };
}

const EADDRINUSE = 98;

/**
 * A listening TCP socket on `address` with SO_REUSEADDR and SO_REUSEPORT, so that a restored
 * app (CRIU binds with both forced on) joins it in one reuseport group. Non-blocking and
 * close-on-exec: nothing serve spawns inherits it.
 */
export function openListener(address: ListenAddress, backlog: number): number {
  const lib = loadLibc();
  const family = address.family === 6 ? AF_INET6 : AF_INET;
  const fd = Number(lib.socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (fd < 0) throw socketError(`socket() for ${address.text}`, lastError(lib));
  try {
    setIntOption(lib, fd, SOL_SOCKET, SO_REUSEADDR, 1);
    setIntOption(lib, fd, SOL_SOCKET, SO_REUSEPORT, 1);
    // Node's `listen(port, "::")` is dual-stack: a front on "::" must be too, or the app's
    // socket would not join its reuseport group.
    if (family === AF_INET6) setIntOption(lib, fd, IPPROTO_IPV6, IPV6_V6ONLY, 0);
    const sockaddr = encodeSockaddr(address);
    if (Number(lib.bind(fd, sockaddr, sockaddr.length)) !== 0) {
      const error = lastError(lib);
      throw new WarmstartError(
        "invalid-option",
        `Cannot listen on ${address.text}: ${error.message}.`,
        error.code === EADDRINUSE
          ? {
              hint: explainPortInUseHere(address),
              details: { listen: address.text, errno: error.code },
            }
          : { details: { listen: address.text, errno: error.code } },
      );
    }
    if (Number(lib.listen(fd, backlog)) !== 0)
      throw socketError(`listen() on ${address.text}`, lastError(lib));
    return fd;
  } catch (error) {
    lib.close(fd);
    throw error;
  }
}

function socketError(what: string, error: { code: number; message: string }): WarmstartError {
  return new WarmstartError("invalid-option", `${what} failed: ${error.message}.`, {
    details: { errno: error.code },
  });
}

function setIntOption(lib: Libc, fd: number, level: number, name: number, value: number): void {
  if (Number(lib.setsockopt(fd, level, name, [value], 4)) !== 0) {
    throw socketError(`setsockopt(${name})`, lastError(lib));
  }
}

/**
 * Turns SO_REUSEPORT on for a socket serve holds (a restored app's listener, through its
 * duplicate). CRIU puts the dumped value back after the restore, off for a Node app; a
 * listener with it off is handed every new connection and keeps serve from joining the
 * port's reuseport group again. Returns false when the socket refuses.
 */
export function setReusePort(fd: number): boolean {
  const lib = loadLibc();
  return Number(lib.setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, [1], 4)) === 0;
}

const SHUT_RD = 0;

/**
 * Stops a listener without closing it: the socket stays bound (so serve can listen again,
 * and a socket systemd passed stays the one systemd holds), and with tcp_migrate_req its
 * queued connections move to the port's other listeners instead of being reset.
 */
export function stopListening(fd: number): boolean {
  return Number(loadLibc().shutdown(fd, SHUT_RD)) === 0;
}

/** Listens again on a socket stopped with stopListening (or on any bound socket). */
export function startListening(fd: number, backlog: number): { isListening: boolean; error?: string } {
  const lib = loadLibc();
  if (Number(lib.listen(fd, backlog)) === 0) return { isListening: true };
  return { isListening: false, error: lastError(lib).message };
}

export function closeFd(fd: number): void {
  loadLibc().close(fd);
}

/** Connections waiting in a listener's accept queue (-1 if the socket cannot say). */
export function readAcceptQueue(fd: number): number {
  const lib = loadLibc();
  const info = Buffer.alloc(TCP_INFO_BYTES);
  const length = [TCP_INFO_BYTES];
  if (Number(lib.getsockopt(fd, IPPROTO_TCP, TCP_INFO, info, length)) !== 0) return -1;
  return info.readUInt32LE(TCPI_UNACKED_OFFSET);
}

const F_SETFD = 2;
const FD_CLOEXEC = 1;

/** An inherited fd (LISTEN_FDS) stays out of everything serve spawns. */
export function setCloseOnExec(fd: number): boolean {
  return Number(loadLibc().fcntl(fd, F_SETFD, FD_CLOEXEC)) === 0;
}

/** Whether `fd` is a listening TCP socket (what a LISTEN_FDS socket must be for serve). */
export function isListeningStream(fd: number): boolean {
  const lib = loadLibc();
  const read = (name: number) => {
    const value = Buffer.alloc(4);
    if (Number(lib.getsockopt(fd, SOL_SOCKET, name, value, [4])) !== 0) return -1;
    return value.readInt32LE(0);
  };
  return read(SO_TYPE) === SOCK_STREAM && read(SO_ACCEPTCONN) === 1;
}

/** The local address of a socket (a LISTEN_FDS socket: which port it is). */
export function readLocalAddress(fd: number): { host: string; port: number; family: 4 | 6 } | undefined {
  const lib = loadLibc();
  const buffer = Buffer.alloc(28);
  if (Number(lib.getsockname(fd, buffer, [28])) !== 0) return undefined;
  const family = buffer.readUInt16LE(0);
  const port = buffer.readUInt16BE(2);
  if (family === AF_INET) return { host: [...buffer.subarray(4, 8)].join("."), port, family: 4 };
  if (family !== AF_INET6) return undefined;
  const groups: string[] = [];
  for (let i = 8; i < 24; i += 2) groups.push(buffer.readUInt16BE(i).toString(16));
  return { host: compressIpv6(groups), port, family: 6 };
}

function compressIpv6(groups: string[]): string {
  const text = groups.join(":");
  if (text === "0:0:0:0:0:0:0:0") return "::";
  if (text === "0:0:0:0:0:0:0:1") return "::1";
  return text;
}

function encodeSockaddr(address: ListenAddress): Buffer {
  if (address.family === 4) {
    const buffer = Buffer.alloc(16);
    buffer.writeUInt16LE(AF_INET, 0);
    buffer.writeUInt16BE(address.port, 2);
    buffer.set(address.hostBytes, 4);
    return buffer;
  }
  const buffer = Buffer.alloc(28);
  buffer.writeUInt16LE(AF_INET6, 0);
  buffer.writeUInt16BE(address.port, 2);
  buffer.set(address.hostBytes, 8);
  return buffer;
}

/**
 * A duplicate of another process's fd (pidfd_getfd, Linux 5.6; ptrace rights: root). The
 * duplicate is the same socket: serve reads its queue, turns SO_REUSEPORT on, waits on it,
 * and decides when it really closes (a listener closes when its last fd does; then, with
 * net.ipv4.tcp_migrate_req, its queued connections move to the port's other listeners).
 */
export function duplicateFd(pid: number, fd: number): number | undefined {
  const lib = loadLibc();
  const pidfd = Number(lib.syscall(SYS_PIDFD_OPEN, pid, 0, 0));
  if (pidfd < 0) return undefined;
  try {
    const dup = Number(lib.syscall(SYS_PIDFD_GETFD, pidfd, fd, 0));
    return dup < 0 ? undefined : dup;
  } finally {
    lib.close(pidfd);
  }
}

/**
 * Waits, on a worker thread, until one of the fds is readable (a listener: a connection is
 * queued), without accepting anything. One wait at a time; `interrupt()` ends the current
 * one (an eventfd in the set), so fds are never closed under a poll in flight.
 */
export class ReadableWaiter {
  readonly #wakeFd: number;
  #inFlight: Promise<number[]> | undefined;

  constructor() {
    const lib = loadLibc();
    this.#wakeFd = Number(lib.eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (this.#wakeFd < 0) throw socketError("eventfd()", lastError(lib));
  }

  /** The fds that are readable, or [] when interrupted. */
  wait(fds: readonly number[]): Promise<number[]> {
    if (this.#inFlight) throw new Error("ReadableWaiter: one wait at a time");
    const lib = loadLibc();
    const all = [...fds, this.#wakeFd];
    const pollfds = Buffer.alloc(8 * all.length);
    all.forEach((fd, index) => {
      pollfds.writeInt32LE(fd, index * 8);
      pollfds.writeInt16LE(POLLIN, index * 8 + 4);
    });
    const waiting = new Promise<number[]>((resolve) => {
      lib.poll.async(pollfds, all.length, -1, (error: unknown) => {
        this.#inFlight = undefined;
        if (error) return resolve([]);
        const ready: number[] = [];
        all.forEach((fd, index) => {
          const events = pollfds.readInt16LE(index * 8 + 6);
          if (fd !== this.#wakeFd && events & (POLLIN | POLLERR | POLLHUP | POLLNVAL)) ready.push(fd);
        });
        if (pollfds.readInt16LE((all.length - 1) * 8 + 6) & POLLIN) this.#drainWake(lib);
        resolve(ready);
      });
    });
    this.#inFlight = waiting;
    return waiting;
  }

  /** Ends the wait in flight, if any; resolves once it has returned. */
  async interrupt(): Promise<void> {
    const inFlight = this.#inFlight;
    if (!inFlight) return;
    const one = Buffer.alloc(8);
    one.writeBigUInt64LE(1n);
    loadLibc().write(this.#wakeFd, one, 8);
    await inFlight;
  }

  async close(): Promise<void> {
    await this.interrupt();
    closeFd(this.#wakeFd);
  }

  #drainWake(lib: Libc): void {
    lib.read(this.#wakeFd, Buffer.alloc(8), 8);
  }
}

/**
 * Every established TCP socket of this network namespace, IPv4 and IPv6, with its tcp_info:
 * the replies of a sock_diag dump as received (activity.ts parses them), or undefined when the
 * kernel cannot say (no sock_diag, a dump that failed). Synchronous: the kernel answers from
 * its tables at once.
 */
export function queryEstablishedTcp(): Buffer[] | undefined {
  const lib = loadLibc();
  const fd = Number(lib.socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
  if (fd < 0) return undefined;
  try {
    const replies: Buffer[] = [];
    for (const family of [AF_INET, AF_INET6]) {
      const request = Buffer.alloc(DIAG_REQUEST_BYTES);
      request.writeUInt32LE(DIAG_REQUEST_BYTES, 0);
      request.writeUInt16LE(SOCK_DIAG_BY_FAMILY, 4);
      request.writeUInt16LE(NLM_F_REQUEST | NLM_F_DUMP, 6);
      request.writeUInt32LE(family, 8); // the sequence number: which dump a reply belongs to
      request.writeUInt8(family, 16);
      request.writeUInt8(IPPROTO_TCP, 17);
      request.writeUInt8(1 << (INET_DIAG_INFO - 1), 18);
      request.writeUInt32LE(1 << TCP_ESTABLISHED, 20);
      // Unconnected, a netlink socket's writes go to the kernel.
      if (Number(lib.write(fd, request, request.length)) !== request.length) return undefined;
      for (;;) {
        const reply = Buffer.alloc(DIAG_RECV_BYTES);
        const length = Number(lib.read(fd, reply, reply.length));
        if (length <= 0) return undefined;
        replies.push(reply.subarray(0, length));
        const last = splitNetlinkMessages(reply.subarray(0, length)).at(-1)?.type;
        if (last === NLMSG_ERROR) return undefined;
        if (last === NLMSG_DONE) break;
      }
    }
    return replies;
  } finally {
    lib.close(fd);
  }
}
