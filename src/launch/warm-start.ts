import type { StdioOptions } from "node:child_process";
import { closeSync, linkSync, mkdirSync, readFileSync } from "node:fs";
import { Socket } from "node:net";
import { join } from "node:path";
import { Readable, type Writable } from "node:stream";
import type { CacheEntry } from "../cache/entry-store.js";
import { findHotPages, type HotPagemap, keepHotPages } from "../cache/hot-pages.js";
import { readCriuErrors } from "../criu/criu-log.js";
import { KERNDAT_TARGET } from "../criu/kerndat-cache.js";
import {
  type CommandLine,
  criuRestore,
  inRestoreNamespace,
  perlScript,
  restoreChainReaper,
} from "../exec/command-lines.js";
import { type OwnedHandle, spawnOwned, spawnOwnedNative } from "../exec/owned-process.js";
import { makePipe, makeSocketPair } from "../exec/pipes.js";
import { findRestoreChain } from "../exec/restore-chain.js";
import {
  type AppProcess,
  type AppStdio,
  type OutputSinks,
  ownControlStreams,
  signalAppGroup,
  toAppProcess,
} from "./app-process.js";
import { type LazyPagesDaemon, startLazyPagesDaemon } from "./lazy-pages.js";
import {
  bashWrapper,
  detachedRestoreWrapper,
  REAPER_SCRIPT,
  RESTORE_CONTROL_FDS,
  RESTORE_STDIO_FDS,
  RESUMED_MARKER,
} from "./pipe-wrapper.js";

export interface WarmStartOptions {
  readonly criuPath: string;
  /** Restore memory on demand through a lazy-pages daemon. */
  readonly isLazy: boolean;
  readonly entry: CacheEntry;
  /** A private directory of this launch (0700), same filesystem as the cache. */
  readonly workDir: string;
  /** Absolute path; kept when the restore fails, so the warning can point at it. */
  readonly logPath: string;
  readonly sinks: OutputSinks;
  readonly isDetached: boolean;
  /** The launch's environment: PATH lookups of the restore chain are the cold start's. */
  readonly env: NodeJS.ProcessEnv;
  /** CRIU is stopped and the restore counts as failed after this. */
  readonly timeoutMs: number;
  /** Aborting stops the restore (the launch is being stopped). */
  readonly signal?: AbortSignal;
  /** Leave the restored app stopped until SIGCONT (serve's spare): the reaper's resume
   * marker then means "restored", and the app runs only when resumed. */
  readonly isLeftStopped: boolean;
  /** warmstart's copy of CRIU's kernel-feature cache, mounted over its path for CRIU. */
  readonly kerndatFile?: string;
  /** Makes the NOTIFY_SOCKET path in the image reach this launch's socket. */
  readonly notifyRedirect?: { readonly dir: string; readonly oldPath: string; readonly newPath: string };
}

/** A lazy restore's use of the entry's hot pages (src/cache/hot-pages.ts): how many it read
 * up front, or that this restore learns them. */
export type HotPagesUse = { readonly eagerPages: number } | { readonly isLearning: true };

export type WarmStartOutcome =
  | {
      readonly restored: true;
      readonly app: AppProcess;
      /** Settles when the staged images are no longer read (at once unless lazy). */
      readonly imagesReleased: Promise<void>;
      /** The lazy-pages daemon, which a detached launch leaves running. */
      readonly lazyPagesPid: number | undefined;
      readonly hotPages: HotPagesUse | undefined;
    }
  | {
      readonly restored: false;
      /** restore-failed: CRIU ran and failed (its log says why). not-started: the restore
       * could not be set up here and now (the images not staged, no fds for the pipes):
       * nothing is known against the snapshot, and CRIU wrote no log. */
      readonly reason: "restore-failed" | "not-started";
      /** CRIU's error lines (log and stderr), most specific first; or why it did not start. */
      readonly errors: readonly string[];
      readonly logPath: string;
    };

type Failed = Extract<WarmStartOutcome, { restored: false }>;

/**
 * Restores the entry in a new PID and mount namespace (what criu-ns does, without its
 * Python start-up and its 1 s polling for the PID): the app gets its old PID inside the
 * namespace, so any number of restores run while the original PID is taken on the host.
 *
 *   warmstart ─ restore-chain enter ─ criu restore ⇒ restore-chain reap (PID 1) ─ app
 *   without the program (no C compiler at build time):
 *   warmstart ─ setpriv ⇒ sh guard ⇒ unshare ─ [sh: notify socket ⇒] [sh: kerndat ⇒]
 *               criu restore ⇒ perl reaper (PID 1) ─ app
 *   (─ parent of, ⇒ exec)
 */
export async function startWarm(options: WarmStartOptions): Promise<WarmStartOutcome> {
  const failed = (errors: readonly string[]): Failed => ({
    restored: false,
    reason: "restore-failed",
    errors,
    logPath: options.logPath,
  });
  let staged: StagedImages;
  const hot = options.isLazy ? findHotPages(options.entry.dir, options.entry.imagesDir) : undefined;
  try {
    staged = stageImages(options.entry, options.workDir, hot?.pagemaps ?? []);
  } catch (error) {
    // A file of the entry gone (removed behind the cache's back) condemns the snapshot; any
    // other failure (no space or inodes for the links, a read-only runtime directory) is this
    // machine's, now.
    const { code, path } = error as NodeJS.ErrnoException;
    if (code === "ENOENT" && path?.startsWith(options.entry.imagesDir))
      return failed([`an image file of the snapshot is missing: ${path}`]);
    return notStarted(`could not stage the images: ${(error as Error).message}`, options);
  }
  const imagesDir = staged.dir;
  // Learned on the first lazy restore of the entry that warmstart outlives (a detached
  // launch's daemon outlives it): its daemon logs every fault it serves.
  const isLearning = hot?.isLearned === false && !options.isDetached;
  let lazy: LazyPagesDaemon | undefined;
  if (options.isLazy) {
    const started = await startLazyPagesDaemon(
      options.criuPath,
      imagesDir,
      options.logPath.replace(/\.log$/, "-lazy-pages.log"),
      options.isDetached,
      options.timeoutMs,
      options.kerndatFile,
      isLearning,
    );
    if (!started.isStarted) return failed(started.errors);
    lazy = started.daemon;
  }
  const outcome = await restore(options, imagesDir, lazy !== undefined);
  if (!outcome.restored) {
    lazy?.stop();
    return outcome;
  }
  const daemon = lazy;
  if (daemon) void outcome.app.exited.then(() => daemon.stop());
  const { entry } = options;
  // The staged images are released once the daemon is done and, when learning, once the hot
  // pagemaps are made from them.
  const imagesReleased = !daemon
    ? Promise.resolve()
    : !isLearning
      ? daemon.done
      : daemon.faults.then((faults) => {
          if (faults) keepHotPages(entry.dir, entry.imagesDir, imagesDir, faults);
        });
  return {
    ...outcome,
    imagesReleased,
    lazyPagesPid: daemon?.pid,
    hotPages: !options.isLazy
      ? undefined
      : isLearning
        ? { isLearning: true }
        : { eagerPages: staged.eagerPages },
  };
}

function notStarted(why: string, options: WarmStartOptions): Failed {
  return { restored: false, reason: "not-started", errors: [why], logPath: options.logPath };
}

/** The restore chain below the launcher: the guard and the namespaces, CRIU, the reaper. */
function restoreCommand(options: WarmStartOptions, imagesDir: string, isLazy: boolean): CommandLine {
  const { manifest } = options.entry;
  const program = findRestoreChain();
  const criu = criuRestore(options.criuPath, {
    imagesDir,
    logFile: options.logPath,
    logLevel: 2,
    inheritFds: [
      ...manifest.stdio.map((resource, index) => ({ fd: RESTORE_STDIO_FDS[index] ?? -1, resource })),
      ...(manifest.runtime
        ? [
            { fd: RESTORE_CONTROL_FDS.down, resource: manifest.runtime.control.down },
            { fd: RESTORE_CONTROL_FDS.up, resource: manifest.runtime.control.up },
          ]
        : []),
    ],
    // Attached, the namespace ends with warmstart; detached, the app outlives it.
    execCommand: program
      ? restoreChainReaper(program, manifest.pid, !options.isDetached)
      : perlScript(REAPER_SCRIPT, [String(manifest.pid), options.isDetached ? "0" : "1"]),
    isLazy,
    isLeftStopped: options.isLeftStopped,
  });
  return inRestoreNamespace(
    program,
    {
      isGuarded: !options.isDetached,
      ...(options.kerndatFile ? { kerndat: { file: options.kerndatFile, target: KERNDAT_TARGET } } : {}),
      ...(options.notifyRedirect ? { notifyRedirect: options.notifyRedirect } : {}),
    },
    criu,
  );
}

/** How the restore chain is spawned, and the launcher's ends of the app's pipes. */
interface RestoreSpawn {
  readonly command: CommandLine;
  readonly env: NodeJS.ProcessEnv;
  /** How it is started; the channel is where CRIU's output and the reaper's resume marker
   * arrive. */
  readonly start:
    | {
        /** Attached: posix_spawn with the chain's fds from 0 (the app's pipes at
         * RESTORE_STDIO_FDS and RESTORE_CONTROL_FDS for --inherit-fd); the channel is the
         * launcher's end of the chain's stdout and stderr. */
        readonly kind: "posix-spawn";
        readonly fds: readonly (number | null | undefined)[];
        readonly channel: Socket;
      }
    | {
        /** Detached: Node's spawn of the bash wrapper; the channel is one of its stdio. */
        readonly kind: "node-spawn";
        readonly stdio: StdioOptions;
        readonly channelIndex: number;
      };
  readonly app: AppStdio;
  readonly control: { readonly down: Writable; readonly up: Readable } | undefined;
  /** The chain's ends of pipes made here, closed here once it has them. */
  readonly childEnds: readonly number[];
}

/**
 * Real pipes made by the launcher (src/exec/pipes.ts): no relay process between the app and
 * the launcher, and a restored copy checkpointed again (serve --keep-state) still has pipes
 * for stdio. fd 0 is /dev/null, 1 and 2 the channel (a socketpair: the reaper reads its fd 1
 * for the launcher's end closing). A detached app's output is relayed by a bash wrapper
 * instead (detachedRestoreWrapper says why).
 */
function restoreSpawn(options: WarmStartOptions, command: CommandLine, hasControl: boolean): RestoreSpawn {
  const childEnds: number[] = [];
  const ours: Socket[] = [];
  const made = (childFd: number, socket: Socket) => {
    childEnds.push(childFd);
    ours.push(socket);
    return { childFd, ours: socket };
  };
  const toChild = () => {
    const pipe = makePipe();
    return made(pipe.read, new Socket({ fd: pipe.write, readable: false, writable: true }));
  };
  const fromChild = () => {
    const pipe = makePipe();
    return made(pipe.write, new Socket({ fd: pipe.read, readable: true, writable: false }));
  };
  try {
    const down = hasControl ? toChild() : undefined;
    const up = hasControl ? fromChild() : undefined;
    const control = down && up ? { down: down.ours, up: up.ours } : undefined;
    const controlFds = down && up ? [down.childFd, up.childFd] : [];
    if (options.isDetached) {
      const wrapper = bashWrapper(detachedRestoreWrapper(), command, options.env);
      return {
        ...wrapper,
        start: {
          kind: "node-spawn",
          stdio: ["ignore", "inherit", "inherit", "pipe", "ignore", "ignore", "ignore", ...controlFds],
          channelIndex: 3,
        },
        app: { stdin: null, stdout: null, stderr: null },
        control,
        childEnds,
      };
    }
    const stdin = toChild();
    const stdout = fromChild();
    const stderr = fromChild();
    const [launcherEnd, chainEnd] = makeSocketPair();
    // Never shut down for writing: the reaper would read that as the launcher gone.
    const channel = made(chainEnd, new Socket({ fd: launcherEnd, readable: true, writable: false }));
    return {
      command,
      env: options.env,
      start: {
        kind: "posix-spawn",
        fds: [
          null,
          channel.childFd,
          channel.childFd,
          undefined,
          stdin.childFd,
          stdout.childFd,
          stderr.childFd,
          ...controlFds,
        ],
        channel: channel.ours,
      },
      app: { stdin: stdin.ours, stdout: stdout.ours, stderr: stderr.ours },
      control,
      childEnds,
    };
  } catch (error) {
    // Out of fds, or koffi cannot load: nothing made here may outlive the failed restore.
    for (const fd of childEnds) closeSync(fd);
    for (const socket of ours) socket.destroy();
    throw error;
  }
}

/** The restore chain started: posix_spawn when attached, Node's spawn for the detached wrapper. */
function spawnChain({ command, env, start }: RestoreSpawn): { owned: OwnedHandle; channels: Readable[] } {
  if (start.kind === "posix-spawn") {
    const owned = spawnOwnedNative(command, {
      env,
      fds: start.fds,
      isSessionLeader: true,
      isKilledAtExit: true,
      endOfChild: start.channel,
    });
    return { owned, channels: [start.channel] };
  }
  const owned = spawnOwned(command, {
    env,
    isSessionLeader: true,
    isKilledAtExit: false,
    stdio: start.stdio,
  });
  // A spawn that failed (out of fds or processes) has no stdio at all.
  const channel = owned.child.stdio?.[start.channelIndex];
  return { owned, channels: channel instanceof Readable ? [channel] : [] };
}

async function restore(
  options: WarmStartOptions,
  imagesDir: string,
  isLazy: boolean,
): Promise<{ restored: true; app: AppProcess } | Failed> {
  const hasControl = options.entry.manifest.runtime !== undefined;
  let spawned: RestoreSpawn;
  try {
    spawned = restoreSpawn(options, restoreCommand(options, imagesDir, isLazy), hasControl);
  } catch (error) {
    return notStarted(`could not make the restored app's pipes: ${(error as Error).message}`, options);
  }
  const { owned, channels } = spawnChain(spawned);
  for (const fd of spawned.childEnds) closeSync(fd);
  // Taken at once: a restore that fails must close them too.
  const controlStreams = spawned.control ? ownControlStreams(owned.exited, spawned.control) : undefined;
  const resumed = await waitForResume(channels, owned.exited, options);
  const { manifest } = options.entry;
  const pid = resumed.isResumed ? findRestoredPid(owned.pid, manifest.pid) : undefined;
  if (pid === undefined) {
    const exit = await owned.stop("SIGKILL");
    const { app, control } = spawned;
    const channel = spawned.start.kind === "posix-spawn" ? spawned.start.channel : undefined;
    for (const stream of [app.stdin, app.stdout, app.stderr, control?.down, control?.up, channel])
      stream?.destroy();
    if (exit.reason === "spawn-failed")
      return notStarted(`could not start the restore: ${exit.error?.message ?? "spawn failed"}`, options);
    const why = resumed.isResumed
      ? "the restored process was not found under the new PID namespace"
      : resumed.isTimedOut
        ? `criu restore did not finish within ${options.timeoutMs / 1000} s`
        : undefined;
    const printed = resumed.control
      .split("\n")
      .filter((line) => /error/i.test(line))
      .map((line) => line.trim());
    return {
      restored: false,
      reason: "restore-failed",
      errors: [...(await readCriuErrors(options.logPath)), ...printed, ...(why ? [why] : [])],
      logPath: options.logPath,
    };
  }
  const kill = (signal: NodeJS.Signals) => signalAppGroup(pid, signal);
  return {
    restored: true,
    app: toAppProcess(owned, options.sinks, { pid, kill }, controlStreams, spawned.app),
  };
}

interface ResumeWait {
  readonly isResumed: boolean;
  readonly isTimedOut: boolean;
  /** What CRIU and the reaper printed on the control channel. */
  readonly control: string;
}

/** The reaper announces the resume on the channels; CRIU prints its fatal errors there. */
function waitForResume(
  channels: readonly Readable[],
  exited: Promise<unknown>,
  { timeoutMs, signal }: { readonly timeoutMs: number; readonly signal?: AbortSignal },
): Promise<ResumeWait> {
  return new Promise((resolve) => {
    let control = "";
    let isSettled = false;
    const settle = (isResumed: boolean, isTimedOut: boolean) => {
      if (isSettled) return;
      isSettled = true;
      clearTimeout(timer);
      resolve({ isResumed, isTimedOut, control });
    };
    const timer = setTimeout(() => settle(false, true), timeoutMs);
    if (signal?.aborted) settle(false, false);
    signal?.addEventListener("abort", () => settle(false, false), { once: true });
    for (const channel of channels)
      channel.on("data", (chunk: Buffer) => {
        control += chunk.toString();
        if (control.includes(RESUMED_MARKER)) settle(true, false);
      });
    void exited.then(() => settle(false, false));
  });
}

/**
 * CRIU writes into the images directory on restore (stats-restore), so it gets a private
 * directory of hard links to the entry's files: the entry stays exactly as committed,
 * and concurrent restores of one entry do not share a directory.
 */
interface StagedImages {
  readonly dir: string;
  /** Pages that the hot pagemaps staged make eager. */
  readonly eagerPages: number;
}

/** The entry's images as CRIU restores them: hard links, a hot pagemap standing in for the
 * entry's pagemap of its process where there is one (src/cache/hot-pages.ts). */
function stageImages(entry: CacheEntry, workDir: string, hot: readonly HotPagemap[]): StagedImages {
  const dir = join(workDir, "images");
  mkdirSync(dir, { mode: 0o700 });
  let eagerPages = 0;
  for (const name of Object.keys(entry.manifest.files)) {
    const pagemap = hot.find((candidate) => candidate.name === name);
    if (pagemap && tryLink(pagemap.path, join(dir, name))) eagerPages += pagemap.eagerPages;
    else linkSync(join(entry.imagesDir, name), join(dir, name));
  }
  return { dir, eagerPages };
}

/** A hint gone meanwhile (its entry replaced, pruned) is no reason not to restore. */
function tryLink(existing: string, path: string): boolean {
  try {
    linkSync(existing, path);
    return true;
  } catch {
    return false;
  }
}

function readChildren(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").split(" ").filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** The last field of NSpid is the PID inside the innermost namespace. */
export function readNamespacePids(pid: number): number[] {
  try {
    const line = /^NSpid:\s*(.*)$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? "";
    return line.split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/**
 * The restored app's host PID: under the process that entered the namespaces (the spawned
 * PID, kept through the execs: restore-chain's, or unshare's) is the namespace's PID 1 (the
 * reaper), and under it the process whose namespace PID is the one it had when it was dumped.
 */
export function findRestoredPid(chainPid: number, dumpedPid: number): number | undefined {
  for (const init of readChildren(chainPid)) {
    if (readNamespacePids(init).at(-1) !== 1) continue;
    return readChildren(init).find((pid) => readNamespacePids(pid).at(-1) === dumpedPid);
  }
  return undefined;
}
