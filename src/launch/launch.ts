import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openCacheDir } from "../cache/cache-dir.js";
import { fastestWarmReadyMs, isWarmNotFaster, readStats, recordHit } from "../cache/entry-stats.js";
import { EntryStore, type LookupOutcome, type Manifest } from "../cache/entry-store.js";
import { FileHashIndex } from "../cache/file-hash.js";
import { type CacheKeyFields, computeCacheKey, IMAGE_FORMAT_VERSION } from "../cache/key.js";
import { collectKeyFields } from "../cache/key-fields.js";
import { summarizeCriuErrors } from "../criu/criu-log.js";
import { type FindCriuOutcome, findCriu } from "../criu/find-criu.js";
import { WarmstartError } from "../errors.js";
import { createNotifyListener, type NotifyListener } from "../readiness/notify.js";
import type { LaunchRemote } from "../remote/launch-remote.js";
import { type CheckpointOutcome, checkpointApp } from "./checkpoint.js";
import { startCold } from "./cold-start.js";
import type { FallbackReason, LaunchStep } from "./launch-events.js";
import { type Launch, type LaunchReport, toLaunch } from "./launch-handle.js";
import {
  LAZY_MIN_IMAGE_BYTES,
  type LaunchOptions,
  type ResolvedOptions,
  resolveLaunchOptions,
} from "./launch-options.js";
import { enterNetworkOf } from "./private-network.js";
import { findPortsNotHeldByApp } from "./probe-ports.js";
import { resolveCommand } from "./resolve-command.js";
import { recheckableProbes, waitForReadiness } from "./wait-for-readiness.js";
import { startWarm } from "./warm-start.js";

export type { Launch, LaunchReport } from "./launch-handle.js";
export { LAZY_MIN_IMAGE_BYTES, type LaunchOptions, resolveLaunchOptions } from "./launch-options.js";

/**
 * Launches the app: restores its snapshot when a valid one exists, otherwise starts it cold,
 * waits until it is ready and checkpoints it for next time. Resolves once the app is ready;
 * throws a WarmstartError when the app itself cannot become ready (it would not have
 * started without warmstart either). warmstart's own failures never stop the app.
 */
export async function launch(options: LaunchOptions): Promise<Launch> {
  const opts = resolveLaunchOptions(options);
  const elapsedMs = () => Math.round(performance.now() - opts.startedAtMs);
  const step = (name: LaunchStep, detail?: string) =>
    opts.emit({ type: "step", step: name, atMs: elapsedMs(), ...(detail ? { detail } : {}) });
  // An object, not a variable: it is set from closures, which the compiler's narrowing misses.
  const state: { fallbackReason: FallbackReason | null } = { fallbackReason: null };
  const fallback = (reason: FallbackReason, message: string) => {
    state.fallbackReason = reason;
    opts.emit({ type: "fallback", reason, message });
  };

  step("resolving");
  const resolved = resolveCommand(opts.command, opts.cwd, opts.env);
  const cacheDir = openCacheDir(opts.cacheDir);
  const hashes = cacheDir.usable ? new FileHashIndex(cacheDir.dir) : undefined;
  const criuFound = await findCriu(opts.env, hashes);
  let criuPath: string | undefined;
  if (criuFound.found) criuPath = criuFound.criu.path;
  else if (criuFound.reason === "missing") {
    fallback(
      "criu-missing",
      "CRIU was not found, starting without snapshots (run: sudo scripts/install-criu.sh)",
    );
  } else {
    const what =
      criuFound.reason === "too-old" ? `is version ${criuFound.version.text}` : "does not report a version";
    fallback(
      "criu-unusable",
      `${criuFound.path} ${what}, warmstart needs CRIU >= 4.2 (run: sudo scripts/install-criu.sh)`,
    );
  }
  if (!cacheDir.usable)
    fallback("cache-dir-refused", `cache directory refused: ${cacheDir.reason}; starting without snapshots`);

  let key: string | null = null;
  let fields: CacheKeyFields | undefined;
  let store: EntryStore | undefined;
  if (criuFound.found && cacheDir.usable && hashes) {
    try {
      fields = await collectKeyFields(
        {
          executable: resolved.executable,
          args: resolved.args,
          cwd: opts.cwd,
          env: opts.env,
          envIgnore: opts.envIgnore,
          inputPatterns: opts.inputs,
          criuVersion: criuFound.criu.version.text,
          ...(opts.fleet?.fleetSecret ? { envSecret: opts.fleet.fleetSecret } : {}),
        },
        cacheDir.dir,
        hashes,
      );
      hashes.save();
      key = computeCacheKey(fields);
      store = new EntryStore(cacheDir.dir);
    } catch (error) {
      fallback(
        "cache-dir-refused",
        `cannot compute the cache key: ${(error as Error).message}; starting without snapshots`,
      );
    }
  }
  const logsDir = join(opts.cacheDir, "logs");
  // This launch's private files (restore staging, notify socket); removed when done. Never
  // inside a cache directory that was refused: others may be able to write there.
  const runtimeDir = cacheDir.usable
    ? join(opts.cacheDir, "run", String(process.pid))
    : mkdtempSync(join(tmpdir(), "warmstart-run-"));
  const isCacheUsable = criuPath !== undefined && store !== undefined && key !== null;
  let cache: LaunchReport["cache"] = isCacheUsable ? "miss" : "unavailable";

  // Warm path.
  if (isCacheUsable && store && key && criuPath && !opts.isCold && !opts.isRefresh) {
    step("looking-up", key.slice(0, 12));
    let found: LookupOutcome = await store.lookup(key);
    const remote = remoteOf(opts, cacheDir.dir, store, criuFound);
    if (!found.hit && found.reason === "missing" && fields && remote) {
      // Loaded only with a remote: tar, zstd and the registry client stay off the warm path.
      const { pullForLaunch } = await import("../remote/launch-remote.js");
      const pulled = await pullForLaunch(fields, remote);
      if (pulled.pulled) step("looking-up", `pulled ${pulled.tag} from ${remote.settings.remote?.registry}`);
      else if (pulled.reason !== "not-found")
        opts.emit({
          type: "warning",
          message: `remote cache: ${pulled.reason}: ${pulled.detail}; starting cold`,
        });
      if (pulled.pulled) found = await store.lookup(key);
    }
    const stats = found.hit ? readStats(found.entry.dir) : undefined;
    if (found.hit && isWarmNotFaster(stats)) {
      state.fallbackReason = "warm-not-faster";
      // The rule's own figure: the fastest warm launch, not the last one.
      const message = `a warm start of this app was not faster (fastest warm ${fastestWarmReadyMs(stats)} ms, cold ${stats?.coldReadyMs} ms): starting it cold; --refresh measures again`;
      // Said once per entry (then only with -v): it is a finding, not a failure.
      if (found.entry.dir !== readNoticedEntry(opts.cacheDir)) {
        opts.emit({ type: "fallback", reason: "warm-not-faster", message });
        writeNoticedEntry(opts.cacheDir, found.entry.dir);
      } else {
        step("looking-up", message);
      }
    } else if (found.hit) {
      step("restoring");
      mkdirSync(logsDir, { recursive: true, mode: 0o700 });
      const logPath = join(logsDir, `restore-${key.slice(0, 12)}-${process.pid}.log`);
      const warm = await startWarm({
        criuPath,
        entry: found.entry,
        workDir: runtimeDir,
        logPath,
        sinks: opts.sinks,
        isDetached: opts.isDetached,
        isLazy: opts.isLazy ?? found.entry.manifest.imageBytes >= LAZY_MIN_IMAGE_BYTES,
      });
      const releaseImages = () => rmSync(runtimeDir, { recursive: true, force: true });
      if (warm.restored) {
        // Aborted while CRIU was restoring (or later, while re-checking readiness): the
        // restored app gets the signal like a cold-started one would.
        const app = warm.app;
        const stopOnAbort = () => app.kill(toSignal(opts.signal?.reason));
        if (opts.signal?.aborted) stopOnAbort();
        else opts.signal?.addEventListener("abort", stopOnAbort, { once: true });
        step("checking-ready");
        const ready = await waitForReadiness(warm.app, opts, recheckableProbes(opts.probes), undefined);
        // Removing the staged images blocks for ~5 ms: after the re-check, not before it. A
        // lazy restore's daemon reads them until every page is in.
        void warm.imagesReleased.then(releaseImages);
        opts.signal?.removeEventListener("abort", stopOnAbort);
        if (!ready.ready && ready.reason === "app-exited" && opts.signal?.aborted) {
          throw new WarmstartError("app-exited", "The app was stopped before it was ready.", {
            details: { exitCode: (await app.exited).exitCode },
          });
        }
        if (ready.ready) {
          rmSync(logPath, { force: true });
          const readyMs = elapsedMs();
          recordHit(found.entry.dir, readyMs);
          opts.emit({ type: "ready", mode: "warm", pid: warm.app.pid, readyMs });
          step("serving");
          return toLaunch(
            { mode: "warm", app: warm.app, key, readyMs, checkpoint: Promise.resolve(undefined) },
            {
              command: resolved.command,
              cache: "hit",
              fallbackReason: null,
              imageBytes: found.entry.manifest.imageBytes,
            },
          );
        }
        warm.app.kill("SIGKILL");
        await warm.app.exited;
        fallback(
          "restored-not-ready",
          `the restored app did not pass ${ready.detail} after restore; evicted the snapshot, starting cold`,
        );
        store.evict(key);
      } else {
        releaseImages();
        if (isPortConflict(warm.errors)) {
          // The snapshot is fine; the port is not free. Keep it for when it is.
          fallback(
            "restore-failed",
            `restore failed: a port the app listens on is taken by another process (a restored app needs its listening ports free); kept the snapshot, starting cold (CRIU log: ${warm.logPath})`,
          );
        } else {
          fallback("restore-failed", describeRestoreFailure(warm.errors, warm.logPath));
          store.evict(key);
        }
      }
    } else if (found.reason === "missing" && fields) {
      step("looking-up", `miss: ${store.explainMiss(fields)}`);
    } else if (found.reason === "refused") {
      // Never delete what we do not own: a refused entry stays for the user to inspect.
      fallback("entry-refused", `cache entry refused: ${found.detail}; starting cold without a snapshot`);
    } else if (found.reason === "corrupt") {
      fallback("entry-corrupt", `cache entry is damaged: ${found.detail}; evicted it, starting cold`);
      store.evict(key);
    }
  } else if (isCacheUsable) {
    cache = "bypassed";
  }
  if (state.fallbackReason === "entry-refused") cache = "unavailable";
  // The entry is valid, just not worth restoring: keep it, do not dump again.
  const isSnapshotWanted =
    !opts.isSnapshotDisabled &&
    state.fallbackReason !== "entry-refused" &&
    state.fallbackReason !== "warm-not-faster";

  // Cold path.
  step("starting-cold");
  const needsNotify = opts.probes.some((probe) => probe.kind === "notify");
  let notify: NotifyListener | undefined;
  const env = { ...opts.env };
  if (needsNotify) {
    mkdirSync(runtimeDir, { recursive: true, mode: 0o700 });
    notify = await createNotifyListener(runtimeDir);
    env.NOTIFY_SOCKET = notify.path;
  }
  const app = await startCold({
    executable: resolved.executable,
    args: resolved.args,
    cwd: opts.cwd,
    env,
    sinks: opts.sinks,
    isDetached: opts.isDetached,
    isNetworkIsolated: opts.isNetworkIsolated,
  });
  const stopOnAbort = () => app.kill(toSignal(opts.signal?.reason));
  opts.signal?.addEventListener("abort", stopOnAbort, { once: true });
  step("waiting-ready", `pid ${app.pid}`);
  const ready = await waitForReadiness(app, opts, opts.probes, notify);
  if (!ready.ready) {
    await notify?.close();
    rmSync(runtimeDir, { recursive: true, force: true });
    if (ready.reason === "app-exited") {
      const exit = await app.exited;
      const lastLines = [...app.stdout.recent, ...app.stderr.recent].slice(-10);
      throw new WarmstartError(
        "app-exited",
        `The app exited with code ${exit.exitCode} before it was ready.`,
        {
          hint:
            lastLines.length > 0
              ? `its last output lines:\n${lastLines.map((l) => `    ${l}`).join("\n")}`
              : undefined,
          details: { exitCode: exit.exitCode, lastLines },
        },
      );
    }
    app.kill("SIGKILL");
    await app.exited;
    throw new WarmstartError(
      "readiness-timeout",
      `The app was not ready after ${opts.readyTimeoutMs / 1000} s: ${ready.detail} never passed. It was stopped; no snapshot was taken.`,
      {
        hint: "check the probe (port, URL, log pattern) or raise --ready-timeout",
        details: { pending: ready.detail },
      },
    );
  }
  opts.signal?.removeEventListener("abort", stopOnAbort);
  const readyMs = elapsedMs();
  opts.emit({ type: "ready", mode: "cold", pid: app.pid, readyMs });
  step("serving");

  const foreignPorts = findPortsNotHeldByApp(app.pid, opts.probes);
  if (foreignPorts.length > 0) {
    opts.emit({
      type: "warning",
      message: `port ${foreignPorts.join(", ")} answered the readiness probe, but the app does not listen on it: another process holds it, so the app may not be ready; no snapshot taken`,
    });
  }
  let checkpoint: Promise<CheckpointOutcome | undefined> = Promise.resolve(undefined);
  if (isCacheUsable && store && key && fields && criuPath && isSnapshotWanted && foreignPorts.length === 0) {
    const entryStore = store;
    const snapshotKey = key;
    const snapshotFields = fields;
    const criu = criuPath;
    step("checkpointing");
    checkpoint = (async () => {
      // A readiness probe's notify helper must not be in the image's world; close it first.
      await notify?.close();
      entryStore.removeAbandoned();
      if (opts.isRefresh) entryStore.evict(snapshotKey);
      const outcome = await checkpointApp({
        criuPath: criu,
        criuPrefix: opts.isNetworkIsolated ? enterNetworkOf(app.pid) : [],
        store: entryStore,
        logsDir,
        pid: app.pid,
        manifest: {
          formatVersion: IMAGE_FORMAT_VERSION,
          key: snapshotKey,
          fields: snapshotFields,
          command: resolved.command,
          coldReadyMs: readyMs,
        },
      });
      opts.emit({ type: "checkpoint", outcome });
      if (outcome.saved) await trimCache(entryStore, outcome.entry.manifest, opts.maxCacheBytes);
      const remote = remoteOf(opts, opts.cacheDir, entryStore, criuFound);
      if (outcome.saved && remote?.settings.isPushEnabled) {
        const { pushForLaunch } = await import("../remote/launch-remote.js");
        const pushed = await pushForLaunch(outcome.entry, remote);
        if (!pushed.pushed && pushed.reason !== "already-present") {
          opts.emit({
            type: "warning",
            message: `remote cache: push failed: ${pushed.reason}: ${pushed.detail}`,
          });
        }
      }
      return outcome;
    })();
  } else {
    checkpoint = notify ? notify.close().then(() => undefined) : checkpoint;
  }
  void checkpoint.finally(() => rmSync(runtimeDir, { recursive: true, force: true }));
  return toLaunch(
    { mode: "cold", app, key, readyMs, checkpoint },
    {
      command: resolved.command,
      cache,
      fallbackReason: state.fallbackReason,
      imageBytes: null,
    },
  );
}

/** The remote cache of this launch, when one is configured and CRIU works. */
function remoteOf(
  opts: ResolvedOptions,
  cacheDir: string,
  store: EntryStore,
  criuFound: FindCriuOutcome,
): LaunchRemote | undefined {
  if (!opts.fleet?.remote || !criuFound.found) return undefined;
  const criu = { path: criuFound.criu.path, version: criuFound.criu.version.text };
  return { settings: opts.fleet, cacheDir, store, criu, env: opts.env };
}

/** After a new entry lands: older versions of the same launch go, then the size cap holds.
 * Housekeeping must never fail a launch. Loaded here, not up front: lru-cache alone costs
 * ~14 ms to import, which a warm launch would pay for nothing. */
async function trimCache(store: EntryStore, manifest: Manifest, maxBytes: number | undefined): Promise<void> {
  try {
    const { dropOlderEntriesOfCommand, enforceCacheLimit } = await import("../cache/eviction.js");
    dropOlderEntriesOfCommand(store, manifest);
    enforceCacheLimit(store, { keep: manifest.key, ...(maxBytes !== undefined ? { maxBytes } : {}) });
  } catch {
    // A full or unreadable filesystem: the next commit tries again.
  }
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

function toSignal(reason: unknown): NodeJS.Signals {
  return typeof reason === "string" && reason.startsWith("SIG") ? (reason as NodeJS.Signals) : "SIGTERM";
}

function isPortConflict(errors: readonly string[]): boolean {
  return errors.some((line) => /Address already in use|EADDRINUSE/.test(line));
}

function describeRestoreFailure(errors: readonly string[], logPath: string): string {
  return `restore failed: ${summarizeCriuErrors(errors)}; evicted the snapshot, starting cold (CRIU log: ${logPath})`;
}
