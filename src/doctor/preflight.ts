import { endianness } from "node:os";
import { collectTreeFacts, type FdFact, type ProcessFacts, type TreeFacts } from "./preflight-facts.js";

// Pre-flight: what in a process tree CRIU cannot carry, or carries so that the app behaves
// differently after a restore. Each finding was checked against real `criu dump` runs here
// (CRIU 4.2.1, flags as warmstart dumps: --tcp-close --network-lock skip --file-locks).

export type FindingKind =
  | "tcp-established"
  | "unix-socket-outside"
  | "inotify-watch"
  | "io-uring"
  | "file-lock"
  | "deleted-file"
  | "tty"
  | "device"
  | "mlocked-memory";

/** A change that makes the finding go away, which the cold start can apply for the next run. */
export type PreflightFix =
  /** Start the app with these variables (the running app cannot be changed). */
  { readonly type: "env"; readonly env: Readonly<Record<string, string>>; readonly description: string };

export interface PreflightFinding {
  readonly kind: FindingKind;
  /** The process holding it, and the fd when it is one. */
  readonly pid: number;
  readonly command: string;
  readonly fd: number | undefined;
  /** What it is: "connection 127.0.0.1:40112 -> 127.0.0.1:5432 (postgres, pid 812)". */
  readonly subject: string;
  /** What will happen, in plain words. */
  readonly effect: string;
  /** What to do about it. */
  readonly advice: string;
  /** True when CRIU's dump fails because of it (the others restore, but behave differently). */
  readonly isDumpBlocking: boolean;
  readonly fix?: PreflightFix;
  /** A path, peer address or size the finding is about, for matching CRIU's log lines. */
  readonly evidence: readonly string[];
}

export interface PreflightReport {
  readonly rootPid: number;
  readonly processCount: number;
  readonly findings: readonly PreflightFinding[];
  /** What could not be checked (a missing `ss`, say). */
  readonly limitations: readonly string[];
}

/** The kernel's TCP_ESTABLISHED, as /proc/net/tcp prints states. */
const TCP_ESTABLISHED = "01";

/** CRIU keeps an unlinked file's content in the image up to this size (its --ghost-limit default). */
export const GHOST_LIMIT_BYTES = 1024 * 1024;

/** Reads /proc for `pid` and its descendants and reports what a checkpoint would not carry. */
export async function runPreflight(pid: number): Promise<PreflightReport> {
  const facts = await collectTreeFacts(pid);
  return {
    rootPid: pid,
    processCount: facts.processes.length,
    findings: findIssues(facts),
    limitations: facts.limitations,
  };
}

/** The findings in a tree's facts: a pure function of what /proc said. */
export function findIssues(facts: TreeFacts): PreflightFinding[] {
  const treeSockets = new Set<string>();
  for (const process of facts.processes) {
    for (const { target } of process.fds) {
      const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
      if (inode) treeSockets.add(inode);
    }
  }
  const ptyMasters = new Set<string>();
  for (const process of facts.processes) {
    for (const { target, info } of process.fds) {
      const index = /^tty-index:\s*(\d+)$/m.exec(info)?.[1];
      if (target === "/dev/ptmx" && index !== undefined) ptyMasters.add(index);
    }
  }
  const findings: PreflightFinding[] = [];
  for (const process of facts.processes) {
    const fds = [...process.fds].sort((a, b) => a.fd - b.fd);
    for (const fd of fds) {
      const found = classifyFd(process, fd, { facts, treeSockets, ptyMasters });
      if (found) findings.push(found);
      const lock = findLock(process, fd);
      if (lock) findings.push(lock);
    }
    // A runtime opens io_uring instances by the handful (libuv: several per loop): one finding.
    const rings = fds.filter((fd) => fd.target === "anon_inode:[io_uring]");
    if (rings.length > 0) findings.push(ioUring(process, rings));
    if (process.lockedBytes > 0) findings.push(mlockedMemory(process));
  }
  // What stops the dump first: it is what the user has to fix before anything else matters.
  return findings.sort((a, b) => Number(b.isDumpBlocking) - Number(a.isDumpBlocking));
}

interface TreeContext {
  readonly facts: TreeFacts;
  readonly treeSockets: ReadonlySet<string>;
  readonly ptyMasters: ReadonlySet<string>;
}

function classifyFd(process: ProcessFacts, fd: FdFact, context: TreeContext): PreflightFinding | undefined {
  const { target } = fd;
  const socket = /^socket:\[(\d+)\]$/.exec(target)?.[1];
  if (socket) return classifySocket(process, fd, socket, context);
  if (target === "anon_inode:inotify") return inotifyWatch(process, fd);
  if (target.endsWith(" (deleted)") && fd.stat?.isFile && !target.startsWith("/memfd:")) {
    return deletedFile(process, fd);
  }
  if (fd.stat?.isCharacterDevice) return classifyDevice(process, fd, context.ptyMasters);
  return undefined;
}

function base(process: ProcessFacts, fd: number | undefined) {
  return { pid: process.pid, command: process.command, fd };
}

function classifySocket(
  process: ProcessFacts,
  fd: FdFact,
  inode: string,
  { facts, treeSockets }: TreeContext,
): PreflightFinding | undefined {
  const tcp = facts.tcp.find((row) => row.inode === inode);
  if (tcp) {
    // Listening sockets are what a restore is for, and the other states are on their way
    // out (warmstart waits a moment for those before it dumps).
    if (tcp.state !== TCP_ESTABLISHED) return undefined;
    const local = decodeAddress(tcp.local);
    const peer = decodeAddress(tcp.remote);
    const peerSocket = facts.tcp.find((row) => row.local === tcp.remote && row.remote === tcp.local);
    const peerOwner = peerSocket ? facts.ownerOf(peerSocket.inode) : undefined;
    const isPeerInside = peerSocket !== undefined && treeSockets.has(peerSocket.inode);
    const who = peerOwner
      ? ` (${peerOwner.command}, pid ${peerOwner.pid}${isPeerInside ? ", inside the app" : ""})`
      : "";
    return {
      kind: "tcp-established",
      ...base(process, fd.fd),
      subject: `connection ${local} -> ${peer}${who}`,
      effect: `it is not carried: after a restore the app finds this connection to ${peer} closed (warmstart dumps with --tcp-close), and its next read or write fails`,
      advice: `open it after the restore or on first use, or use a client that reconnects (a pool that drops a closed connection); close it before the app reports ready if it is only needed at startup`,
      isDumpBlocking: false,
      evidence: [peer],
    };
  }
  const unix = facts.unix.get(inode);
  if (unix && !treeSockets.has(unix.peerInode)) {
    const owner = facts.ownerOf(unix.peerInode);
    const peerAddress = facts.unix.get(unix.peerInode)?.address;
    const path =
      peerAddress && peerAddress !== "*" ? peerAddress : unix.address !== "*" ? unix.address : undefined;
    const held = owner ? `${owner.command} (pid ${owner.pid})` : "a process warmstart cannot see";
    return {
      kind: "unix-socket-outside",
      ...base(process, fd.fd),
      subject: `unix socket ${path ? `connected to ${path}` : `(inode ${inode})`}, other end held by ${held}, outside the app`,
      effect: `the dump fails: CRIU cannot carry one end of a unix connection whose other end is outside the app (its log says "External socket is used")`,
      advice: `connect after the restore or on first use (a database or journald client that connects lazily), or close it before the app reports ready; log to stdout rather than to a socket`,
      isDumpBlocking: true,
      evidence: [inode, ...(path ? [path] : [])],
    };
  }
  return undefined;
}

function inotifyWatch(process: ProcessFacts, fd: FdFact): PreflightFinding {
  const watches = (fd.info.match(/^inotify wd:/gm) ?? []).length;
  return {
    kind: "inotify-watch",
    ...base(process, fd.fd),
    subject: `inotify instance with ${watches} watch${watches === 1 ? "" : "es"} (file watching: fs.watch, chokidar, a config reloader)`,
    effect:
      "CRIU restores the watches on the same files, but changes made between the checkpoint and a restore are never reported, and a restore fails if a watched file was deleted since",
    advice:
      "re-read the watched files after a restore, or start watching after the app reports ready in a way that tolerates missed events",
    isDumpBlocking: false,
    evidence: ["inotify"],
  };
}

function ioUring(process: ProcessFacts, rings: readonly FdFact[]): PreflightFinding {
  const isNode = /^node/.test(process.executable ?? process.command);
  const fds = rings.map((ring) => ring.fd);
  return {
    kind: "io-uring",
    ...base(process, fds[0]),
    subject:
      fds.length === 1 ? "an io_uring instance" : `${fds.length} io_uring instances (fds ${fds.join(", ")})`,
    effect:
      'the dump fails: CRIU cannot checkpoint io_uring (its log says "Unknown ... anon_inode:[io_uring]")',
    advice: isNode
      ? "start Node with UV_USE_IO_URING=0: libuv then does file I/O on its thread pool instead of io_uring"
      : "turn io_uring off in the app or its runtime (most have a switch) before it is checkpointed",
    isDumpBlocking: true,
    ...(isNode
      ? {
          fix: {
            type: "env" as const,
            env: { UV_USE_IO_URING: "0" },
            description: "UV_USE_IO_URING=0 makes Node's libuv use its thread pool instead of io_uring",
          },
        }
      : {}),
    evidence: ["io_uring"],
  };
}

function deletedFile(process: ProcessFacts, fd: FdFact): PreflightFinding {
  const path = fd.target.replace(/ \(deleted\)$/, "");
  const sizeBytes = fd.stat?.sizeBytes ?? 0;
  const isTooBig = sizeBytes > GHOST_LIMIT_BYTES;
  return {
    kind: "deleted-file",
    ...base(process, fd.fd),
    subject: `deleted file ${path} (${sizeBytes} bytes), still open`,
    effect: isTooBig
      ? `the dump fails: CRIU copies a deleted file's content into the image only up to ${GHOST_LIMIT_BYTES} bytes ("Can't dump ghost file")`
      : "CRIU copies its content into the image: a restored app reads the checkpoint's copy, and whatever another process shares through it is no longer shared",
    advice:
      "close it before the app reports ready, or keep such files under a name (not unlinked) while they are open",
    isDumpBlocking: isTooBig,
    evidence: [path],
  };
}

/** Major 1 is the memory devices (/dev/null, zero, full, random, urandom): CRIU reopens them. */
const MEMORY_DEVICES_MAJOR = 1;
/** Majors 136-143 are pseudo-terminal slaves (/dev/pts/N); 4 and 5 the virtual consoles and /dev/tty. */
const isTerminalMajor = (major: number) => major === 4 || major === 5 || (major >= 136 && major <= 143);
const GPU_PATH = /^\/dev\/(?:nvidia|dri\/|kfd)/;

function classifyDevice(
  process: ProcessFacts,
  fd: FdFact,
  ptyMasters: ReadonlySet<string>,
): PreflightFinding | undefined {
  const major = fd.stat?.rdevMajor ?? -1;
  if (major === MEMORY_DEVICES_MAJOR) return undefined;
  const { target } = fd;
  if (target === "/dev/ptmx") return undefined; // a pty master the app made: CRIU carries the pair
  if (isTerminalMajor(major)) {
    const ptsIndex = /^\/dev\/pts\/(\d+)$/.exec(target)?.[1];
    if (ptsIndex !== undefined && ptyMasters.has(ptsIndex)) return undefined;
    return {
      kind: "tty",
      ...base(process, fd.fd),
      subject: `terminal ${target}`,
      effect:
        'the dump fails: the terminal\'s other side is outside the app ("Found slave peer index ... without correspond master peer", or "Can\'t dump file ... of that type" for a console)',
      advice:
        "run the app without a terminal (warmstart gives it pipes; an app that opens /dev/tty itself must not), or redirect its input and output",
      isDumpBlocking: true,
      evidence: [target, `chr ${major}:`],
    };
  }
  const isGpu = GPU_PATH.test(target);
  return {
    kind: "device",
    ...base(process, fd.fd),
    subject: `${isGpu ? "GPU device" : "device"} ${target}`,
    effect: isGpu
      ? "the dump fails: CRIU checkpoints GPU state only with a vendor plugin (cuda, amdgpu), which warmstart's CRIU build does not include"
      : "the dump fails: CRIU cannot save a device's state (\"Can't dump file ... of that type\")",
    advice: isGpu
      ? "keep the GPU work in a process outside the snapshot, or open the device after the restore"
      : "open the device after the restore (on first use), or close it before the app reports ready",
    isDumpBlocking: true,
    evidence: [target, `chr ${major}:`, `fd ${fd.fd}`],
  };
}

function findLock(process: ProcessFacts, fd: FdFact): PreflightFinding | undefined {
  const lock = /^lock:\s*\d+:\s*(\w+)\s+\w+\s+(\w+)/m.exec(fd.info);
  if (!lock) return undefined;
  const [, type = "", mode = ""] = lock;
  return {
    kind: "file-lock",
    ...base(process, fd.fd),
    subject: `${type} ${mode.toLowerCase()} lock on ${fd.target}`,
    effect:
      "CRIU takes the lock again on restore (warmstart dumps with --file-locks); the restore fails while another process holds it, such as the instance that was checkpointed and keeps running, or a second copy",
    advice:
      "take the lock after the restore, or make sure the checkpointed instance has stopped before a warm launch",
    isDumpBlocking: false,
    evidence: [fd.target, "lock"],
  };
}

function mlockedMemory(process: ProcessFacts): PreflightFinding {
  const kib = Math.round(process.lockedBytes / 1024);
  return {
    kind: "mlocked-memory",
    ...base(process, undefined),
    subject: `${kib} KiB locked in memory (mlock)`,
    effect:
      "CRIU dumps it and locks it again on restore; a lazy restore (images of 100 MiB or more) brings the pages in on first touch, so right after the restore they are not yet resident",
    advice: "if the app relies on mlock for latency, restore eagerly: warmstart run --no-lazy",
    isDumpBlocking: false,
    evidence: [],
  };
}

/** "0100007F:1F90" -> "127.0.0.1:8080"; IPv6 in brackets. The kernel prints each 32-bit word in host order. */
export function decodeAddress(text: string, byteOrder = endianness()): string {
  const [hex = "", portHex = "0"] = text.split(":");
  const port = Number.parseInt(portHex, 16);
  const words = hex.match(/.{8}/g) ?? [];
  const bytes = words.flatMap((word) => {
    const wordBytes = (word.match(/../g) ?? []).map((byte) => Number.parseInt(byte, 16));
    return byteOrder === "LE" ? wordBytes.reverse() : wordBytes;
  });
  if (bytes.length === 4) return `${bytes.join(".")}:${port}`;
  // IPv4-mapped IPv6 (::ffff:a.b.c.d) reads better as IPv4.
  if (bytes.slice(0, 10).every((byte) => byte === 0) && bytes[10] === 0xff && bytes[11] === 0xff) {
    return `${bytes.slice(12).join(".")}:${port}`;
  }
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0)).toString(16));
  const compact = groups
    .join(":")
    .replace(/(^|:)0(:0)+(:|$)/, "::")
    .replace(/:{3,}/, "::");
  return `[${compact}]:${port}`;
}

/**
 * Of the findings, the one that explains a failed dump's CRIU error lines, so the failure
 * quotes it and not only CRIU's own words ("Unknown shit 600 (anon_inode:[io_uring])").
 * Undefined when no finding matches what CRIU said.
 */
export function explainDumpFailure(
  errorLines: readonly string[],
  findings: readonly PreflightFinding[],
): PreflightFinding | undefined {
  const log = errorLines.join("\n");
  const blocking = findings.filter((finding) => finding.isDumpBlocking);
  const pick = (kinds: readonly FindingKind[], predicate?: (finding: PreflightFinding) => boolean) => {
    const candidates = blocking.filter((finding) => kinds.includes(finding.kind));
    return predicate ? candidates.find(predicate) : candidates[0];
  };
  const mentions = (finding: PreflightFinding) => finding.evidence.some((text) => log.includes(text));
  // The one CRIU names, else the only kind that can cause that error.
  const pickNamed = (kinds: readonly FindingKind[]) => pick(kinds, mentions) ?? pick(kinds);
  if (/External socket is used|ext-unix-sk|half of stream unix/.test(log))
    return pickNamed(["unix-socket-outside"]);
  if (/io_uring/.test(log)) return pick(["io-uring"]);
  if (/ghost file/.test(log)) return pickNamed(["deleted-file"]);
  if (/slave peer index|criu\/tty\.c/.test(log)) return pickNamed(["tty"]);
  const fileOfType = /Can't dump file (\d+) of that type/.exec(log);
  if (fileOfType) {
    const fd = Number(fileOfType[1]);
    return (
      pick(["device", "tty"], (finding) => finding.fd === fd && mentions(finding)) ??
      pick(["device", "tty"], mentions)
    );
  }
  if (/tun: /.test(log)) return pick(["device"], (finding) => finding.evidence.includes("/dev/net/tun"));
  return undefined;
}

/** The fixes the findings offer: variables for the next cold start. */
export function collectFixes(findings: readonly PreflightFinding[]): Readonly<Record<string, string>> {
  const env: Record<string, string> = {};
  for (const finding of findings) if (finding.fix?.type === "env") Object.assign(env, finding.fix.env);
  return env;
}
