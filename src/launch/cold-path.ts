import { statSync } from "node:fs";
import { recordRuleColdLaunch } from "../cache/entry-stats.js";
import type { Manifest } from "../cache/entry-store.js";
import { evictEntriesOf } from "../cache/find-entry.js";
import { scheduleHousekeeping } from "../cache/housekeeping.js";
import { IMAGE_FORMAT_VERSION } from "../cache/key.js";
import { readStartFixes, saveStartFixes } from "../cache/start-fixes.js";
import { keepKerndatCache } from "../criu/kerndat-cache.js";
import { WarmstartError } from "../errors.js";
import { inNetworkOf } from "../exec/command-lines.js";
import { sealRecording } from "../inputs/record-inputs.js";
import type { InputRecorder } from "../inputs/recorder.js";
import type { NotifyListener } from "../readiness/notify.js";
import type { ProbeSpec } from "../readiness/probe-spec.js";
import { openControl, prepareColdStart, runtimeContextFor } from "../runtime/app-runtime.js";
import type { AppProcess } from "./app-process.js";
import { type CheckpointOutcome, checkpointApp } from "./checkpoint.js";
import { startCold } from "./cold-start.js";
import { decideCheckpoint } from "./decisions.js";
import type { ColdPlan, LaunchContext, LaunchState, Session, UsableCache } from "./launch-context.js";
import { toLaunch } from "./launch-handle.js";
import { isNotifyWanted, listenForNotify, sayReady, upstreamOf } from "./notify-relay.js";
import { inspectBeforeDump } from "./preflight-step.js";
import { findPortsNotHeldByApp } from "./probe-ports.js";
import { pushAfterSave } from "./remote-steps.js";
import { stopOnAbort } from "./stop-on-abort.js";
import { waitForReadiness } from "./wait-for-readiness.js";

type State<S extends LaunchState["step"]> = Extract<LaunchState, { step: S }>;

/** starting-cold: the app starts as it would without warmstart, under warmstart's pipes. */
export async function startColdApp(
  context: LaunchContext,
  state: State<"starting-cold">,
): Promise<LaunchState> {
  const { opts } = context;
  const { session, plan } = state;
  context.throwIfAborted();
  context.step("starting-cold");
  const env = { ...opts.env };
  const notify = isNotifyWanted(context)
    ? await listenForNotify(context, session.runtime.notifySocket)
    : undefined;
  if (notify) env.NOTIFY_SOCKET = notify.path;
  const probes = opts.probes.map(noteExistingFile);
  // Pre-flight's fixes, the runtime and the recorder go in only when this launch may be
  // snapshotted; the key was computed before.
  const cache = plan.isSnapshotWanted && !opts.isSnapshotDisabled ? session.cache : undefined;
  if (cache) applyStartFixes(context, cache, env);
  const injected = cache
    ? await prepareColdStart({ env, cacheDir: cache.dir, hashes: cache.hashes, options: opts.runtime })
    : undefined;
  if (injected?.warning) opts.emit({ type: "warning", message: injected.warning });
  // Watches what the app reads as it starts, for the snapshot's validity (src/inputs/).
  const recorder = cache ? (await import("../inputs/recorder.js")).startRecorder(opts.env) : undefined;
  if (recorder) context.resources.own("input recorder", () => recorder.close());
  const app = await startCold({
    executable: session.command.executable,
    args: session.command.args,
    cwd: opts.cwd,
    env: injected?.env ?? env,
    sinks: opts.sinks,
    isDetached: opts.isDetached,
    isNetworkIsolated: opts.isNetworkIsolated,
    hasControl: injected?.isInjected === true,
    ...(recorder?.isGated
      ? { gate: (pid: number, isPrivate: boolean) => recorder.attach(pid, isPrivate) }
      : {}),
  });
  openControl(app, (message) => opts.emit({ type: "warning", message }));
  return { step: "waiting-ready", session, plan: state.plan, app, notify, recorder, probes };
}

/** waiting-ready: until every probe passes; then serving, and the checkpoint beside it. */
export async function waitForColdApp(
  context: LaunchContext,
  state: State<"waiting-ready">,
): Promise<LaunchState> {
  const { opts } = context;
  const { session, plan, app, notify, recorder } = state;
  const stopWatching = stopOnAbort(opts.signal, app);
  context.step("waiting-ready", `pid ${app.pid}`);
  const ready = await waitForReadiness(app, opts, state.probes, notify);
  stopWatching();
  if (!ready.ready) {
    if (ready.reason === "app-exited") {
      context.throwIfAborted();
      throw await appExitedError(app);
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
  const readyMs = context.elapsedMs();
  opts.emit({
    type: "ready",
    mode: "cold",
    pid: app.pid,
    readyMs,
    key: session.cache?.key ?? null,
    imageBytes: null,
  });
  sayReady(notify);
  context.step("serving");
  if (plan.ruleEntryDir) recordRuleColdLaunch(plan.ruleEntryDir, readyMs);
  const checkpointStop = new AbortController();
  const checkpoint = takeSnapshotIfWanted(
    context,
    session,
    plan,
    app,
    notify,
    recorder,
    readyMs,
    checkpointStop.signal,
  );
  if (session.cache) scheduleHousekeeping(session.cache);
  // Beside the dump (the app serves already), so that the first restore of this snapshot, often
  // the very next launch, skips CRIU's kernel probe: made after the dump, a launch stopped as
  // soon as its snapshot is saved cut it short.
  if (session.cache) keepKerndatCache(session.cache.dir, session.cache.criuPath);
  void Promise.all([app.exited, checkpoint]).then(() => context.resources.releaseAll());
  const launched = toLaunch(
    {
      mode: "cold",
      app,
      key: session.cache?.key ?? null,
      readyMs,
      checkpoint,
      onKill: () => checkpointStop.abort(),
    },
    {
      command: session.command.command,
      cache: plan.cacheUse,
      fallbackReason: plan.fallback?.reason ?? null,
      imageBytes: null,
      baseKey: session.cache?.key ?? null,
    },
  );
  return { step: "serving", launched };
}

/** The checkpoint, when the decision says so. Never rejects: every failure is an outcome. */
function takeSnapshotIfWanted(
  context: LaunchContext,
  session: Session,
  plan: ColdPlan,
  app: AppProcess,
  notify: NotifyListener | undefined,
  recorder: InputRecorder | undefined,
  readyMs: number,
  signal: AbortSignal,
): Promise<CheckpointOutcome | undefined> {
  const { opts } = context;
  const decision = decideCheckpoint({
    isCacheUsable: session.cache !== undefined,
    isSnapshotWanted: plan.isSnapshotWanted,
    isSnapshotDisabled: opts.isSnapshotDisabled,
    foreignPorts: findPortsNotHeldByApp(app.pid, opts.probes),
    isAborted: opts.signal?.aborted ?? false,
  });
  if (decision.warning) opts.emit({ type: "warning", message: decision.warning });
  const { cache } = session;
  // Without a relay to keep (no systemd above), the helper's work ended with readiness.
  const relayAfterwards = () => (notify && !upstreamOf(context) ? notify.close() : Promise.resolve());
  if (!decision.isTaken || !cache || !recorder) {
    recorder?.close();
    return relayAfterwards().then(() => undefined);
  }
  return takeSnapshot(context, session, cache, app, notify, recorder, readyMs, signal).then(
    async (outcome) => {
      // The helper was closed for the dump; under systemd the app's messages go on through a
      // new one at the same path (the one its NOTIFY_SOCKET names).
      if (notify && upstreamOf(context) && !app.hasExited()) await listenForNotify(context, notify.path);
      return outcome;
    },
  );
}

async function takeSnapshot(
  context: LaunchContext,
  session: Session,
  cache: UsableCache,
  app: AppProcess,
  notify: NotifyListener | undefined,
  recorder: InputRecorder,
  readyMs: number,
  signal: AbortSignal,
): Promise<CheckpointOutcome | undefined> {
  const { opts } = context;
  context.step("checkpointing");
  // The recording ends here: what the app read while it started, and the entry it names.
  const control = openControl(app, (message) => opts.emit({ type: "warning", message }));
  const sealed = await sealRecording(
    recorder,
    app.pid,
    session.command,
    cache.key,
    cache.fields,
    cache.hashes,
    {
      absentPaths: control?.absentPaths ?? [],
      cacheDir: cache.dir,
      runtimeDir: session.runtime.path,
      inputIgnore: opts.inputIgnore,
      cwd: opts.cwd,
    },
  );
  context.step("checkpointing", sealed.summary);
  if (!sealed.isComplete) {
    await notify?.close();
    opts.emit({ type: "warning", message: `no snapshot taken: ${sealed.reason}` });
    return undefined;
  }
  const manifest = {
    formatVersion: IMAGE_FORMAT_VERSION,
    key: sealed.entryKey,
    baseKey: cache.key,
    fields: cache.fields,
    discovered: sealed.discovered,
    command: session.command.command,
    coldReadyMs: readyMs,
    ...(notify ? { notifySocket: notify.path } : {}),
  };
  let outcome: CheckpointOutcome;
  try {
    // A readiness probe's notify helper must not be in the image's world; close it first.
    await notify?.close();
    outcome = await checkpointApp({
      criuPath: cache.criuPath,
      isMountPrivate: recorder.isGated,
      isNetworkIsolated: opts.isNetworkIsolated,
      isDetached: opts.isDetached,
      store: cache.store,
      logsDir: cache.logsDir,
      pid: app.pid,
      isReplacing: opts.isRefresh,
      signal,
      manifest,
      onCommitting: () => context.step("committing"),
      inspect: (pid) => inspectBeforeDump(context, pid),
      runtime: {
        channel: control,
        context: runtimeContextFor(
          opts,
          cache.key,
          opts.isNetworkIsolated ? (command) => inNetworkOf(app.pid, command) : undefined,
        ),
      },
    });
  } catch (error) {
    outcome = { saved: false, reason: "commit-failed", errors: [(error as Error).message], checkpointMs: 0 };
  }
  opts.emit({ type: "checkpoint", outcome, atMs: context.elapsedMs() });
  await settleCheckpoint(context, cache, outcome);
  return outcome;
}

/** What follows a checkpoint: a saved entry replaces and trims older ones and travels; a
 * failed dump that pre-flight can fix leaves the fix for the next cold start. */
async function settleCheckpoint(
  context: LaunchContext,
  cache: UsableCache,
  outcome: CheckpointOutcome,
): Promise<void> {
  const { opts } = context;
  if (!outcome.saved) {
    if (outcome.reason === "dump-failed" && outcome.fixEnv)
      keepStartFixes(context, cache, outcome.fixEnv, outcome.explanation ?? "the last dump failed");
    return;
  }
  // --refresh replaces every entry of the base key, whatever inputs they were made from,
  // once its own is in: a refresh that dies mid-dump leaves the old ones restorable.
  if (opts.isRefresh) evictEntriesOf(cache.store, cache.key, outcome.entry.manifest.key);
  await trimCache(cache, outcome.entry.manifest, opts.maxCacheBytes);
  await pushAfterSave(context, cache, outcome.entry);
}

/**
 * A fix pre-flight found for the last failed dump of this command (src/cache/start-fixes.ts),
 * set on this cold start, said on stderr. A variable the user set is theirs: it is left, and
 * the line says it is why the snapshot fails.
 */
function applyStartFixes(context: LaunchContext, cache: UsableCache, env: NodeJS.ProcessEnv): void {
  const fixes = readStartFixes(cache.dir, cache.key);
  if (!fixes) return;
  for (const [name, value] of Object.entries(fixes.env)) {
    const message =
      env[name] === undefined
        ? `pre-flight fix: ${name}=${value} for this cold start (the last dump failed: ${fixes.reason})`
        : `${name}=${env[name]} is set; the last dump failed because of it (${fixes.reason}): set ${name}=${value} or unset it to get a snapshot`;
    if (env[name] === undefined) env[name] = value;
    context.opts.emit({ type: "warning", message });
  }
}

function keepStartFixes(
  context: LaunchContext,
  cache: UsableCache,
  env: Readonly<Record<string, string>>,
  reason: string,
): void {
  try {
    saveStartFixes(cache.dir, cache.key, { env, reason });
  } catch {
    return;
  }
  const assignments = Object.entries(env).map(([name, value]) => `${name}=${value}`);
  context.opts.emit({
    type: "warning",
    message: `the next cold start of this command sets ${assignments.join(" ")}, which avoids that failure`,
  });
}

/** After a new entry lands: older versions of the same launch go, then the size cap holds.
 * Housekeeping must never fail a launch. Loaded here, not up front: lru-cache alone costs
 * ~14 ms to import, which a warm launch would pay for nothing. */
async function trimCache(
  cache: UsableCache,
  manifest: Manifest,
  maxBytes: number | undefined,
): Promise<void> {
  try {
    const { dropOlderEntriesOfCommand, enforceCacheLimit } = await import("../cache/eviction.js");
    dropOlderEntriesOfCommand(cache.store, manifest);
    enforceCacheLimit(cache.store, { keep: manifest.key, ...(maxBytes !== undefined ? { maxBytes } : {}) });
  } catch {
    // A full or unreadable filesystem: the next commit tries again.
  }
}

/**
 * An app that died before it was ready: its exit code (0 included). Its output was streamed
 * as it came (a traceback is already on the terminal): the message does not repeat it; the
 * last lines are in the details, for library callers and --json.
 */
async function appExitedError(app: AppProcess): Promise<WarmstartError> {
  const exit = await app.exited;
  const lastLines = [...app.stdout.recent, ...app.stderr.recent].slice(-10);
  return new WarmstartError("app-exited", `The app exited with code ${exit.exitCode} before it was ready.`, {
    details: { exitCode: exit.exitCode, lastLines },
  });
}

/** A file: probe's flag that exists before the app starts is left over from an earlier run:
 * it counts only once the app creates it again (a new inode, or a new modification time). */
function noteExistingFile(probe: ProbeSpec): ProbeSpec {
  if (probe.kind !== "file") return probe;
  try {
    const stat = statSync(probe.path);
    return { ...probe, existedAs: { ino: stat.ino, mtimeMs: stat.mtimeMs } };
  } catch {
    return probe;
  }
}
