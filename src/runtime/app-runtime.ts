/**
 * The launcher's side of the in-app runtime, in the order a launch meets it:
 *
 *   prepareColdStart ─► (spawn with control pipes) ─► openControl
 *       ─► beforeCheckpoint ─► (criu dump) ─► afterCheckpoint
 *   (restore with the pipes handed back) ─► openControl ─► afterRestore ─► (readiness re-check)
 *
 * Expected outcomes are values; nothing here throws for a hook that fails or a runtime that
 * does not answer.
 */
import { readFileSync } from "node:fs";
import type { FileHashIndex } from "../cache/file-hash.js";
import type { CommandLine } from "../exec/command-lines.js";
import type { AppProcess, OutputSinks } from "../launch/app-process.js";
import type { ResolvedOptions } from "../launch/launch-options.js";
import { ControlChannel, readControlPipes } from "./control-channel.js";
import { describeHook, type HookEvent, runExternalHook } from "./external-hooks.js";
import {
  CHECKPOINT_SIGNAL,
  CONTROL_ENV,
  CONTROL_FDS,
  EARLY_RESEED_PROTOCOL,
  HOOK_TIMEOUT_ENV,
  PROTOCOL_VERSION,
  type ResumeReport,
} from "./protocol.js";
import { installRuntime } from "./runtime-files.js";
import type { RuntimeManifest } from "./runtime-manifest.js";
import type { ResolvedRuntimeOptions } from "./runtime-options.js";

export { ControlChannel } from "./control-channel.js";

/** The hooks' context for one launch's options and key (inAppNetwork: for a prewarm). */
export function runtimeContextFor(
  opts: Pick<ResolvedOptions, "runtime" | "cwd" | "env" | "sinks" | "emit">,
  key: string,
  inAppNetwork?: (command: CommandLine) => CommandLine,
): RuntimeContext {
  return {
    options: opts.runtime,
    key,
    cwd: opts.cwd,
    env: opts.env,
    sinks: opts.sinks,
    warn: (message) => opts.emit({ type: "warning", message }),
    inAppNetwork,
  };
}

/** What the hooks need to know of the launch. */
export interface RuntimeContext {
  readonly options: ResolvedRuntimeOptions;
  readonly key: string;
  readonly cwd: string;
  readonly env: NodeJS.ProcessEnv;
  readonly sinks: OutputSinks;
  /** Something the user should know that changes nothing (a restore hook failed in the original). */
  readonly warn: (message: string) => void;
  /** For a prewarm: hooks run inside the app's network namespace. */
  readonly inAppNetwork: ((command: CommandLine) => CommandLine) | undefined;
}

export interface ColdStartPreparation {
  /** The app's environment. */
  readonly env: NodeJS.ProcessEnv;
  /** The runtime is injected: the app must get the control pipes. */
  readonly isInjected: boolean;
  /** Why it could not be, for a warning. */
  readonly warning?: string;
}

/**
 * The app's environment for a cold start that will be snapshotted: NODE_OPTIONS and
 * JAVA_TOOL_OPTIONS load the runtime (prepended: the user's own options come after and win
 * where they overlap), WARMSTART_CONTROL names the control pipes. The cache key was computed
 * from the environment before this.
 */
export async function prepareColdStart(input: {
  readonly env: NodeJS.ProcessEnv;
  readonly cacheDir: string;
  readonly hashes: FileHashIndex;
  readonly options: ResolvedRuntimeOptions;
}): Promise<ColdStartPreparation> {
  if (!input.options.isEnabled) return { isInjected: false, env: input.env };
  const installed = await installRuntime(input.cacheDir, input.hashes);
  if (!installed.installed) {
    return {
      isInjected: false,
      env: input.env,
      warning: `warmstart's in-app runtime is not available (${installed.reason}): restored copies of this app will share its random state`,
    };
  }
  const { runtime } = installed;
  const env: NodeJS.ProcessEnv = {
    ...input.env,
    NODE_OPTIONS: [`--require ${quoteNodeOption(runtime.nodeRequire)}`, input.env.NODE_OPTIONS]
      .filter(Boolean)
      .join(" "),
    [CONTROL_ENV]: `${PROTOCOL_VERSION}:${CONTROL_FDS.down}:${CONTROL_FDS.up}`,
    [HOOK_TIMEOUT_ENV]: String(input.options.hookTimeoutMs),
  };
  // The JVM splits JAVA_TOOL_OPTIONS on spaces: a path with one cannot be given.
  if (runtime.javaAgent && !/\s/.test(runtime.javaAgent)) {
    env.JAVA_TOOL_OPTIONS = [`-javaagent:${runtime.javaAgent}`, input.env.JAVA_TOOL_OPTIONS]
      .filter(Boolean)
      .join(" ");
  }
  return { isInjected: true, env };
}

/** NODE_OPTIONS splits on spaces except inside double quotes, where \ escapes. */
function quoteNodeOption(value: string): string {
  return /[\s"\\]/.test(value) ? `"${value.replace(/["\\]/g, "\\$&")}"` : value;
}

const channels = new WeakMap<AppProcess, ControlChannel>();

/**
 * The app's control channel, read from the first call on: always, as soon as the app runs,
 * or the pipe would fill with hellos and block the app. Later calls return the same channel.
 * Restore-hook failures in the original process are reported here; a restored copy's are
 * afterRestore's outcome.
 */
export function openControl(app: AppProcess, warn: (message: string) => void): ControlChannel | undefined {
  if (!app.control) return undefined;
  const known = channels.get(app);
  if (known) return known;
  const channel = new ControlChannel(app.control);
  channels.set(app, channel);
  channel.onMessage((message) => {
    if (message.type === "resumed" && message.verdict !== "restored" && message.report.failures.length > 0)
      warn(
        `restore hook failed in the original process ${message.pid}: ${message.report.failures.join("; ")}`,
      );
  });
  return channel;
}

export type BeforeCheckpointOutcome =
  | {
      readonly isReady: true;
      /** For the entry's manifest: undefined when the app has no control pipes. */
      readonly manifest: RuntimeManifest | undefined;
      /** Participants blocked until afterCheckpoint. */
      readonly blocked: readonly number[];
      /** Hellos seen when the participants were asked. */
      readonly knownParticipants: ReadonlySet<number>;
    }
  | { readonly isReady: false; readonly reason: "hook-failed"; readonly detail: string };

/**
 * Before the dump: the --before-checkpoint hook, then every runtime in the app's tree runs
 * its checkpoint hooks and blocks. A failure, or a runtime that does not answer in time,
 * cancels this snapshot: whoever blocked is released and the app goes on serving.
 */
export async function beforeCheckpoint(
  channel: ControlChannel | undefined,
  appPid: number,
  context: RuntimeContext,
): Promise<BeforeCheckpointOutcome> {
  const external = await runHook("before-checkpoint", appPid, context);
  if (external) return { isReady: false, reason: "hook-failed", detail: external };
  if (!channel) return { isReady: true, manifest: undefined, blocked: [], knownParticipants: new Set() };
  const knownParticipants = new Set(channel.participants.keys());
  const asked = [...knownParticipants].filter((pid) => isInTree(pid, appPid));
  const pending = new Set(asked);
  const answers = channel.collect(
    (message) =>
      (message.type === "checkpoint-ready" || message.type === "checkpoint-failed") &&
      pending.delete(message.pid),
    () => pending.size === 0,
    // The process's hooks, then its workers' hooks, then loading koffi.
    2 * context.options.hookTimeoutMs + 5000,
  );
  for (const pid of asked) sendSignal(pid);
  const { messages, isTimedOut } = await answers;
  const blocked = messages.filter((message) => message.type === "checkpoint-ready").map((m) => m.pid);
  const failures = messages.flatMap((message) =>
    message.type === "checkpoint-failed" ? [`process ${message.pid}: ${message.detail}`] : [],
  );
  if (isTimedOut)
    failures.push(`process ${[...pending].join(", ")} did not answer the checkpoint request in time`);
  const control = readControlPipes([appPid, ...asked]);
  if (!control) failures.push("the app's control pipes are gone");
  if (failures.length > 0 || !control) {
    channel.writeVerdicts("cancelled", blocked.length);
    // Those that answer after the timeout block too: release them as they come.
    channel.onMessage((message) => {
      if (message.type === "checkpoint-ready" && pending.has(message.pid))
        channel.writeVerdicts("cancelled", 1);
    });
    return { isReady: false, reason: "hook-failed", detail: failures.join("; ") };
  }
  return {
    isReady: true,
    manifest: {
      control,
      participants: blocked.length,
      canReseedEarly: blocked.every((pid) => channel.protocolOf(pid) >= EARLY_RESEED_PROTOCOL),
    },
    blocked,
    knownParticipants,
  };
}

/**
 * After the dump (or its failure): the original's participants resume, told "saved" when the
 * dump worked and the image may be kept (before the commit: they wait for no hashing). Returns why the image must not be kept: a runtime that started while
 * the others were blocking is in it without having blocked, and would resume unreseeded.
 */
export function afterCheckpoint(
  channel: ControlChannel | undefined,
  before: Extract<BeforeCheckpointOutcome, { isReady: true }>,
  isDumped: boolean,
): string | undefined {
  if (!channel) return undefined;
  const newcomers = [...channel.participants.keys()].filter((pid) => !before.knownParticipants.has(pid));
  const unsafe =
    newcomers.length > 0
      ? `process ${newcomers.join(", ")} started its runtime during the checkpoint`
      : undefined;
  channel.writeVerdicts(isDumped && !unsafe ? "saved" : "cancelled", before.blocked.length);
  return unsafe;
}

export type AfterRestoreOutcome =
  | {
      readonly isReady: true;
      /** Failed restore hooks, reported; with --strict-hooks they make the launch fall back. */
      readonly failures: readonly string[];
      /** The slowest participant's reseed, in the app (ms). */
      readonly reseedMs: number | undefined;
      /** From the verdicts to the last participant's report: reseeds and restore hooks (ms). */
      readonly resumeMs: number | undefined;
    }
  | { readonly isReady: false; readonly reason: "reseed-failed" | "hook-failed"; readonly detail: string };

/**
 * After the restore, before readiness is re-checked: every participant that blocked at dump
 * time gets the "restored" verdict, reseeds before its event loop goes on and runs its
 * restore hooks; then the --after-restore hook runs. A copy that did not reseed is never
 * served.
 */
export async function afterRestore(
  channel: ControlChannel | undefined,
  runtime: RuntimeManifest | undefined,
  appPid: number,
  context: RuntimeContext,
): Promise<AfterRestoreOutcome> {
  const failures: string[] = [];
  let reseedMs: number | undefined;
  let resumeMs: number | undefined;
  const participants = runtime?.participants ?? 0;
  if (participants > 0) {
    if (!channel)
      return { isReady: false, reason: "reseed-failed", detail: "the restored app has no control channel" };
    const asked = await askParticipants(
      channel,
      "restored",
      participants,
      2 * context.options.hookTimeoutMs + 5000,
    );
    if ("unreseeded" in asked) return { isReady: false, reason: "reseed-failed", detail: asked.unreseeded };
    resumeMs = asked.ms;
    for (const { pid, report } of asked.reports) {
      reseedMs = Math.max(reseedMs ?? 0, report.reseedMs);
      failures.push(...report.failures.map((failure) => `process ${pid}: ${failure}`));
    }
  }
  const external = await runHook("after-restore", appPid, context);
  if (external) failures.push(external);
  if (failures.length > 0 && context.options.isStrictHooks)
    return { isReady: false, reason: "hook-failed", detail: failures.join("; ") };
  return { isReady: true, failures, reseedMs, resumeMs };
}

export type EarlyReseedOutcome =
  | { readonly isReseeded: true; readonly reseedMs: number | undefined }
  | { readonly isReseeded: false; readonly detail: string };

/**
 * A copy left stopped to wait (serve's spare), resumed for this alone: every participant
 * reseeds now and blocks again, so that its resume later runs the restore hooks only
 * (afterRestore, unchanged: the participants answer "restored" with this reseed's report).
 * The reseed makes this copy unique, whenever it serves; the hooks (a database to reconnect)
 * must run when it does. Snapshots whose runtime predates protocol 2 are not asked.
 */
export async function reseedEarly(
  channel: ControlChannel | undefined,
  runtime: RuntimeManifest | undefined,
  context: RuntimeContext,
): Promise<EarlyReseedOutcome> {
  const participants = runtime?.canReseedEarly ? runtime.participants : 0;
  if (participants === 0) return { isReseeded: true, reseedMs: undefined };
  if (!channel) return { isReseeded: false, detail: "the restored app has no control channel" };
  const asked = await askParticipants(channel, "reseed", participants, context.options.hookTimeoutMs + 5000);
  if ("unreseeded" in asked) return { isReseeded: false, detail: asked.unreseeded };
  return { isReseeded: true, reseedMs: Math.max(0, ...asked.reports.map(({ report }) => report.reseedMs)) };
}

/**
 * Tells the `participants` blocked participants `byte` and gathers their reports ("resumed"
 * after "restored", "reseeded" after "reseed"): every one's, with the time they took, or why
 * the copy is not reseeded (a report that says so, or silence until the timeout).
 */
async function askParticipants(
  channel: ControlChannel,
  byte: "restored" | "reseed",
  participants: number,
  timeoutMs: number,
): Promise<
  | {
      readonly reports: readonly { readonly pid: number; readonly report: ResumeReport }[];
      readonly ms: number;
    }
  | { readonly unreseeded: string }
> {
  const answers = channel.collect(
    (message) =>
      byte === "reseed"
        ? message.type === "reseeded"
        : message.type === "resumed" && message.verdict === "restored",
    (accepted) => accepted.length >= participants,
    timeoutMs,
  );
  const startedMs = performance.now();
  channel.writeVerdicts(byte, participants);
  const { messages, isTimedOut } = await answers;
  const ms = performance.now() - startedMs;
  if (isTimedOut) {
    const silent = participants - messages.length;
    return {
      unreseeded: `${silent} of ${participants} processes did not report their reseed (in time, or at all: the app exited)`,
    };
  }
  const reports = messages.flatMap((message) =>
    message.type === "resumed" || message.type === "reseeded"
      ? [{ pid: message.pid, report: message.report }]
      : [],
  );
  const failed = reports.find(({ report }) => !report.isReseeded);
  if (failed)
    return { unreseeded: `process ${failed.pid} could not reseed: ${failed.report.failures.join("; ")}` };
  return { reports, ms };
}

/** For -v: what the restored copy's runtime took. */
export function describeResume(
  resumeMs: number,
  reseedMs: number | undefined,
  when: "at resume" | "when restored",
): string {
  const reseed =
    reseedMs === undefined
      ? ""
      : when === "at resume"
        ? `, reseed ${reseedMs.toFixed(1)} ms`
        : `; it had reseeded when it was restored, in ${reseedMs.toFixed(1)} ms`;
  return `the app's runtime resumed in ${resumeMs.toFixed(1)} ms${reseed}`;
}

async function runHook(event: HookEvent, pid: number, context: RuntimeContext): Promise<string | undefined> {
  const spec =
    event === "before-checkpoint" ? context.options.beforeCheckpoint : context.options.afterRestore;
  if (!spec) return undefined;
  const outcome = await runExternalHook(spec, {
    event,
    pid,
    key: context.key,
    cwd: context.cwd,
    env: context.env,
    timeoutMs: context.options.hookTimeoutMs,
    sinks: context.sinks,
    inAppNetwork: context.inAppNetwork,
  });
  return outcome.ok ? undefined : `the ${event} hook ${describeHook(spec)} failed: ${outcome.detail}`;
}

function sendSignal(pid: number): void {
  try {
    process.kill(pid, CHECKPOINT_SIGNAL);
  } catch {
    // Gone since its hello: its answer never comes and the request times out.
  }
}

/** Whether `pid` is `root` or one of its descendants (a PID reused outside is not). */
function isInTree(pid: number, root: number): boolean {
  for (let current = pid, depth = 0; current > 1 && depth < 64; depth++) {
    if (current === root) return true;
    try {
      // The ppid is the second field after the parenthesized command (which may hold spaces).
      const [state, ppid] = readFileSync(`/proc/${current}/stat`, "utf8")
        .replace(/^.*\) /s, "")
        .split(" ");
      // A zombie never answers.
      if (state === "Z") return false;
      current = Number(ppid);
    } catch {
      return false;
    }
  }
  return false;
}
