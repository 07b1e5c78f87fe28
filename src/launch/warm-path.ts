import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { decideNeverSlower, readStats, recordHit } from "../cache/entry-stats.js";
import type { CacheEntry } from "../cache/entry-store.js";
import { checkInputs, findEntry, type UnfitEntries } from "../cache/find-entry.js";
import { scheduleHousekeeping } from "../cache/housekeeping.js";
import { ownerOf } from "../cache/owner-stamp.js";
import { handOverRuntimeDir, notifySocketDir } from "../cache/runtime-dir.js";
import { findKerndatCache, keepKerndatCache } from "../criu/kerndat-cache.js";
import type { NotifyListener } from "../readiness/notify.js";
import {
  afterRestore,
  describeResume,
  type EarlyReseedOutcome,
  openControl,
  reseedEarly,
  runtimeContextFor,
} from "../runtime/app-runtime.js";
import { hasRuntimeSources } from "../runtime/runtime-files.js";
import {
  decideAfterLookup,
  decideAfterRestoredNotReady,
  decideAfterRestoredPorts,
  decideAfterRestoreFailure,
  type LookupDecision,
  type RestoreFailure,
} from "./decisions.js";
import type { LaunchContext, LaunchState, RestoredApp, Session, UsableCache } from "./launch-context.js";
import { toLaunch } from "./launch-handle.js";
import { LAZY_MIN_IMAGE_BYTES } from "./launch-options.js";
import { isNotifyWanted, listenForNotify, sayReady } from "./notify-relay.js";
import { findPortHolders, listListeningSockets, readTreeSocketInodes } from "./proc-sockets.js";
import { pullOnMiss } from "./remote-steps.js";
import { stopOnAbort } from "./stop-on-abort.js";
import { recheckableProbes, waitForReadiness } from "./wait-for-readiness.js";
import { type HotPagesUse, startWarm } from "./warm-start.js";

type State<S extends LaunchState["step"]> = Extract<LaunchState, { step: S }>;

/** looking-up: is there a snapshot, is it sound, and is it worth restoring? */
export async function lookUpSnapshot(
  context: LaunchContext,
  state: State<"looking-up">,
): Promise<LaunchState> {
  const { opts } = context;
  const { session, cache } = state;
  context.step("looking-up", cache.key.slice(0, 12));
  if (opts.restoreEntry) {
    const entry = opts.restoreEntry;
    const isLazy = opts.isLazy ?? entry.manifest.imageBytes >= LAZY_MIN_IMAGE_BYTES;
    return { step: "restoring", session, cache, entry, isLazy, isInputsUnchecked: false };
  }
  // The newest entry under the base key whose host part holds, its discovered inputs checked
  // while it is restored (restoring); on a miss, a compatible snapshot from the remote cache,
  // then the lookup again.
  const isRuntimeWanted = opts.runtime.isEnabled && hasRuntimeSources();
  const find = () =>
    findEntry(cache.store, cache.key, cache.fields, cache.hashes, {
      areInputsDeferred: true,
      isRuntimeWanted,
      ...unfitOf(state),
    });
  let found = await find();
  if (!found.hit && found.reason === "missing") {
    const pulled = await pullOnMiss(context, cache);
    if (pulled) found = await find();
  }
  // Not awaited: inputs re-hashed after a touch only cost the next launch a re-hash if lost.
  void cache.hashes.save();
  const decision = decideAfterLookup({
    found,
    // serve has no cold start to compare with: its cold path is a cold start, a dump and a restore.
    neverSlower: opts.isWarmOnly
      ? { action: "restore", isRemeasure: false }
      : decideNeverSlower(found.hit ? readStats(found.entry.dir) : undefined),
    portHolders:
      found.hit && opts.portPolicy === "exclusive" ? findPortHolders(found.entry.manifest.listen ?? []) : [],
    isLazy: opts.isLazy,
    lazyMinImageBytes: LAZY_MIN_IMAGE_BYTES,
    explainMiss: () => (!found.hit && found.reason === "missing" ? found.explanation : ""),
  });
  if (decision.action === "restore") {
    if (decision.isRemeasure) context.step("looking-up", "measuring the warm start again");
    const isInputsUnchecked = found.hit && found.isInputsUnchecked;
    const { entry, isLazy } = decision;
    return { step: "restoring", session, cache, entry, isLazy, isInputsUnchecked, ...unfitOf(state) };
  }
  // Not restored after all (the never-slower rule, a port taken): a cold start in place of an
  // entry whose inputs changed is a miss that wants a snapshot, so they are checked first.
  if (found.hit && found.isInputsUnchecked) {
    const unfit = await checkInputs(found.entry, cache.hashes);
    if (unfit !== undefined) return lookPast(state, found.entry, unfit);
  }
  if (decision.isEvicted && !found.hit && found.reason !== "missing") cache.store.evict(found.key);
  else if (decision.isEvicted && found.hit) cache.store.evict(found.entry.manifest.key);
  reportColdDecision(context, decision, cache.dir);
  const { fallback, cacheUse, isSnapshotWanted, ruleEntryDir } = decision;
  return {
    step: "starting-cold",
    session,
    plan: { fallback, cacheUse, isSnapshotWanted, ...(ruleEntryDir ? { ruleEntryDir } : {}) },
  };
}

/** restoring: CRIU brings the app back in a new PID namespace, or the launch goes cold. */
export async function restoreSnapshot(
  context: LaunchContext,
  state: State<"restoring">,
): Promise<LaunchState> {
  const { opts } = context;
  const { session, cache, entry } = state;
  context.step("restoring");
  mkdirSync(cache.logsDir, { recursive: true, mode: 0o700 });
  const logPath = join(
    cache.logsDir,
    `restore-${entry.manifest.key.slice(0, 12)}-${basename(session.runtime.path)}.log`,
  );
  const notify = await listenForRestoredNotify(context, session);
  const oldNotifySocket = redirectableNotifySocket(cache, entry);
  const { isInputsUnchecked } = state;
  const kerndatFile = findKerndatCache(cache.dir, cache.criuPath);
  const restoring = startWarm({
    criuPath: cache.criuPath,
    ...(kerndatFile ? { kerndatFile } : {}),
    entry,
    workDir: session.runtime.path,
    logPath,
    sinks: opts.sinks,
    isDetached: opts.isDetached,
    isLazy: state.isLazy,
    // Unchecked inputs: the app must not run before they are known to hold.
    isLeftStopped: opts.isLeftStopped || isInputsUnchecked,
    env: opts.env,
    timeoutMs: opts.restoreTimeoutMs,
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(notify && oldNotifySocket
      ? {
          notifyRedirect: { dir: notifySocketDir(cache.dir), oldPath: oldNotifySocket, newPath: notify.path },
        }
      : {}),
  });
  // startWarm has spawned CRIU by its first await (after the lazy-pages daemon's start, when
  // lazy): the stat of every input runs on this thread while CRIU restores beside it, so
  // 2,000 inputs cost the warm path nothing that the restore does not take longer for.
  const unfit = isInputsUnchecked ? await checkInputsTimed(context, cache, entry) : undefined;
  const warm = await restoring;
  const imagesDir = join(session.runtime.path, "images");
  const imagesOwned = context.resources.own("staged images", () =>
    rmSync(imagesDir, { recursive: true, force: true }),
  );
  if (!warm.restored) {
    await imagesOwned.release();
    await notify?.close();
    context.throwIfAborted();
    // The inputs changed: that, not the restore, is what this entry's miss is about.
    if (unfit !== undefined) return lookPast(state, state.entry, unfit);
    const failure = decideAfterRestoreFailure(
      warm.errors,
      existsSync(warm.logPath) ? warm.logPath : undefined,
      warm.reason !== "not-started",
    );
    // Kept state (serve --keep-state) is not the cache's entry: nothing of the cache to evict.
    return fallBackCold(
      context,
      session,
      cache,
      entry,
      opts.restoreEntry ? { ...failure, isEvicted: false } : failure,
    );
  }
  if (warm.hotPages) context.step("restoring", describeHotPages(warm.hotPages));
  const restored: RestoredApp = { ...warm, imagesOwned, notify, isReseeded: false };
  if (unfit !== undefined) return discardRestored(context, state, restored, unfit, logPath);
  if (opts.isLeftStopped) {
    const reseeded = await reseedWhileStopped(context, cache, entry, restored);
    if (!reseeded.isReseeded) {
      await takeDown(restored);
      context.throwIfAborted();
      return fallBackCold(context, session, cache, entry, {
        fallback: {
          reason: "reseed-failed",
          message: `${reseeded.detail}; evicted the snapshot, starting cold`,
        },
        isEvicted: true,
      });
    }
    const reseed = reseeded.reseedMs === undefined ? "" : `, reseeded in ${reseeded.reseedMs.toFixed(1)} ms`;
    context.step("stopped", `pid ${warm.app.pid}${reseed}`);
    const isReseeded = reseeded.reseedMs !== undefined;
    return { step: "stopped", session, cache, entry, restored: { ...restored, isReseeded } };
  }
  if (isInputsUnchecked) return { step: "resuming", session, cache, entry, restored };
  return { step: "checking-ready", session, cache, entry, restored };
}

function describeHotPages(hot: HotPagesUse): string {
  if ("isLearning" in hot) return "lazily, learning which pages the app touches first";
  return `lazily, ${hot.eagerPages} pages read up front: those its first lazy restore faulted on`;
}

/**
 * A copy left stopped to wait (serve's spare) runs only to reseed (reseedEarly), then is
 * stopped again: its resume then costs its restore hooks, not the reseed (6-8 ms of a tiny
 * server's first answer).
 */
async function reseedWhileStopped(
  context: LaunchContext,
  cache: UsableCache,
  entry: CacheEntry,
  restored: RestoredApp,
): Promise<EarlyReseedOutcome> {
  const { opts } = context;
  const { app } = restored;
  if (!entry.manifest.runtime?.canReseedEarly) return { isReseeded: true, reseedMs: undefined };
  app.kill("SIGCONT");
  const outcome = await reseedEarly(
    openControl(app, (message) => opts.emit({ type: "warning", message })),
    entry.manifest.runtime,
    runtimeContextFor(opts, cache.key),
  );
  // Until its connection comes, its other threads (a worker's, the GC's) stay as still as
  // those of a copy CRIU left stopped.
  app.kill("SIGSTOP");
  return outcome;
}

async function checkInputsTimed(
  context: LaunchContext,
  cache: UsableCache,
  entry: CacheEntry,
): Promise<string | undefined> {
  const startedAtMs = performance.now();
  const unfit = await checkInputs(entry, cache.hashes);
  // Inputs re-hashed after a touch cost the next launch a re-hash if this is lost.
  void cache.hashes.save();
  const inputs = entry.manifest.discovered.files.length;
  const ms = (performance.now() - startedAtMs).toFixed(1);
  context.step(
    "restoring",
    `${inputs} inputs ${unfit === undefined ? "unchanged" : "checked"} in ${ms} ms, during the restore`,
  );
  return unfit;
}

/** A restore whose inputs turned out changed: it never ran; the lookup goes on past it. */
async function discardRestored(
  context: LaunchContext,
  state: State<"restoring">,
  restored: RestoredApp,
  unfit: string,
  logPath: string,
): Promise<LaunchState> {
  // Stopped since CRIU made it: killing it ends a process that never ran a line again. A
  // client that connected to its listening sockets meanwhile is reset, where it would have
  // been refused had the lookup been done first; the cold start follows at once.
  await takeDown(restored);
  rmSync(logPath, { force: true });
  context.throwIfAborted();
  return lookPast(state, state.entry, unfit);
}

/** A restored copy that will not serve: killed, and what its restore held released. */
async function takeDown(restored: RestoredApp): Promise<void> {
  restored.app.kill("SIGKILL");
  await restored.app.exited;
  await restored.imagesReleased;
  await restored.imagesOwned.release();
  await restored.notify?.close();
}

function unfitOf(state: { readonly unfit?: UnfitEntries }): { unfit?: UnfitEntries } {
  return state.unfit ? { unfit: state.unfit } : {};
}

/** The lookup again, past an entry whose inputs changed (`unfit` says how). */
function lookPast(state: State<"looking-up" | "restoring">, entry: CacheEntry, unfit: string): LaunchState {
  const { session, cache } = state;
  const keys = new Set([...(state.unfit?.keys ?? []), entry.manifest.key]);
  return {
    step: "looking-up",
    session,
    cache,
    unfit: { keys, explanation: state.unfit?.explanation ?? unfit },
  };
}

/** resuming: a restore left stopped runs from here; the after-restore work follows. */
export function resumeRestoredApp(context: LaunchContext, state: State<"resuming">): LaunchState {
  context.step("resuming");
  const { session, cache, entry, restored } = state;
  restored.app.kill("SIGCONT");
  return { step: "checking-ready", session, cache, entry, restored };
}

/** checking-ready: the restored copy must be alone on its ports and pass its probes again. */
export async function checkRestoredApp(
  context: LaunchContext,
  state: State<"checking-ready">,
): Promise<LaunchState> {
  const { opts } = context;
  const { session, cache, entry, restored } = state;
  const { app } = restored;
  const stopWatching = stopOnAbort(opts.signal, app);
  context.step("checking-ready");
  // The runtime reseeds and runs the restore hooks; the app's event loop goes on only after
  // that, so a probe's request made meanwhile is answered by a reseeded copy or not at all
  // (serve hands its front's queued connections over only once this launch is serving; a
  // spare runs this at resume).
  const resuming = afterRestore(
    openControl(app, (message) => opts.emit({ type: "warning", message })),
    entry.manifest.runtime,
    app.pid,
    runtimeContextFor(opts, cache.key),
  );
  // Meanwhile (it waits on the app), who else holds the app's ports: a walk of /proc that
  // costs milliseconds, more on a busy host. The sockets are CRIU's, in place already.
  // Shared ports (serve) have holders by design; finding one's owner scans all of /proc.
  const portFailure =
    opts.portPolicy === "shared" ? undefined : (findForeignHolders(app.pid, opts.portPolicy) ?? undefined);
  // serve's front listens on the same ports and would answer a tcp or http probe itself.
  const probes = opts.isWarmOnly ? [] : recheckableProbes(opts.probes);
  const readying = portFailure ? Promise.resolve(undefined) : waitForReadiness(app, opts, probes, undefined);
  const resumed = await resuming;
  if (resumed.isReady && resumed.resumeMs !== undefined)
    context.step(
      "checking-ready",
      describeResume(resumed.resumeMs, resumed.reseedMs, restored.isReseeded ? "when restored" : "at resume"),
    );
  const failure: RestoreFailure | undefined = resumed.isReady
    ? portFailure
    : {
        fallback: {
          reason: resumed.reason,
          message: `${resumed.detail}; evicted the snapshot, starting cold`,
        },
        isEvicted: true,
      };
  // A copy that did not reseed is never served: stopped now, not after its probes.
  if (!resumed.isReady) app.kill("SIGKILL");
  const ready = await readying;
  if (ready?.ready && resumed.isReady)
    for (const hookFailure of resumed.failures)
      opts.emit({ type: "warning", message: `restore hook failed: ${hookFailure}` });
  // Removing the staged images blocks for 3-8 ms: after the re-check, and after whoever
  // awaits this launch has had its turn (afterThisTurn). A lazy restore's daemon reads them
  // until every page is in.
  void restored.imagesReleased.then(() => afterThisTurn(() => restored.imagesOwned.release()));
  stopWatching();
  if (failure || !ready?.ready) {
    app.kill("SIGKILL");
    await app.exited;
    await restored.notify?.close();
    context.throwIfAborted();
    return fallBackCold(
      context,
      session,
      cache,
      entry,
      failure ?? decideAfterRestoredNotReady(ready && !ready.ready ? ready.detail : ""),
    );
  }
  return serveRestored(context, session, cache, entry, restored);
}

/** Other processes listening where the restored app listens, as a restore failure. */
function findForeignHolders(pid: number, portPolicy: "exclusive" | "shared"): RestoreFailure | null {
  const ownInodes = readTreeSocketInodes(pid);
  const holders = findPortHolders(listListeningSockets(pid, ownInodes), { pid, ownInodes });
  return decideAfterRestoredPorts(holders, portPolicy);
}

function serveRestored(
  context: LaunchContext,
  session: Session,
  cache: UsableCache,
  entry: CacheEntry,
  restored: RestoredApp,
): LaunchState {
  const { opts } = context;
  const { app } = restored;
  const readyMs = context.elapsedMs();
  const bookkept = afterThisTurn(() => {
    try {
      rmSync(
        join(
          cache.logsDir,
          `restore-${entry.manifest.key.slice(0, 12)}-${basename(session.runtime.path)}.log`,
        ),
        { force: true },
      );
      recordHit(entry.dir, readyMs);
      keepKerndatCache(cache.dir, cache.criuPath);
    } catch (error) {
      // The app serves; a cache that cannot be written to is the next lookup's to find.
      opts.emit({
        type: "warning",
        message: `could not record the restore in the cache: ${(error as Error).message}`,
      });
    }
    return undefined;
  });
  opts.emit({
    type: "ready",
    mode: "warm",
    pid: app.pid,
    readyMs,
    key: cache.key,
    imageBytes: entry.manifest.imageBytes,
  });
  sayReady(restored.notify);
  context.step("serving");
  if (opts.isDetached && restored.lazyPagesPid !== undefined) {
    // The daemon outlives this launch and still reads the staged images: it owns them now.
    const daemon = ownerOf(restored.lazyPagesPid);
    if (daemon) {
      handOverRuntimeDir(session.runtime.path, daemon);
      session.runtimeOwned.disown();
      restored.imagesOwned.disown();
    }
  }
  scheduleHousekeeping(cache);
  void app.exited.then(() => context.resources.releaseAll());
  const launched = toLaunch(
    { mode: "warm", app, key: entry.manifest.key, readyMs, checkpoint: bookkept },
    {
      command: session.command.command,
      cache: "hit",
      fallbackReason: null,
      imageBytes: entry.manifest.imageBytes,
      baseKey: cache.key,
    },
  );
  return { step: "serving", launched };
}

function fallBackCold(
  context: LaunchContext,
  session: Session,
  cache: UsableCache,
  entry: CacheEntry,
  failure: RestoreFailure,
): LaunchState {
  if (failure.isEvicted) cache.store.evict(entry.manifest.key);
  context.warn(failure.fallback);
  // A snapshot that was kept needs no new one; one that was evicted does.
  return {
    step: "starting-cold",
    session,
    plan: { fallback: failure.fallback, cacheUse: "miss", isSnapshotWanted: failure.isEvicted },
  };
}

/**
 * A snapshot taken with a notify listener keeps its NOTIFY_SOCKET path. When this launch
 * listens too (a notify probe, or systemd above), the restore makes that path reach this
 * launch's socket (command-lines.ts), so the app's later messages (STATUS=, WATCHDOG=1)
 * arrive here.
 */
async function listenForRestoredNotify(
  context: LaunchContext,
  session: Session,
): Promise<NotifyListener | undefined> {
  if (!isNotifyWanted(context)) return undefined;
  try {
    return await listenForNotify(context, join(session.runtime.path, "notify.sock"));
  } catch {
    // Without python3 the restored app's messages go nowhere, as they did before: no reason
    // to give up the restore.
    return undefined;
  }
}

/** The NOTIFY_SOCKET the image holds, when it is one a restore can point elsewhere. */
function redirectableNotifySocket(cache: UsableCache, entry: CacheEntry): string | undefined {
  const oldPath = entry.manifest.notifySocket;
  return oldPath && dirname(oldPath) === notifySocketDir(cache.dir) ? oldPath : undefined;
}

/** A cold start the lookup chose, said once when it is a finding rather than a failure. */
function reportColdDecision(
  context: LaunchContext,
  decision: Extract<LookupDecision, { action: "start-cold" }>,
  cacheDir: string,
): void {
  if (decision.detail) context.step("looking-up", decision.detail);
  const { fallback } = decision;
  if (!fallback) return;
  const isRepeatedNotice =
    fallback.reason === "warm-not-faster" && decision.ruleEntryDir === readNoticedEntry(cacheDir);
  // The rule's notice is said once per entry (then only with -v): a finding, not a failure.
  if (isRepeatedNotice) {
    context.step("looking-up", fallback.message);
    return;
  }
  context.warn(fallback);
  if (fallback.reason === "warm-not-faster" && decision.ruleEntryDir)
    writeNoticedEntry(cacheDir, decision.ruleEntryDir);
}

// The last entry whose "not faster" notice was shown, so the warning is not repeated.
function readNoticedEntry(cacheDir: string): string | undefined {
  try {
    return readFileSync(join(cacheDir, "warm-not-faster-noticed"), "utf8");
  } catch {
    return undefined;
  }
}

function writeNoticedEntry(cacheDir: string, entryDir: string): void {
  try {
    writeFileSync(join(cacheDir, "warm-not-faster-noticed"), entryDir, { mode: 0o600 });
  } catch {
    // Only costs a repeated notice.
  }
}

/**
 * Runs `work` once the current turn of the event loop is over: the promise chain of whoever
 * awaits this launch goes first (serve's hand-over of its queued connections waited 3-8 ms
 * for the staged images' removal and the cache's bookkeeping). Settles when `work` has.
 */
function afterThisTurn<T>(work: () => T | Promise<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    setImmediate(() => {
      Promise.resolve().then(work).then(resolve, reject);
    });
  });
}
