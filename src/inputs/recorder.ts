import { closeSync, fstatSync, readFileSync, readlinkSync, statSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";
import {
  FAN_CLOSE_WRITE,
  FAN_MODIFY,
  FAN_ONDIR,
  FAN_OPEN,
  FAN_OPEN_EXEC,
  FAN_Q_OVERFLOW,
  type Fanotify,
  type FanotifyOpened,
  openFanotify,
  RECORDED_EVENTS,
} from "./fanotify.js";
import { listMappedFiles, listOpenFiles, listProcessTree } from "./process-tree.js";
import { type FileStamp, formatStamp, toStamp } from "./stamp.js";

/**
 * How the files a cold start reads are found.
 * - fanotify: the app runs in a private mount namespace (a copy of warmstart's) whose
 *   mounts are marked before the app is let go; every open and exec through them is the
 *   app's tree, short-lived children included, and nothing else on the machine is seen.
 * - proc: without fanotify (no CAP_SYS_ADMIN, an old kernel, WARMSTART_INPUT_RECORDER=proc):
 *   what /proc shows at dump time (mapped and open files of the tree) plus the arguments
 *   that name files. Files read and closed during startup are missed.
 */
export type RecorderMode = "fanotify" | "proc";

export interface RecordedFile {
  readonly path: string;
  readonly kind: "file" | "dir";
  /** As the app opened it (fanotify) or as found at dump time (proc). */
  readonly stamp: FileStamp;
}

export type RecordingOutcome =
  | {
      readonly isComplete: true;
      readonly mode: RecorderMode;
      readonly files: readonly RecordedFile[];
      /** Written or open for writing at dump time: never inputs. */
      readonly outputs: readonly string[];
    }
  | { readonly isComplete: false; readonly mode: RecorderMode; readonly reason: string };

export interface InputRecorder {
  /** Settled once attach() has run (for a gated recorder): fanotify or its fallback. */
  readonly mode: RecorderMode;
  /** Why fanotify is not used, when it is not. */
  readonly fallbackReason: string | undefined;
  /** The app must start gated in a mount namespace of its own (see startCold's gate). */
  readonly isGated: boolean;
  /** Settles once fanotify opened or the recorder fell back to /proc (mode is final then). */
  readonly opened: Promise<void>;
  /** Called once the gated app is in its namespace, before it runs: marks its mounts.
   * isPrivate false: the kernel gave it none, and the recording falls back to /proc. */
  attach(pid: number, isPrivate: boolean): Promise<void>;
  /** Stops recording (at dump time) and says what the app's tree read. */
  finish(app: RecordedApp): RecordingOutcome;
  /** Stops without a result (the app did not become ready). */
  close(): void;
}

export interface RecordedApp {
  readonly pid: number;
  /** The executable as resolved (symlinks followed): its exec must have been seen. */
  readonly executable: string;
  readonly args: readonly string[];
  readonly cwd: string;
}

/** Filesystems whose files are never inputs: their mounts are not marked. */
const PSEUDO_FILESYSTEMS = new Set([
  "proc",
  "sysfs",
  "devtmpfs",
  "devpts",
  "cgroup",
  "cgroup2",
  "mqueue",
  "debugfs",
  "tracefs",
  "securityfs",
  "pstore",
  "bpf",
  "configfs",
  "fusectl",
  "binfmt_misc",
  "autofs",
  "hugetlbfs",
  "nsfs",
  "rpc_pipefs",
  "efivarfs",
]);

const POLL_MS = 5;

/**
 * A recorder for one cold start. koffi and fanotify_init take tens of milliseconds: they are
 * started here and awaited in attach(), while the app's wrapper, unshare and the gate start
 * in parallel. When fanotify turns out unusable, the recorder falls back to /proc.
 */
export function startRecorder(env: NodeJS.ProcessEnv): InputRecorder {
  if (env.WARMSTART_INPUT_RECORDER === "proc") return createProcRecorder("WARMSTART_INPUT_RECORDER=proc");
  if ((process.getuid?.() ?? 0) !== 0 && !hasCapSysAdmin()) {
    return createProcRecorder("fanotify needs CAP_SYS_ADMIN");
  }
  let openFailure: string | undefined;
  const opening = openFanotify()
    .catch((error: Error): FanotifyOpened => ({ isOpen: false, reason: error.message }))
    .then((opened) => {
      if (!opened.isOpen) openFailure = opened.reason;
      return opened;
    });
  // Chosen at the gate, once it is known whether the app got a namespace of its own.
  let chosen: InputRecorder | undefined;
  const choose = async (isPrivate: boolean) => {
    if (!chosen) {
      const opened = await opening;
      if (opened.isOpen && !isPrivate) closeSync(opened.fanotify.fd);
      chosen = !opened.isOpen
        ? createProcRecorder(opened.reason)
        : isPrivate
          ? createFanotifyRecorder(opened.fanotify)
          : createProcRecorder("the kernel refused the app a mount namespace of its own");
    }
    return chosen;
  };
  return {
    opened: opening.then(() => undefined),
    get mode() {
      return chosen?.mode ?? (openFailure === undefined ? "fanotify" : "proc");
    },
    get fallbackReason() {
      return chosen ? chosen.fallbackReason : openFailure;
    },
    isGated: true,
    attach: async (pid, isPrivate) => (await choose(isPrivate)).attach(pid, isPrivate),
    finish: (app) =>
      chosen
        ? chosen.finish(app)
        : { isComplete: false, mode: "fanotify", reason: "the app's mounts were never watched" },
    close: () => {
      if (chosen) chosen.close();
      else
        void opening.then((opened) => {
          // Never attached (the app failed first): only the fanotify fd to let go of.
          if (!chosen && opened.isOpen) closeSync(opened.fanotify.fd);
        });
    },
  };
}

function createProcRecorder(fallbackReason: string): InputRecorder {
  return {
    mode: "proc",
    fallbackReason,
    isGated: false,
    opened: Promise.resolve(),
    attach: async () => {},
    finish: (app) => readProcInputs(app),
    close: () => {},
  };
}

interface Seen {
  kind: "file" | "dir";
  stamps: Set<string>;
  first: FileStamp;
}

function createFanotifyRecorder(fanotify: Fanotify): InputRecorder {
  const opened = new Map<string, Seen>();
  const written = new Set<string>();
  const problems: string[] = [];
  const markedMounts = new Set<string>();
  let isOverflowed = false;
  let isClosed = false;

  const drain = () => {
    let events: ReturnType<Fanotify["readEvents"]>;
    try {
      events = fanotify.readEvents();
    } catch (error) {
      problems.push(`reading fanotify events failed: ${(error as Error).message}`);
      return;
    }
    for (const event of events) {
      if (event.mask & FAN_Q_OVERFLOW) isOverflowed = true;
      if (event.fd < 0) continue;
      try {
        recordEvent(event.mask, event.fd);
      } catch {
        // The file vanished between the event and its fd's stat: nothing to key on.
      } finally {
        closeSync(event.fd);
      }
    }
  };
  const recordEvent = (mask: number, fd: number) => {
    const path = readlinkSync(`/proc/self/fd/${fd}`);
    // Deleted since it was opened (" (deleted)"), or on a mount outside our view.
    if (!path.startsWith("/") || path.endsWith(" (deleted)")) return;
    if (mask & (FAN_MODIFY | FAN_CLOSE_WRITE)) written.add(path);
    if (!(mask & (FAN_OPEN | FAN_OPEN_EXEC))) return;
    const stat = fstatSync(fd);
    const kind = mask & FAN_ONDIR || stat.isDirectory() ? "dir" : stat.isFile() ? "file" : undefined;
    if (!kind) return;
    const stamp = toStamp(stat);
    const key = formatStamp(stamp);
    const seen = opened.get(path);
    if (seen) seen.stamps.add(key);
    else opened.set(path, { kind, stamps: new Set([key]), first: stamp });
  };
  const timer = setInterval(drain, POLL_MS);
  timer.unref();
  const close = () => {
    if (isClosed) return;
    isClosed = true;
    clearInterval(timer);
    closeSync(fanotify.fd);
  };

  return {
    mode: "fanotify",
    fallbackReason: undefined,
    isGated: true,
    opened: Promise.resolve(),
    attach: async (pid) => {
      for (const mount of readMounts(pid)) {
        if (PSEUDO_FILESYSTEMS.has(mount.fsType)) continue;
        // /proc/<pid>/root/... resolves in the app's namespace: the mark lands on its copy of
        // the mount, which only the app's tree uses.
        const failure = fanotify.markMount(`/proc/${pid}/root${mount.mountPoint}`, RECORDED_EVENTS);
        if (failure && mount.isReachable) problems.push(`cannot watch ${mount.mountPoint}: ${failure}`);
        markedMounts.add(mount.id);
      }
    },
    finish: (app) => {
      drain();
      const newMounts = readMounts(app.pid).filter(
        (mount) => !markedMounts.has(mount.id) && !PSEUDO_FILESYSTEMS.has(mount.fsType),
      );
      const outputs = new Set(written);
      for (const pid of listProcessTree(app.pid)) {
        for (const file of listOpenFiles(pid)) if (file.isWritable) outputs.add(file.path);
      }
      drain();
      close();
      if (isOverflowed)
        return { isComplete: false, mode: "fanotify", reason: "the fanotify queue overflowed" };
      if (markedMounts.size === 0) {
        return { isComplete: false, mode: "fanotify", reason: "the app's mounts were never watched" };
      }
      const [problem] = problems;
      if (problem) return { isComplete: false, mode: "fanotify", reason: problem };
      // The app's own exec is the first thing the marks must catch: without it, they came too
      // late, and whatever the app opened before them is missing.
      if (!opened.has(app.executable)) {
        return {
          isComplete: false,
          mode: "fanotify",
          reason: `the recording did not see ${app.executable} start`,
        };
      }
      const [mount] = newMounts;
      if (mount) {
        return {
          isComplete: false,
          mode: "fanotify",
          reason: `the app mounted ${mount.mountPoint} while it started, which was not watched`,
        };
      }
      const files: RecordedFile[] = [];
      for (const [path, seen] of opened) {
        if (outputs.has(path)) continue;
        if (seen.stamps.size > 1) {
          // A directory the app writes into is an output (see sealDiscoveredInputs).
          if (seen.kind === "dir") continue;
          return { isComplete: false, mode: "fanotify", reason: `${path} changed while the app started` };
        }
        files.push({ path, kind: seen.kind, stamp: seen.first });
      }
      return { isComplete: true, mode: "fanotify", files, outputs: [...outputs].sort() };
    },
    close,
  };
}

interface Mount {
  readonly id: string;
  readonly mountPoint: string;
  readonly fsType: string;
  /** False for a mount hidden under another one (no path reaches it). */
  readonly isReachable: boolean;
}

function readMounts(pid: number): Mount[] {
  const mounts: Mount[] = [];
  const lines = readFileSync(`/proc/${pid}/mountinfo`, "utf8").trim().split("\n");
  const mountPoints = lines.map((line) => unescapeMountPath(line.split(" ")[4] ?? ""));
  lines.forEach((line, index) => {
    const [before = "", after = ""] = line.split(" - ");
    const mountPoint = mountPoints[index] ?? "";
    mounts.push({
      id: before.split(" ")[0] ?? "",
      mountPoint,
      fsType: after.split(" ")[0] ?? "",
      // A later mount on the same point, or above it, hides this one.
      isReachable: !mountPoints
        .slice(index + 1)
        .some((other) => other === mountPoint || mountPoint.startsWith(`${other === "/" ? "" : other}/`)),
    });
  });
  return mounts;
}

function unescapeMountPath(text: string): string {
  return text.replace(/\\([0-7]{3})/g, (_match, octal: string) =>
    String.fromCharCode(Number.parseInt(octal, 8)),
  );
}

/** What /proc shows of the tree at dump time, plus the arguments that name files. */
function readProcInputs(app: RecordedApp): RecordingOutcome {
  const seen = new Set<string>();
  const outputs = new Set<string>();
  for (const pid of listProcessTree(app.pid)) {
    for (const path of listMappedFiles(pid)) seen.add(path);
    for (const file of listOpenFiles(pid)) (file.isWritable ? outputs : seen).add(file.path);
  }
  const named = new Set<string>();
  for (const arg of app.args) {
    // `--config=app.json` names a file too.
    const value = arg.includes("=") ? arg.slice(arg.indexOf("=") + 1) : arg;
    if (value && !value.startsWith("-")) named.add(isAbsolute(value) ? value : resolve(app.cwd, value));
  }
  const files: RecordedFile[] = [];
  for (const path of new Set([...seen, ...named])) {
    if (outputs.has(path) || path.endsWith(" (deleted)")) continue;
    try {
      const stat = statSync(path);
      // An open directory counts by its listing; a directory argument (`-cp classes`) would
      // only say that its names stayed, which is not what the app read from it.
      if (stat.isFile()) files.push({ path, kind: "file", stamp: toStamp(stat) });
      else if (stat.isDirectory() && seen.has(path)) files.push({ path, kind: "dir", stamp: toStamp(stat) });
    } catch {
      // An argument that is not a file.
    }
  }
  return { isComplete: true, mode: "proc", files, outputs: [...outputs].sort() };
}

function hasCapSysAdmin(): boolean {
  try {
    const capEff = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync("/proc/self/status", "utf8"))?.[1] ?? "0";
    return (BigInt(`0x${capEff}`) & (1n << 21n)) !== 0n;
  } catch {
    return false;
  }
}
