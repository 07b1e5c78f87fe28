#!/usr/bin/env node
// The CLI parses, calls the library, and renders its events. It is the only place that
// writes to the console or sets the exit code.
import { appendFileSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { WarmstartError } from "./errors.js";
import type { Launch } from "./launch/launch.js";
import { describeStep, type LaunchEvent } from "./launch/launch-events.js";

const startedAtMs = 0; // performance.now() origin: process start, so readyMs includes Node's boot.

const USAGE = `Usage: warmstart <command> [options]

Commands:
  run [options] -- <command> [args...]   launch an app: restore its snapshot, or start it
                                         cold and snapshot it once it is ready
  doctor [--json]                        check CRIU and the kernel features warmstart uses
  help [command]                         show help

Run 'warmstart help run' for the launch options.`;

const RUN_USAGE = `Usage: warmstart run [options] -- <command> [args...]

The first launch starts <command> cold, waits until it is ready, then checkpoints it with
CRIU (the app keeps running). Later launches restore that snapshot in a new PID namespace.
When the snapshot is missing, stale or fails to restore, the app starts cold again.

Readiness (at least one; all must pass):
  --ready tcp:<port> | tcp:<host>:<port>   a TCP connect succeeds
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
  --env-ignore <NAME>    leave this environment variable out of the cache key (repeatable)

Output:
  --report <file>        append one JSON line per launch (mode, key, pid, readyMs, ...)
  -v, --verbose          show each step with its time

A restored app keeps its listening ports: they must be free when it is restored.
warmstart exits with the app's exit code (128+n when a signal ended it).`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case "run":
      return runCommand(rest);
    case "doctor": {
      const { runDoctorCommand } = await import("./doctor/doctor-command.js");
      return runDoctorCommand(rest);
    }
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(`${rest[0] === "run" ? RUN_USAGE : USAGE}\n`);
      return 0;
    case "--version":
    case "-V": {
      const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
        version: string;
      };
      process.stdout.write(`${pkg.version}\n`);
      return 0;
    }
    case undefined:
      process.stderr.write(`${USAGE}\n`);
      return 2;
    default:
      throw new WarmstartError("invalid-option", `Unknown command ${JSON.stringify(command)}.`, {
        hint: "commands: run, doctor, help",
      });
  }
}

async function runCommand(args: string[]): Promise<number> {
  const separator = args.indexOf("--");
  const flags = separator === -1 ? args : args.slice(0, separator);
  const appCommand = separator === -1 ? [] : args.slice(separator + 1);
  const { values } = parseArgs({
    args: flags,
    options: {
      ready: { type: "string", multiple: true, default: [] },
      "ready-timeout": { type: "string" },
      cold: { type: "boolean", default: false },
      "no-snapshot": { type: "boolean", default: false },
      refresh: { type: "boolean", default: false },
      "cache-dir": { type: "string" },
      "env-ignore": { type: "string", multiple: true, default: [] },
      report: { type: "string" },
      verbose: { type: "boolean", short: "v", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    process.stdout.write(`${RUN_USAGE}\n`);
    return 0;
  }
  if (separator === -1 || appCommand.length === 0) {
    throw new WarmstartError("invalid-option", "Expected a command after `--`, got nothing.", {
      hint: "usage: warmstart run [options] -- <command> [args...]",
    });
  }
  const readyTimeout = values["ready-timeout"];
  const readyTimeoutMs = readyTimeout === undefined ? undefined : Number(readyTimeout) * 1000;
  if (readyTimeout !== undefined && (!/^\d+(\.\d+)?$/.test(readyTimeout) || readyTimeoutMs === 0)) {
    throw new WarmstartError(
      "invalid-option",
      `Expected --ready-timeout to be a positive number of seconds, got ${JSON.stringify(readyTimeout)}.`,
    );
  }
  const render = createRenderer(values.verbose);
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
  const { launch } = await import("./launch/launch.js");
  try {
    launched = await launch({
      command: appCommand,
      ready: values.ready,
      ...(readyTimeoutMs !== undefined ? { readyTimeoutMs } : {}),
      ...(values["cache-dir"] ? { cacheDir: resolve(values["cache-dir"]) } : {}),
      isCold: values.cold,
      isSnapshotDisabled: values["no-snapshot"],
      isRefresh: values.refresh,
      envIgnore: values["env-ignore"],
      onEvent: render,
      startedAtMs,
      signal: abort.signal,
    });
  } catch (error) {
    if (received && error instanceof WarmstartError && error.code === "app-exited") {
      return 128 + (received === "SIGINT" ? 2 : received === "SIGHUP" ? 1 : 15);
    }
    throw error;
  }
  if (!process.stdin.isTTY && launched.stdin) process.stdin.pipe(launched.stdin);
  const exit = await launched.exited;
  render({
    type: "step",
    step: "exited",
    atMs: Math.round(performance.now()),
    detail: `code ${exit.exitCode}`,
  });
  if (values.report) {
    const report = await launched.report();
    appendFileSync(values.report, `${JSON.stringify({ time: new Date().toISOString(), ...report })}\n`);
  }
  return exit.exitCode;
}

function createRenderer(isVerbose: boolean): (event: LaunchEvent) => void {
  return (event) => {
    switch (event.type) {
      case "fallback":
        process.stderr.write(`warmstart: warning: ${event.message}\n`);
        return;
      case "step":
        // "serving" is rendered by the ready event, which carries the mode and PID.
        if (isVerbose && event.step !== "serving") {
          const detail = event.detail ? ` (${event.detail})` : "";
          process.stderr.write(`warmstart: [${event.atMs} ms] ${describeStep(event.step)}${detail}\n`);
        }
        return;
      case "ready":
        if (isVerbose) {
          process.stderr.write(`warmstart: [${event.readyMs} ms] ready, ${event.mode}, pid ${event.pid}\n`);
        }
        return;
      case "checkpoint": {
        const { outcome } = event;
        if (outcome.saved) {
          if (isVerbose) {
            const mb = (outcome.entry.manifest.imageBytes / 1e6).toFixed(1);
            process.stderr.write(`warmstart: checkpoint saved in ${outcome.checkpointMs} ms (${mb} MB)\n`);
          }
        } else if (outcome.reason !== "lost-race") {
          const where = outcome.logPath ? ` (CRIU log: ${outcome.logPath})` : "";
          process.stderr.write(
            `warmstart: warning: checkpoint failed, the next launch will be cold too: ${outcome.errors[0] ?? outcome.reason}${where}\n`,
          );
        }
        return;
      }
    }
  };
}

/** An app that died before it was ready exits warmstart with its own code, as it would alone. */
function exitCodeFor(error: WarmstartError): number {
  const appExitCode = error.details.exitCode;
  if (error.code === "app-exited" && typeof appExitCode === "number" && appExitCode !== 0) return appExitCode;
  return error.code === "invalid-option" || error.code === "invalid-config" ? 2 : 1;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    if (error instanceof WarmstartError) {
      process.stderr.write(`warmstart: error: ${error.message}\n`);
      process.exit(exitCodeFor(error));
    }
    if (error instanceof Error && "code" in error && String(error.code).startsWith("ERR_PARSE_ARGS")) {
      process.stderr.write(`warmstart: error: ${error.message}\n  hint: see 'warmstart help run'\n`);
      process.exit(2);
    }
    process.stderr.write(
      `warmstart: internal error: ${error instanceof Error ? error.stack : String(error)}\n`,
    );
    process.exit(70);
  },
);
