import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import type { ListenAddress } from "../cache/manifest.js";

/** A row of /proc/<pid>/net/tcp{,6}. */
export interface TcpSocket {
  /** "127.0.0.1", "::1", "0.0.0.0", "::". */
  readonly localAddress: string;
  readonly localPort: number;
  /** As the kernel prints them: hex address (in host byte order per 32-bit word), ":", hex port. */
  readonly local: string;
  readonly remote: string;
  /** Kernel TCP state, hex as the kernel prints it: "0A" is LISTEN. */
  readonly state: string;
  readonly inode: string;
}

export const TCP_LISTEN = "0A";

/** The kernel's TCP states by their hex code in /proc/net/tcp (include/net/tcp_states.h). */
const TCP_STATE_NAMES: Readonly<Record<string, string>> = {
  "01": "ESTABLISHED",
  "02": "SYN_SENT",
  "03": "SYN_RECV",
  "04": "FIN_WAIT1",
  "05": "FIN_WAIT2",
  "06": "TIME_WAIT",
  "07": "CLOSE",
  "08": "CLOSE_WAIT",
  "09": "LAST_ACK",
  [TCP_LISTEN]: "LISTEN",
  "0B": "CLOSING",
};

/** "TIME_WAIT" for "06": a state as messages name it. */
export function describeTcpState(state: string): string {
  return TCP_STATE_NAMES[state] ?? state;
}

/** The socket inodes a process holds open. */
export function readSocketInodes(pid: number): Set<string> {
  const inodes = new Set<string>();
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return inodes;
  }
  for (const fd of fds) {
    try {
      const inode = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1];
      if (inode) inodes.add(inode);
    } catch {
      // Closed meanwhile.
    }
  }
  return inodes;
}

/** The TCP sockets of the network namespace `pid` lives in ("self": warmstart's own). */
export function readTcpSockets(pid: number | "self"): TcpSocket[] {
  const sockets: TcpSocket[] = [];
  for (const table of ["tcp", "tcp6"]) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/net/${table}`, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const [, local, remote, state, , , , , , inode] = line.trim().split(/\s+/);
      const [address, port] = local?.split(":") ?? [];
      if (local && remote && address && port && state && inode) {
        const localPort = Number.parseInt(port, 16);
        sockets.push({ localAddress: decodeAddress(address), localPort, local, remote, state, inode });
      }
    }
  }
  return sockets;
}

/** The process and all its descendants: a server may listen from a worker it forked. */
export function listProcessTree(pid: number): number[] {
  const pids = [pid];
  for (let i = 0; i < pids.length; i++) {
    const current = pids[i] ?? pid;
    let tasks: string[];
    try {
      tasks = readdirSync(`/proc/${current}/task`);
    } catch {
      continue;
    }
    for (const task of tasks) {
      try {
        const children = readFileSync(`/proc/${current}/task/${task}/children`, "utf8")
          .split(" ")
          .filter(Boolean);
        pids.push(...children.map(Number));
      } catch {
        // Exited meanwhile.
      }
    }
  }
  return pids;
}

/** The socket inodes of the process and its descendants. */
export function readTreeSocketInodes(pid: number): Set<string> {
  return new Set(listProcessTree(pid).flatMap((member) => [...readSocketInodes(member)]));
}

/** Where the app's process tree listens. */
export function listListeningSockets(
  pid: number,
  inodes: ReadonlySet<string> = readTreeSocketInodes(pid),
): ListenAddress[] {
  return readTcpSockets(pid)
    .filter((socket) => socket.state === TCP_LISTEN && inodes.has(socket.inode))
    .map((socket) => ({ address: socket.localAddress, port: socket.localPort }));
}

export interface PortHolder {
  readonly port: number;
  /** The process holding the other listening socket, when it can be found. */
  readonly pid: number | undefined;
  readonly command: string | undefined;
}

/**
 * Listening sockets of other processes on the addresses in `wanted`, in the network
 * namespace of `pid` (or warmstart's). Two listeners conflict when they share a port and an
 * address, or one of them listens on every address.
 */
export function findPortHolders(
  wanted: readonly ListenAddress[],
  options: { readonly pid?: number; readonly ownInodes?: ReadonlySet<string> } = {},
): PortHolder[] {
  if (wanted.length === 0) return [];
  const others = readTcpSockets(options.pid ?? "self").filter(
    (socket) => socket.state === TCP_LISTEN && !options.ownInodes?.has(socket.inode),
  );
  const holders: PortHolder[] = [];
  for (const socket of others) {
    const isClash = wanted.some(
      (w) =>
        w.port === socket.localPort &&
        (w.address === socket.localAddress || isWildcard(w.address) || isWildcard(socket.localAddress)),
    );
    if (isClash && !holders.some((holder) => holder.port === socket.localPort)) {
      const pid = findSocketOwner(socket.inode);
      holders.push({
        port: socket.localPort,
        pid,
        command: pid === undefined ? undefined : readCommand(pid),
      });
    }
  }
  return holders;
}

export function describePortHolder(holder: PortHolder): string {
  const who =
    holder.pid === undefined
      ? "another process"
      : `pid ${holder.pid}${holder.command ? ` (${holder.command})` : ""}`;
  return `port ${holder.port} is held by ${who}`;
}

function isWildcard(address: string): boolean {
  return address === "0.0.0.0" || address === "::";
}

/** Which process has the socket open: a scan of /proc, done only when there is a conflict. */
function findSocketOwner(inode: string): number | undefined {
  const link = `socket:[${inode}]`;
  for (const name of safeReaddir("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    for (const fd of safeReaddir(`/proc/${name}/fd`)) {
      try {
        if (readlinkSync(`/proc/${name}/fd/${fd}`) === link) return Number(name);
      } catch {
        // Closed meanwhile.
      }
    }
  }
  return undefined;
}

function readCommand(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return undefined;
  }
}

function safeReaddir(path: string): string[] {
  try {
    return readdirSync(path);
  } catch {
    return [];
  }
}

/** /proc/net/tcp prints addresses as hex words in host byte order (little-endian here). */
function decodeAddress(hex: string): string {
  if (hex.length === 8) {
    const bytes = Buffer.from(hex, "hex").reverse();
    return [...bytes].join(".");
  }
  const words: string[] = [];
  for (let i = 0; i < 32; i += 8) {
    const word = Buffer.from(hex.slice(i, i + 8), "hex").reverse();
    words.push(word.subarray(0, 2).toString("hex"), word.subarray(2, 4).toString("hex"));
  }
  return compressIpv6(words.map((word) => word.replace(/^0+(?=.)/, "")));
}

/** The two forms that matter here get their usual names; others stay uncompressed. */
function compressIpv6(groups: string[]): string {
  const text = groups.join(":");
  if (text === "0:0:0:0:0:0:0:0") return "::";
  if (text === "0:0:0:0:0:0:0:1") return "::1";
  return text;
}
