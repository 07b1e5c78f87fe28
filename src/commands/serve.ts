import type { ParseArgsConfig } from "node:util";
import { invalidOption, WarmstartError } from "../errors.js";
import type { ServeEvent } from "../serve/serve.js";
import { createLaunchRenderer } from "./render-launch.js";
import { LAUNCH_FLAGS, parseLaunchArgs } from "./run.js";

type ParseArgsOptionsConfig = NonNullable<ParseArgsConfig["options"]>;

export const SERVE_USAGE = `Usage: warmstart serve --listen <[host:]port> [options] -- <command> [args...]

Holds the app's listening socket(s) while the app is not running (it uses no memory then),
restores its snapshot on the first connection and hands the socket over to it: the app
answers that connection itself, and serve is not in the path once it runs. An instance with
no traffic for --idle is stopped; the next connection restores it again. Without a snapshot,
or when it fails to restore, the app starts cold in a private network namespace (its port
is free there), is snapshotted and stopped, and the snapshot is restored. No connection is
refused or reset while an instance starts or stops.

Serve:
  --listen <[host:]port>  the address and port the app listens on (repeatable; host
                          default 127.0.0.1: the app's own address, e.g. 0.0.0.0 or [::]).
                          Not needed with systemd socket activation (LISTEN_FDS).
  --idle <duration>       stop an instance after this long without traffic (default 5m;
                          30s, 10m, 1h, 500ms; 0: never). Open keep-alive connections that
                          carry nothing do not count as traffic.
  --spare                 keep one instance restored (and reseeded) but stopped, resumed
                          on the next connection, which runs its restore hooks (its first
                          answer within milliseconds; memory held)
  --max-instances <n>     up to n copies behind the port (default 1); a new one when
                          connections queue on every running copy, idle ones stop
  --keep-state            checkpoint an idle instance into its own images instead of
                          stopping it, and restore those next (see the README's risks)
  --metrics <[host:]port> serve Prometheus metrics on http://<host:port>/metrics (host
                          default 127.0.0.1)

It takes run's readiness and cache options (--ready, default tcp:<each --listen>,
--ready-timeout, --cache-dir, --input, --env-ignore, --max-cache-size, --lazy/--no-lazy,
-v). SIGTERM or SIGINT drains: the instances finish what they serve and stop, then serve
exits 0; a second signal exits at once.`;

const SERVE_FLAGS: ParseArgsOptionsConfig = {
  ...LAUNCH_FLAGS,
  listen: { type: "string", multiple: true, default: [] },
  idle: { type: "string" },
  spare: { type: "boolean", default: false },
  "max-instances": { type: "string" },
  "keep-state": { type: "boolean", default: false },
  metrics: { type: "string" },
  lazy: { type: "boolean" },
  "no-lazy": { type: "boolean" },
};

/** The default --idle: long enough that a user's next click finds it running, short enough to free memory. */
export const DEFAULT_IDLE_MS = 5 * 60_000;

export async function runServeCommand(args: string[]): Promise<number> {
  const parsed = parseLaunchArgs(args, SERVE_FLAGS, SERVE_USAGE);
  if (parsed.isHelp) {
    process.stdout.write(`${SERVE_USAGE}\n`);
    return 0;
  }
  const { values, options } = parsed;
  if (values.lazy && values["no-lazy"]) {
    throw new WarmstartError("invalid-option", "--lazy and --no-lazy contradict each other; give one.");
  }
  const { parseListenAddress } = await import("../serve/listen-address.js");
  const { takeActivatedSockets } = await import("../serve/socket-activation.js");
  const activated = takeActivatedSockets(process.env);
  const listenFlags = (values.listen as string[] | undefined) ?? [];
  if (activated && listenFlags.length > 0) {
    throw new WarmstartError(
      "invalid-option",
      "--listen cannot be combined with sockets passed by systemd (LISTEN_FDS).",
      {
        hint: "the .socket unit's ListenStream= says where serve listens; drop --listen",
      },
    );
  }
  const listen = listenFlags.map((text) => parseListenAddress(text));
  if (!activated && listen.length === 0) {
    throw new WarmstartError("invalid-option", "Expected at least one --listen <[host:]port>, got none.", {
      hint: "serve holds the port the app listens on, e.g. --listen 127.0.0.1:3000 (or run it from a systemd .socket unit)",
    });
  }
  const addresses = activated ? activated.map((socket) => socket.address) : listen;
  const idleMs = values.idle === undefined ? DEFAULT_IDLE_MS : parseDurationMs(String(values.idle), "--idle");
  const maxInstances = parseCount(values["max-instances"], "--max-instances");
  const metricsAddress =
    values.metrics === undefined ? undefined : parseListenAddress(String(values.metrics), "--metrics");
  // A probe on a wildcard address asks loopback, as a client on this machine would.
  const ready =
    options.ready.length > 0
      ? options.ready
      : addresses.map((address) => `tcp:${probeHost(address.host, address.family)}:${address.port}`);
  const renderLaunch = createLaunchRenderer(parsed.render);
  const abort = new AbortController();
  let signals = 0;
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => {
      signals += 1;
      if (signals > 1) process.exit(128 + (signal === "SIGINT" ? 2 : 15));
      abort.abort(signal);
    });
  }
  const { serve } = await import("../serve/serve.js");
  const serving = await serve({
    launch: {
      ...options,
      ready,
      env: process.env,
      ...(values.lazy || values["no-lazy"] ? { isLazy: values.lazy === true } : {}),
    },
    listen,
    ...(activated ? { activated } : {}),
    idleMs,
    isSpare: values.spare === true,
    maxInstances,
    isKeepState: values["keep-state"] === true,
    onEvent: (event) => renderServeEvent(event, parsed.render.isVerbose, renderLaunch),
    signal: abort.signal,
  });
  if (metricsAddress) {
    const { startMetricsServer } = await import("../serve/metrics-server.js");
    const server = await startMetricsServer(metricsAddress, () => serving.renderMetrics());
    void serving.done.finally(() => server.close()).catch(() => {});
    process.stderr.write(`warmstart: metrics on http://${metricsAddress.text}/metrics\n`);
  }
  await serving.done;
  return 0;
}

function probeHost(host: string, family: 4 | 6): string {
  if (host === "0.0.0.0") return "127.0.0.1";
  if (host === "::") return "[::1]";
  return family === 6 ? `[${host}]` : host;
}

/** `500ms`, `30s`, `5m`, `1h`, `0`; a bare number is seconds. */
export function parseDurationMs(text: string, option: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!match) throw invalidOption(option, "a duration such as 30s, 5m, 1h, 500ms or 0", text);
  const unit = match[2] ?? "s";
  const factor = unit === "ms" ? 1 : unit === "s" ? 1000 : unit === "m" ? 60_000 : 3_600_000;
  return Math.round(Number(match[1]) * factor);
}

function parseCount(value: unknown, option: string): number {
  if (value === undefined) return 1;
  const text = String(value);
  if (!/^\d+$/.test(text) || Number(text) < 1)
    throw invalidOption(option, "a whole number of at least 1", text);
  return Number(text);
}

function renderServeEvent(
  event: ServeEvent,
  isVerbose: boolean,
  renderLaunch: ReturnType<typeof createLaunchRenderer>,
): void {
  const say = (line: string) => process.stderr.write(`warmstart: ${line}\n`);
  switch (event.type) {
    case "listening":
      say(`serving on ${event.addresses.join(", ")}${event.isActivated ? " (sockets from systemd)" : ""}`);
      return;
    case "notice":
      if (isVerbose) say(event.message);
      return;
    case "warning":
      say(`warning: ${event.message}`);
      return;
    case "instance-started":
      say(`instance pid ${event.pid} serving (${event.how}, ${event.startMs} ms)`);
      return;
    case "instance-stopped":
      say(`instance pid ${event.pid} stopped (${event.why})`);
      return;
    case "instance-exited":
      say(
        `warning: instance pid ${event.pid} exited with code ${event.exitCode}; the next connection restores another`,
      );
      return;
    case "spare-ready":
      if (isVerbose) say(`spare pid ${event.pid} restored and stopped`);
      return;
    case "spare-faulted-in":
      if (isVerbose)
        say(
          `spare pid ${event.pid}: its mapped files faulted in (${(event.bytes / 1048576).toFixed(0)} MiB in ${event.ms.toFixed(0)} ms)`,
        );
      return;
    case "start-failed":
      say(
        `warning: could not start an instance: ${event.message}; trying again in ${event.retryInMs / 1000} s`,
      );
      return;
    case "draining":
      say("draining: stopping the instances");
      return;
    case "launch":
      renderLaunch(event.event);
      return;
  }
}
