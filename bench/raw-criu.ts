// The `raw-criu` mode: warmstart's snapshot restored by CRIU alone, with the same CRIU flags,
// the same kind of PID namespace and the same eager-or-lazy choice as warmstart's warm path,
// so that warm minus raw-criu is what warmstart itself adds (Node's boot, the key, the
// lookup, the wrappers, the reaper).
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
import { join } from "node:path";
import { criuLazyPages, criuRestore, inNewPidNamespace } from "../src/exec/command-lines.js";
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
 * One restore, measured from its first spawn (the lazy-pages daemon, or unshare) to the app's
 * first 2xx; the namespace and the daemon are killed after.
 */
export async function measureRawRestore(
  options: RawRestoreOptions,
): Promise<{ ttfrMs: number; body: Record<string, unknown> }> {
  // CRIU writes stats-restore into the images directory: restore from private hard links,
  // never from the entry itself (what warmstart does too).
  const stage = mkdtempSync(join(options.scratchDir, "raw-criu-"));
  const imagesDir = join(stage, "images");
  const logPath = join(stage, "restore.log");
  mkdirSync(imagesDir, { mode: 0o700 });
  for (const name of readdirSync(options.entry.imagesDir)) {
    linkSync(join(options.entry.imagesDir, name), join(imagesDir, name));
  }
  // The app's stdio pipes become /dev/null through --inherit-fd (CRIU accepts any file
  // there): no relay processes at all, the cheapest restore CRIU can do. warmstart hands
  // real pipes instead, through a bash wrapper; that cost is part of its overhead.
  const devNull = openSync("/dev/null", "r+");
  const stdioFds = [4, 5, 6];
  // warmstart's restore command line (src/exec/command-lines.ts), minus its --exec-cmd reaper
  // and its bash wrapper: the same flags, the same kind of namespace. --kill-child: killing
  // unshare kills CRIU, the namespace's PID 1, and with it the app.
  const command = inNewPidNamespace(
    true,
    criuRestore(CRIU, {
      imagesDir,
      logFile: logPath,
      logLevel: 2,
      inheritFds: options.entry.stdio.map((resource, fd) => ({ fd: stdioFds[fd] ?? -1, resource })),
      execCommand: [],
      isLazy: options.isLazy,
    }),
  );
  const startedMs = performance.now();
  let daemon: ChildProcess | undefined;
  let child: ChildProcess | undefined;
  try {
    if (options.isLazy)
      daemon = await startLazyPages(imagesDir, join(stage, "lazy-pages.log"), options.timeoutMs);
    const run = await measureTtfr(command, options.url, {
      startedMs,
      timeoutMs: options.timeoutMs,
      stdio: ["ignore", "ignore", "pipe", "ignore", devNull, devNull, devNull],
    });
    child = run.child;
    return { ttfrMs: run.ttfrMs, body: run.body };
  } catch (error) {
    throw new Error(`${(error as Error).message}\nrestore.log errors:\n${readLogErrors(logPath)}`);
  } finally {
    closeSync(devNull);
    if (child) await stop(child, "SIGKILL");
    if (daemon) await stop(daemon, "SIGKILL");
    rmSync(stage, { recursive: true, force: true });
  }
}

/** Starts `criu lazy-pages` and resolves once it listens (it writes to --status-fd), as warmstart does. */
function startLazyPages(imagesDir: string, logPath: string, timeoutMs: number): Promise<ChildProcess> {
  const [file, ...args] = criuLazyPages(CRIU, { imagesDir, logFile: logPath, logLevel: 2, statusFd: 3 });
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
