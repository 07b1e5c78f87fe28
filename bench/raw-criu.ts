// The `raw-criu` mode: warmstart's snapshot restored by CRIU alone, with the same CRIU flags,
// the same kind of PID namespace and the same eager-or-lazy choice as warmstart's warm path,
// so that warm minus raw-criu is what warmstart itself adds (Node's boot, the key, the
// lookup, its pipes, the reaper, the handshake).
import { type ChildProcess, spawn } from "node:child_process";
import {
  closeSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
} from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { findCriu } from "../src/criu/find-criu.js";
import {
  findKerndatCache,
  hasKerndatTarget,
  KERNDAT_TARGET,
  makeKerndatCache,
} from "../src/criu/kerndat-cache.js";
import {
  type CommandLine,
  criuLazyPages,
  criuRestore,
  guardedWithKerndat,
  inNewMountNamespace,
  inNewPidNamespace,
  inRestoreNamespace,
  withKerndatCache,
} from "../src/exec/command-lines.js";
import { findRestoreChain } from "../src/exec/restore-chain.js";
import { findRestoredPid } from "../src/launch/warm-start.js";
import { liveChildren, measureTtfr, stop } from "./ttfr.js";

/** What the harness needs of a cache entry (<cache>/v<format>/<key>/images + manifest.json). */
export interface SnapshotEntry {
  readonly imagesDir: string;
  /** The app's fd 0-2 at dump time, "pipe:[INODE]". */
  readonly stdio: readonly string[];
}

export interface RawRestoreOptions {
  readonly entry: SnapshotEntry;
  /** Memory served on first touch by `criu lazy-pages` (userfaultfd), as warmstart does for large images. */
  readonly isLazy: boolean;
  /** Scratch space on the cache's filesystem (the images are hard-linked into it). */
  readonly scratchDir: string;
  readonly url: string;
  readonly timeoutMs: number;
}

const CRIU = process.env.WARMSTART_CRIU ?? "criu";

/**
 * The copy of CRIU's kernel-feature cache that warmstart keeps in the entry's cache
 * (src/criu/kerndat-cache.ts), if there is one: raw CRIU gets it too, mounted the same way,
 * as CRIU has its own cache on hosts whose /run is a tmpfs. Without it raw CRIU would probe
 * the kernel (~45 ms here) where warmstart does not, and warm − raw-criu would not be
 * warmstart's own time.
 */
function kerndatCopyOf(entry: SnapshotEntry): string | undefined {
  const dir = join(entry.imagesDir, "..", "..", "..", "kerndat");
  try {
    const name = readdirSync(dir).find((file) => file.endsWith(".kdat"));
    return name && hasKerndatTarget() ? join(dir, name) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Makes the copy for the bench's cache now, as warmstart does after a launch (in the
 * background, which a bench that stops its launch at once may cut short): warm and raw-criu
 * launches then both start with it.
 */
export async function prepareKerndatCopy(cacheDir: string, env: NodeJS.ProcessEnv): Promise<void> {
  const criu = await findCriu(env);
  if (criu.found && !findKerndatCache(cacheDir, criu.criu.path))
    await makeKerndatCache(cacheDir, criu.criu.path);
}

/** CRIU's command, with the kernel-feature cache mounted for it when there is a copy. */
function withKerndat(entry: SnapshotEntry, command: CommandLine): CommandLine {
  const copy = kerndatCopyOf(entry);
  return copy ? withKerndatCache(copy, KERNDAT_TARGET, command) : command;
}

/**
 * CRIU restoring in a new PID and mount namespace, its kernel-feature cache bound in, entered
 * as cheaply as warmstart enters it: through the restore chain's program when it was built
 * (one exec, where unshare, sh and mount take three), so that warm minus raw-criu does not
 * count the util-linux chain as warmstart's gain.
 */
function inRawNamespace(entry: SnapshotEntry, criu: CommandLine): CommandLine {
  const program = findRestoreChain();
  const copy = kerndatCopyOf(entry);
  if (program === undefined) return inNewPidNamespace(true, withKerndat(entry, criu));
  return inRestoreNamespace(
    program,
    { isGuarded: true, ...(copy ? { kerndat: { file: copy, target: KERNDAT_TARGET } } : {}) },
    criu,
  );
}

/** A private copy of the entry's images (hard links) and the restore's log, in `scratchDir`. */
function stageImages(options: RawRestoreOptions): { stage: string; imagesDir: string; logPath: string } {
  // CRIU writes stats-restore into the images directory: restore from private hard links,
  // never from the entry itself (what warmstart does too).
  const stage = mkdtempSync(join(options.scratchDir, "raw-criu-"));
  const imagesDir = join(stage, "images");
  mkdirSync(imagesDir, { mode: 0o700 });
  for (const name of readdirSync(options.entry.imagesDir)) {
    linkSync(join(options.entry.imagesDir, name), join(imagesDir, name));
  }
  return { stage, imagesDir, logPath: join(stage, "restore.log") };
}

/**
 * warmstart's restore command line (src/exec/command-lines.ts), minus its --exec-cmd reaper
 * and its pipes: the same flags, the same kind of namespace. --kill-child: killing unshare
 * kills CRIU, the namespace's PID 1, and with it the app. The app's stdio pipes become
 * /dev/null through --inherit-fd at fds 4-6 (CRIU accepts any file there): no relay at all.
 */
function rawRestoreCommand(
  options: RawRestoreOptions,
  staged: { imagesDir: string; logPath: string },
  isLeftStopped: boolean,
): CommandLine {
  const stdioFds = [4, 5, 6];
  return inRawNamespace(
    options.entry,
    criuRestore(CRIU, {
      imagesDir: staged.imagesDir,
      logFile: staged.logPath,
      logLevel: 2,
      inheritFds: options.entry.stdio.map((resource, fd) => ({ fd: stdioFds[fd] ?? -1, resource })),
      execCommand: [],
      isLazy: options.isLazy,
      isLeftStopped,
    }),
  );
}

/** What one raw restore has set up: its staged images, /dev/null for the app's stdio. */
interface RawRestore {
  readonly staged: { readonly stage: string; readonly imagesDir: string; readonly logPath: string };
  readonly devNull: number;
  /** The restore's process (unshare), once started: killed with the namespace afterwards. */
  child?: ChildProcess;
}

/**
 * Stages the images, starts the lazy-pages daemon when the restore is lazy, runs `measure`,
 * and takes everything down after it (the namespace, the daemon, the staged images); CRIU's
 * errors are added to a failure.
 */
async function withRawRestore<T>(
  options: RawRestoreOptions,
  measure: (restore: RawRestore) => Promise<T>,
): Promise<T> {
  const restore: RawRestore = { staged: stageImages(options), devNull: openSync("/dev/null", "r+") };
  const { staged } = restore;
  let daemon: ChildProcess | undefined;
  try {
    if (options.isLazy)
      daemon = await startLazyPages(
        options.entry,
        staged.imagesDir,
        join(staged.stage, "lazy-pages.log"),
        options.timeoutMs,
      );
    return await measure(restore);
  } catch (error) {
    throw new Error(`${(error as Error).message}\nrestore.log errors:\n${readLogErrors(staged.logPath)}`);
  } finally {
    closeSync(restore.devNull);
    if (restore.child) await stop(restore.child, "SIGKILL");
    if (daemon) await stop(daemon, "SIGKILL");
    rmSync(staged.stage, { recursive: true, force: true });
  }
}

/**
 * One restore, measured from its first spawn (the lazy-pages daemon, or unshare) to the app's
 * first 2xx; the namespace and the daemon are killed after.
 */
export function measureRawRestore(
  options: RawRestoreOptions,
): Promise<{ ttfrMs: number; body: Record<string, unknown> }> {
  const startedMs = performance.now();
  return withRawRestore(options, async (restore) => {
    const { devNull } = restore;
    const run = await measureTtfr(rawRestoreCommand(options, restore.staged, false), options.url, {
      startedMs,
      timeoutMs: options.timeoutMs,
      stdio: ["ignore", "ignore", "pipe", "ignore", devNull, devNull, devNull],
    });
    restore.child = run.child;
    return { ttfrMs: run.ttfrMs, body: run.body };
  });
}

/**
 * The floor of serve's --spare: CRIU alone restores the image left stopped (the same flags);
 * once it sits stopped, a client connects and the app gets SIGCONT at once. Measured from the
 * connect to the answer: the app's own resume and its first request, no warmstart in the path
 * (no runtime handshake either: the image's control pipe is gone, so its runtime reads
 * "cancelled" and goes on unreseeded, which serve would never allow).
 */
export function measureRawSpare(
  options: RawRestoreOptions & { readonly dumpedPid: number },
): Promise<number> {
  return withRawRestore(options, async (restore) => {
    const { devNull } = restore;
    const [file = "", ...args] = rawRestoreCommand(options, restore.staged, true);
    const unshare = spawn(file, args, {
      stdio: ["ignore", "ignore", "ignore", "ignore", devNull, devNull, devNull],
    });
    restore.child = unshare;
    liveChildren.add(unshare);
    unshare.once("exit", () => liveChildren.delete(unshare));
    const pid = await waitForStoppedApp(unshare, options.dumpedPid, options.timeoutMs);
    // As serve's spare: restored a while before its connection comes.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const startedMs = performance.now();
    const answered = getOnce(options.url, options.timeoutMs);
    process.kill(pid, "SIGCONT");
    await answered;
    return performance.now() - startedMs;
  });
}

/** The restored app's host PID once CRIU has left it stopped (state T). */
async function waitForStoppedApp(
  unshare: ChildProcess,
  dumpedPid: number,
  timeoutMs: number,
): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (unshare.exitCode !== null || unshare.signalCode !== null) throw new Error("criu restore exited");
    const pid = unshare.pid === undefined ? undefined : findRestoredPid(unshare.pid, dumpedPid);
    if (pid !== undefined && /^State:\s+T/m.test(readFileSync(`/proc/${pid}/status`, "utf8"))) return pid;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error(`the restore was not left stopped within ${timeoutMs} ms`);
}

/** One GET on its own connection; resolves on the end of a 2xx answer. */
function getOnce(url: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false, headers: { connection: "close" } }, (res) => {
      res.resume();
      res.on("end", () =>
        res.statusCode && res.statusCode < 300 ? resolve() : reject(new Error(`status ${res.statusCode}`)),
      );
    });
    req.on("error", reject);
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.end();
  });
}

/** Starts `criu lazy-pages` and resolves once it listens (it writes to --status-fd), as warmstart does. */
function startLazyPages(
  entry: SnapshotEntry,
  imagesDir: string,
  logPath: string,
  timeoutMs: number,
): Promise<ChildProcess> {
  const lazyPages = criuLazyPages(CRIU, { imagesDir, logFile: logPath, logLevel: 2, statusFd: 3 });
  const copy = kerndatCopyOf(entry);
  const program = findRestoreChain();
  const command = !copy
    ? lazyPages
    : program
      ? guardedWithKerndat(program, { file: copy, target: KERNDAT_TARGET }, lazyPages)
      : inNewMountNamespace(withKerndat(entry, lazyPages));
  const [file = "", ...args] = command;
  const daemon = spawn(file, args, { stdio: ["ignore", "ignore", "pipe", "pipe"] });
  liveChildren.add(daemon);
  daemon.once("exit", () => liveChildren.delete(daemon));
  return new Promise((resolve, reject) => {
    const fail = (why: string) => {
      daemon.kill("SIGKILL");
      reject(new Error(`criu lazy-pages ${why}; its log:\n${readLogErrors(logPath)}`));
    };
    const timer = setTimeout(() => fail(`was not ready within ${timeoutMs} ms`), timeoutMs);
    const onExit = (code: number | null) => fail(`exited with ${code} before it was ready`);
    daemon.once("error", (error) => fail(`could not start: ${error.message}`));
    daemon.once("exit", onExit);
    daemon.stdio[3]?.once("data", () => {
      clearTimeout(timer);
      daemon.off("exit", onExit);
      resolve(daemon);
    });
  });
}

function readLogErrors(logPath: string): string {
  try {
    const lines = readFileSync(logPath, "utf8").split("\n");
    return (
      lines
        .filter((line) => /error/i.test(line))
        .slice(0, 10)
        .join("\n") || "(none)"
    );
  } catch {
    return "(no log)";
  }
}
