import { appendFileSync } from "node:fs";
import { resolve } from "node:path";
import type { ParseArgsConfig } from "node:util";

type ParseArgsOptionsConfig = NonNullable<ParseArgsConfig["options"]>;

import { defaultCacheDir } from "../cache/cache-dir.js";
import { parseSize } from "../cache/parse-size.js";
import { WarmstartError } from "../errors.js";
import { exitCodeOfSignal } from "../exec/owned-process.js";
import { loadConfigFile } from "../launch/config-file.js";
import type { Launch, LaunchOptions, LaunchReport } from "../launch/launch.js";
import { FLEET_FLAGS, FLEET_USAGE, resolveFleetSettings, toFleetFlags } from "../remote/fleet-settings.js";
import type { RuntimeOptions } from "../runtime/runtime-options.js";
import { parseCommandArgs } from "./command-args.js";
import { createLaunchRenderer, renderWatchEvent } from "./render-launch.js";

export const RUN_USAGE = `Usage: warmstart run [options] -- <command> [args...]

The first launch starts <command> cold, waits until it is ready, then checkpoints it with
CRIU (the app keeps running). Later launches restore that snapshot in a new PID namespace.
When the snapshot is missing, stale or fails to restore, the app starts cold again.

Readiness (at least one; all must pass):
  --ready tcp:<port> | tcp:<host>:<port>   a TCP connect succeeds (tcp:<port> tries localhost)
  --ready http://host:port/path           a GET answers 2xx
  --ready log:<regex>                     a line of the app's stdout/stderr matches
  --ready file:<path>                     the file exists
  --ready notify                          the app sends READY=1 to $NOTIFY_SOCKET (systemd)
  --ready-timeout <seconds>               give up (and stop the app) after this (default 60)

Cache:
  --cold                 ignore the snapshot for this launch (a new one is still taken)
  --no-snapshot          do not checkpoint this launch
  --refresh              start cold and replace the snapshot
  --cache-dir <dir>      default: $WARMSTART_CACHE_DIR, $XDG_CACHE_HOME/warmstart or ~/.cache/warmstart
  --input <glob>         a file the app reads after it is ready (what a recording of its
                         start cannot see): a change to it makes the next launch cold
                         (repeatable; ** for any depth)
  --input-ignore <glob>  a file the app reads while it starts that changes without
                         mattering: not an input (repeatable; relative to the cwd)
  --env-ignore <NAME>    leave this environment variable out of the cache key (repeatable)
  --max-cache-size <n>   cap the cache (500M, 10G; default 10G or 20% of the free space);
                         least recently used snapshots go first

Restore:
  --lazy, --no-lazy      restore memory on first touch (CRIU lazy pages, userfaultfd) instead
                         of reading the whole image first; default: lazy for images of
                         100 MiB or more, where it is faster

Uniqueness and hooks (see docs/uniqueness.md):
  --no-runtime           do not inject warmstart's runtime (NODE_OPTIONS, JAVA_TOOL_OPTIONS):
                         restored copies then share the snapshot's random state
  --before-checkpoint <command|url>
                         run this before each snapshot (sh -c, with WARMSTART_PID,
                         WARMSTART_KEY, WARMSTART_EVENT), or POST to this URL of the app;
                         a failure cancels the snapshot
  --after-restore <command|url>
                         the same after each restore, before the launch counts as ready
  --hook-timeout <s>     how long each phase's hooks may take (default 10)
  --strict-hooks         a failing restore hook makes the launch start cold instead

Lifetime:
  --detach               exit once the app is ready (and snapshotted) and leave it running;
                         its output goes straight to warmstart's stdout/stderr
  --watch                watch the inputs and the executable while the app runs; a change
                         removes the stale snapshot
  --prewarm              with --watch: after a change, start the new version in the
                         background (in a private network namespace, so its ports do not
                         clash), snapshot it and stop it: the next launch is warm

Remote cache (see also the travel flags below):
  --no-remote-push       do not push a new snapshot to the remote cache

Output:
  --report <file>        append JSON lines: "event": "ready" once the app is ready and its
                         snapshot saved or skipped (mode, key, pid, readyMs, checkpoint...),
                         then "event": "exit" with its exit code
  -q, --quiet            say nothing when all goes well (the ready and snapshot lines);
                         warnings and errors are still said
  -v, --verbose          show each step with its time

Settings can also live in warmstart.config.json (or a "warmstart" field of package.json) in
the working directory: {"ready": [...], "readyTimeout": 60, "inputs": [...], "inputIgnore": [...],
"envIgnore": [...],
"maxCacheSize": "10G", "runtime": true, "beforeCheckpoint": "...", "afterRestore": "...",
"hookTimeout": 10, "strictHooks": false}. Flags replace the file's values.

A restored app keeps its listening ports: they must be free when it is restored.
warmstart exits with the app's exit code (128+n when a signal ended it). If warmstart is
killed, the app is killed too, unless --detach was given.

${FLEET_USAGE}`;

export const PREWARM_USAGE = `Usage: warmstart prewarm [options] -- <command> [args...]

Starts <command> cold in a private network namespace (so it can run beside an instance
that is serving on the same ports), waits until it is ready, snapshots it and stops it:
the next 'warmstart run' of the same command is warm. Takes run's readiness and cache
options (--ready, --ready-timeout, --cache-dir, --input, --input-ignore, --env-ignore, --max-cache-size,
--report, -v). Exits 0 when a snapshot was saved.`;

export const LAUNCH_FLAGS: ParseArgsOptionsConfig = {
  ready: { type: "string", multiple: true, default: [] },
  "ready-timeout": { type: "string" },
  "cache-dir": { type: "string" },
  "env-ignore": { type: "string", multiple: true, default: [] },
  input: { type: "string", multiple: true, default: [] },
  "input-ignore": { type: "string", multiple: true, default: [] },
  "max-cache-size": { type: "string" },
  report: { type: "string" },
  "no-runtime": { type: "boolean", default: false },
  "before-checkpoint": { type: "string" },
  "after-restore": { type: "string" },
  "hook-timeout": { type: "string" },
  "strict-hooks": { type: "boolean", default: false },
  verbose: { type: "boolean", short: "v", default: false },
  quiet: { type: "boolean", short: "q", default: false },
  help: { type: "boolean", short: "h", default: false },
  ...FLEET_FLAGS,
  "no-remote-push": { type: "boolean", default: false },
};

const RUN_FLAGS: ParseArgsOptionsConfig = {
  ...LAUNCH_FLAGS,
  cold: { type: "boolean", default: false },
  "no-snapshot": { type: "boolean", default: false },
  refresh: { type: "boolean", default: false },
  detach: { type: "boolean", default: false },
  lazy: { type: "boolean" },
  "no-lazy": { type: "boolean" },
  watch: { type: "boolean", default: false },
  prewarm: { type: "boolean", default: false },
};

type FlagValues = Readonly<Record<string, string | boolean | (string | boolean)[] | undefined>>;
const stringOf = (values: FlagValues, name: string) => values[name] as string | undefined;
const listOf = (values: FlagValues, name: string) => (values[name] as string[] | undefined) ?? [];

/** A flag's positive number of seconds, or undefined when it was not given. */
function secondsOf(values: FlagValues, flag: string): number | undefined {
  const text = stringOf(values, flag);
  if (text !== undefined && (!/^\d+(\.\d+)?$/.test(text) || Number(text) === 0)) {
    throw new WarmstartError(
      "invalid-option",
      `Expected --${flag} to be a positive number of seconds, got ${JSON.stringify(text)}.`,
    );
  }
  return text === undefined ? undefined : Number(text);
}

/** Splits `[flags] -- command...` and merges the flags over the config file. */
export function parseLaunchArgs(args: string[], flags: ParseArgsOptionsConfig, usage: string) {
  const separator = args.indexOf("--");
  const parsed = parseCommandArgs(separator === -1 ? args : args.slice(0, separator), flags, usage);
  const values = parsed.values as FlagValues;
  const positionals = parsed.positionals;
  if (values.help) return { isHelp: true as const };
  const command = separator === -1 ? [] : args.slice(separator + 1);
  if (positionals.length > 0 || command.length === 0) {
    throw new WarmstartError("invalid-option", "Expected a command after `--`, got nothing.", {
      hint: usage.split("\n")[0] ?? "",
    });
  }
  const config = loadConfigFile(process.cwd());
  const readyTimeoutSeconds = secondsOf(values, "ready-timeout") ?? config?.readyTimeout;
  const hookTimeoutSeconds = secondsOf(values, "hook-timeout") ?? config?.hookTimeout;
  const beforeCheckpoint = stringOf(values, "before-checkpoint") ?? config?.beforeCheckpoint;
  const afterRestore = stringOf(values, "after-restore") ?? config?.afterRestore;
  const runtime: RuntimeOptions = {
    isEnabled: values["no-runtime"] === true ? false : (config?.runtime ?? true),
    isStrictHooks: values["strict-hooks"] === true || config?.strictHooks === true,
    ...(hookTimeoutSeconds !== undefined ? { hookTimeoutMs: hookTimeoutSeconds * 1000 } : {}),
    ...(beforeCheckpoint !== undefined ? { beforeCheckpoint } : {}),
    ...(afterRestore !== undefined ? { afterRestore } : {}),
  };
  const maxCacheSize = stringOf(values, "max-cache-size") ?? config?.maxCacheSize;
  // Flags replace the config file's lists rather than adding to them: what is typed wins.
  const pick = (flag: string[], fromConfig: readonly string[] | undefined) =>
    flag.length > 0 ? flag : (fromConfig ?? []);
  const cacheDirFlag = stringOf(values, "cache-dir");
  const options = {
    command,
    ready: pick(listOf(values, "ready"), config?.ready),
    inputs: pick(listOf(values, "input"), config?.inputs),
    inputIgnore: pick(listOf(values, "input-ignore"), config?.inputIgnore),
    envIgnore: pick(listOf(values, "env-ignore"), config?.envIgnore),
    cacheDir: cacheDirFlag ? resolve(cacheDirFlag) : defaultCacheDir(),
    ...(readyTimeoutSeconds !== undefined ? { readyTimeoutMs: readyTimeoutSeconds * 1000 } : {}),
    ...(maxCacheSize !== undefined ? { maxCacheBytes: parseSize(String(maxCacheSize)) } : {}),
    runtime,
    startedAtMs: 0, // performance.now()'s origin is process start: readyMs includes Node's boot
    fleet: resolveFleetSettings(toFleetFlags(values)),
  } satisfies LaunchOptions;
  return {
    isHelp: false as const,
    values,
    options,
    report: stringOf(values, "report"),
    render: { isVerbose: values.verbose === true, isQuiet: values.quiet === true },
  };
}

export async function runRunCommand(args: string[]): Promise<number> {
  const parsed = parseLaunchArgs(args, RUN_FLAGS, RUN_USAGE);
  if (parsed.isHelp) {
    process.stdout.write(`${RUN_USAGE}\n`);
    return 0;
  }
  const { values, options } = parsed;
  if (values.prewarm && !values.watch) {
    throw new WarmstartError("invalid-option", "--prewarm needs --watch.", {
      hint: "to snapshot once without serving, use: warmstart prewarm [options] -- <command>",
    });
  }
  if (values.lazy && values["no-lazy"]) {
    throw new WarmstartError("invalid-option", "--lazy and --no-lazy contradict each other; give one.");
  }
  if (values.watch && values.detach) {
    throw new WarmstartError("invalid-option", "--watch cannot be combined with --detach.", {
      hint: "the watcher lives in the warmstart process, which --detach ends",
    });
  }
  const abort = new AbortController();
  let launched: Launch | undefined;
  let received: NodeJS.Signals | undefined;
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(signal, () => {
      received = signal;
      if (launched) launched.kill(signal);
      else abort.abort(signal);
    });
  }
  const { launch } = await import("../launch/launch.js");
  try {
    launched = await launch({
      ...options,
      isCold: values.cold === true,
      isSnapshotDisabled: values["no-snapshot"] === true,
      isRefresh: values.refresh === true,
      isDetached: values.detach === true,
      ...(values.lazy || values["no-lazy"] ? { isLazy: values.lazy === true } : {}),
      onEvent: createLaunchRenderer(parsed.render),
      signal: abort.signal,
    });
  } catch (error) {
    // Stopped before the app was ready: the exit a signal gives, and no error to print.
    if (
      received &&
      error instanceof WarmstartError &&
      (error.code === "app-exited" || error.code === "aborted")
    ) {
      return exitCodeOfSignal(received);
    }
    throw error;
  }
  // A signal that came while launch() ran (between its checks) goes to the app now.
  if (received) launched.kill(received);
  // A service runs for days: its line is written once its outcome is known, not at exit.
  const reportFile = parsed.report;
  const readyReported = reportFile
    ? launched.report().then((report) => appendReport(reportFile, "ready", report))
    : Promise.resolve();
  if (values.detach) {
    // The snapshot must land before we go: nothing would commit it after us.
    await launched.checkpoint;
    await readyReported;
    process.stderr.write(`warmstart: detached: ${launched.mode}, pid ${launched.pid}\n`);
    return 0;
  }
  const watcher = values.watch
    ? await (await import("../launch/watch-inputs.js")).watchInputs(
        launched,
        options,
        values.prewarm === true,
        renderWatchEvent,
      )
    : undefined;
  if (!process.stdin.isTTY && launched.stdin) process.stdin.pipe(launched.stdin);
  const exit = await launched.exited;
  await watcher?.close();
  if (parsed.render.isVerbose) {
    const atMs = Math.round(performance.now());
    process.stderr.write(`warmstart: [${atMs} ms] app exited (code ${exit.exitCode})\n`);
  }
  await readyReported;
  if (reportFile) appendReport(reportFile, "exit", await launched.report());
  return exit.exitCode;
}

export async function runPrewarmCommand(args: string[]): Promise<number> {
  const parsed = parseLaunchArgs(args, LAUNCH_FLAGS, PREWARM_USAGE);
  if (parsed.isHelp) {
    process.stdout.write(`${PREWARM_USAGE}\n`);
    return 0;
  }
  const { prewarm } = await import("../launch/prewarm.js");
  const outcome = await prewarm({ ...parsed.options, onEvent: createLaunchRenderer(parsed.render) });
  if (!outcome?.saved) return 1;
  const mb = (outcome.entry.manifest.imageBytes / 1e6).toFixed(1);
  process.stderr.write(
    `warmstart: prewarmed: snapshot ${outcome.entry.manifest.key.slice(0, 12)} (${mb} MB)\n`,
  );
  return 0;
}

function appendReport(file: string, event: "ready" | "exit", report: LaunchReport): void {
  appendFileSync(file, `${JSON.stringify({ time: new Date().toISOString(), event, ...report })}\n`);
}
