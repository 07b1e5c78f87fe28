import { readdirSync, readFileSync, readlinkSync } from "node:fs";

/** A row of /proc/<pid>/net/tcp{,6}. */
export interface TcpSocket {
  readonly localPort: number;
  /** As the kernel prints them: hex address (in host byte order per 32-bit word), ":", hex port. */
  readonly local: string;
  readonly remote: string;
  /** Kernel TCP state, hex as the kernel prints it: "0A" is LISTEN. */
  readonly state: string;
  readonly inode: string;
}

export const TCP_LISTEN = "0A";

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

/** The TCP sockets of the network namespace `pid` lives in. */
export function readTcpSockets(pid: number): TcpSocket[] {
  const sockets: TcpSocket[] = [];
  for (const table of ["tcp", "tcp6"]) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/net/${table}`, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const columns = line.trim().split(/\s+/);
      const [, local, remote, state, , , , , , inode] = columns;
      const port = local?.split(":")[1];
      if (local && remote && port && state && inode) {
        sockets.push({ localPort: Number.parseInt(port, 16), local, remote, state, inode });
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
