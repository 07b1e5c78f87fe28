import { readdirSync, readFileSync, readlinkSync, statSync } from "node:fs";
import { basename } from "node:path";
import { inNetworkOf, ssUnixSockets } from "../exec/command-lines.js";
import { describeExit, runToCompletion } from "../exec/owned-process.js";
import { listProcessTree, readTcpSockets, type TcpSocket } from "../launch/proc-sockets.js";

// What /proc says about a process tree, read once, so that what it means (preflight.ts)
// is a pure function that unit tests can feed with made-up processes.

/** One open file descriptor. */
export interface FdFact {
  readonly fd: number;
  /** The /proc/<pid>/fd link: a path ("... (deleted)" when unlinked), socket:[N], anon_inode:... */
  readonly target: string;
  /** /proc/<pid>/fdinfo/<fd>, read for the kinds whose details are there (inotify, locks, ptmx). */
  readonly info: string;
  /** For files and devices: what fstat says. */
  readonly stat?: {
    readonly isCharacterDevice: boolean;
    readonly isFile: boolean;
    readonly rdevMajor: number;
    readonly sizeBytes: number;
  };
}

export interface ProcessFacts {
  readonly pid: number;
  /** /proc/<pid>/comm: what `ps` shows. */
  readonly command: string;
  /** The executable's file name (node, java, python3.11), when readable. */
  readonly executable: string | undefined;
  readonly fds: readonly FdFact[];
  /** VmLck: memory locked with mlock. */
  readonly lockedBytes: number;
}

/** A connected unix socket as sock_diag sees it (through `ss`). */
export interface UnixSocketFact {
  readonly inode: string;
  readonly peerInode: string;
  /** The bound path ("@name" for abstract ones), or "*" when unnamed. */
  readonly address: string;
}

export interface SocketOwner {
  readonly pid: number;
  readonly command: string;
}

export interface TreeFacts {
  readonly rootPid: number;
  readonly processes: readonly ProcessFacts[];
  /** The TCP table of the tree's network namespace. */
  readonly tcp: readonly TcpSocket[];
  /** Connected unix sockets of the tree's network namespace, by inode. */
  readonly unix: ReadonlyMap<string, UnixSocketFact>;
  /** Which process holds a socket inode, anywhere on the machine (for naming peers). */
  readonly ownerOf: (inode: string) => SocketOwner | undefined;
  /** What could not be read, said rather than silently skipped. */
  readonly limitations: readonly string[];
}

/** Reads the facts about `pid` and its descendants. */
export async function collectTreeFacts(pid: number): Promise<TreeFacts> {
  const pids = listProcessTree(pid);
  const processes = pids.map(readProcessFacts).filter((facts) => facts !== undefined);
  const limitations: string[] = [];
  const unix = await readUnixSockets(pid).catch((error: Error) => {
    limitations.push(`unix socket peers unknown: ${error.message}`);
    return new Map<string, UnixSocketFact>();
  });
  let owners: Map<string, SocketOwner> | undefined;
  return {
    rootPid: pid,
    processes,
    tcp: readTcpSockets(pid),
    unix,
    ownerOf: (inode) => {
      owners ??= indexSocketOwners();
      return owners.get(inode);
    },
    limitations,
  };
}

function readProcessFacts(pid: number): ProcessFacts | undefined {
  let command: string;
  let names: string[];
  try {
    command = readFileSync(`/proc/${pid}/comm`, "utf8").trim();
    names = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return undefined; // Exited meanwhile.
  }
  const fds: FdFact[] = [];
  for (const name of names) {
    const fd = Number(name);
    try {
      const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      fds.push({ fd, target, info: readInfo(pid, fd, target), ...readStat(pid, fd, target) });
    } catch {
      // Closed meanwhile.
    }
  }
  let executable: string | undefined;
  try {
    executable = basename(readlinkSync(`/proc/${pid}/exe`));
  } catch {
    executable = undefined;
  }
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const lockedKib = Number(/^VmLck:\s*(\d+) kB$/m.exec(status)?.[1] ?? 0);
  return { pid, command, executable, fds, lockedBytes: lockedKib * 1024 };
}

function readInfo(pid: number, fd: number, target: string): string {
  // fdinfo costs a read per fd: only where the kind needs it (locks can be on any file).
  const isWanted = target.startsWith("anon_inode:") || target.startsWith("/");
  if (!isWanted) return "";
  try {
    return readFileSync(`/proc/${pid}/fdinfo/${fd}`, "utf8");
  } catch {
    return "";
  }
}

function readStat(pid: number, fd: number, target: string): Pick<FdFact, "stat"> {
  if (!target.startsWith("/")) return {};
  try {
    const stat = statSync(`/proc/${pid}/fd/${fd}`);
    return {
      stat: {
        isCharacterDevice: stat.isCharacterDevice(),
        isFile: stat.isFile(),
        // Linux's dev_t: the major number is bits 8-19 (and 32-43, for majors over 4095).
        rdevMajor: ((stat.rdev >> 8) & 0xfff) | (Math.floor(stat.rdev / 2 ** 32) & ~0xfff),
        sizeBytes: stat.size,
      },
    };
  } catch {
    return {};
  }
}

/**
 * Connected unix sockets and their peers, from the kernel's sock_diag through `ss` (iproute2):
 * /proc/net/unix does not say who is at the other end. Run inside the tree's network
 * namespace when it has its own (a prewarm's), since sock_diag only sees the caller's.
 */
async function readUnixSockets(pid: number): Promise<Map<string, UnixSocketFact>> {
  const isOwnNamespace = readNamespace(pid) !== readNamespace(process.pid);
  const command = isOwnNamespace ? inNetworkOf(pid, ssUnixSockets()) : ssUnixSockets();
  const run = await runToCompletion(command, { timeoutMs: 10_000, killGraceMs: 0 });
  if (run.code !== 0) {
    throw new Error(`'${command.join(" ")}' failed (${run.stderr.split("\n")[0] || describeExit(run)})`);
  }
  return parseSsUnix(run.stdout);
}

/** `ss -xanH` lines: netid, state, recv-q, send-q, local address, inode, peer address, peer inode. */
export function parseSsUnix(output: string): Map<string, UnixSocketFact> {
  const sockets = new Map<string, UnixSocketFact>();
  for (const line of output.split("\n")) {
    // The local address is a path and may hold spaces; the rest of the line never does.
    const match = /^\S+\s+\S+\s+\d+\s+\d+\s+(.*?)\s+(\d+)\s+\S+\s+(\d+)\s*$/.exec(line);
    if (!match) continue;
    const [, address = "*", inode = "", peerInode = "0"] = match;
    if (peerInode !== "0") sockets.set(inode, { inode, peerInode, address });
  }
  return sockets;
}

function readNamespace(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/net`);
  } catch {
    return undefined;
  }
}

/** Every socket inode on the machine and the process holding it (the first one found). */
function indexSocketOwners(): Map<string, SocketOwner> {
  const owners = new Map<string, SocketOwner>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    let fds: string[];
    let command: string;
    try {
      fds = readdirSync(`/proc/${name}/fd`);
      command = readFileSync(`/proc/${name}/comm`, "utf8").trim();
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const inode = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${name}/fd/${fd}`))?.[1];
        if (inode && !owners.has(inode)) owners.set(inode, { pid: Number(name), command });
      } catch {
        // Closed meanwhile.
      }
    }
  }
  return owners;
}
