import type { ParseArgsConfig } from "node:util";
import { invalidOption, WarmstartError } from "../errors.js";
import type { BenchEvent, BenchLaunch, BenchResult } from "../measure/compare-launches.js";
import type { RatioSummary, TtfrSummary } from "../measure/ttfr-stats.js";
import { formatBytes, formatCommand, renderTable } from "./format.js";
import { parseLaunchArgs } from "./run.js";

export const BENCH_USAGE = `Usage: warmstart bench [options] -- <command> [args...]

Measures how long <command> takes to answer, cold and warm: the time to first response
(TTFR), from spawning 'warmstart run' (warmstart's own startup included) to the moment the
readiness probes pass, checked from outside. A first launch takes the snapshot (as
'run --refresh': it replaces the command's snapshot in the cache); then cold launches
('run --cold --no-snapshot') and warm launches ('run') take turns. Each launch is stopped
with SIGTERM before the next starts: the app's ports must be free.

Options:
  --ready <probe>            how to tell the app is ready, as for 'warmstart run' (at least
                             one; all must pass): tcp:<port>, http://<url> (first 2xx),
                             log:<regex>, file:<path>, notify
  --ready-timeout <seconds>  a launch not ready by then fails the bench (default 60)
  --runs <n>                 launches per mode (default 5)
  --cache-dir <dir>          as for 'warmstart run'
  --input <glob>             as for 'warmstart run' (repeatable)
  --input-ignore <glob>      as for 'warmstart run' (repeatable)
  --env-ignore <NAME>        as for 'warmstart run' (repeatable)
  --json                     print the results as JSON

Prints the median, fastest and slowest TTFR of each mode and the warm / cold ratio of the
launches made side by side. A warm launch that started cold (its snapshot failed to
restore, say) is reported apart, with the reason, and not counted as warm.`;

const BENCH_FLAGS: NonNullable<ParseArgsConfig["options"]> = {
  ready: { type: "string", multiple: true, default: [] },
  "ready-timeout": { type: "string" },
  "cache-dir": { type: "string" },
  "env-ignore": { type: "string", multiple: true, default: [] },
  input: { type: "string", multiple: true, default: [] },
  "input-ignore": { type: "string", multiple: true, default: [] },
  runs: { type: "string" },
  json: { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
};

const DEFAULT_RUNS = 5;

/** `warmstart bench`: cold against warm TTFR of the user's own app. */
export async function runBenchCommand(args: string[]): Promise<number> {
  const parsed = parseLaunchArgs(args, BENCH_FLAGS, BENCH_USAGE);
  if (parsed.isHelp) {
    process.stdout.write(`${BENCH_USAGE}\n`);
    return 0;
  }
  const runs = parseRuns(parsed.values.runs);
  const { options } = parsed;
  if (options.ready.length === 0) {
    throw new WarmstartError("invalid-option", "Expected at least one --ready probe, got none.", {
      hint: "each launch is timed until its probes pass: e.g. --ready tcp:3000 or --ready http://127.0.0.1:3000/healthz",
    });
  }
  const abort = new AbortController();
  let received: NodeJS.Signals | undefined;
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(signal, () => {
      received = signal;
      abort.abort(signal);
    });
  }
  const { compareLaunches } = await import("../measure/compare-launches.js");
  let result: BenchResult;
  try {
    result = await compareLaunches({
      command: options.command,
      ready: options.ready,
      ...(options.readyTimeoutMs !== undefined ? { readyTimeoutMs: options.readyTimeoutMs } : {}),
      cacheDir: options.cacheDir,
      inputs: options.inputs,
      inputIgnore: options.inputIgnore,
      envIgnore: options.envIgnore,
      runs,
      onEvent: renderProgress,
      signal: abort.signal,
    });
  } catch (error) {
    if (received) return 128 + (received === "SIGINT" ? 2 : received === "SIGHUP" ? 1 : 15);
    throw error;
  }
  process.stdout.write(
    parsed.values.json
      ? `${JSON.stringify(toJson(result), null, 2)}\n`
      : `${renderResult(result).join("\n")}\n`,
  );
  return 0;
}

/** `--runs`: a positive integer, as typed (no 1e3, no 2.0). */
export function parseRuns(value: unknown): number {
  if (value === undefined) return DEFAULT_RUNS;
  if (typeof value !== "string" || !/^\d+$/.test(value) || Number(value) < 1) {
    throw invalidOption("--runs", "a positive integer", value);
  }
  return Number(value);
}

/** One stderr line per launch: a bench takes a while, and a slow launch shows as it happens. */
function renderProgress(event: BenchEvent): void {
  switch (event.type) {
    case "priming":
      process.stderr.write("warmstart bench: priming launch, to take the snapshot\n");
      return;
    case "primed": {
      const { report } = event;
      const size = report.imageBytes === null ? "" : `, ${formatBytes(report.imageBytes)}`;
      const took = report.checkpointMs === null ? "" : ` in ${report.checkpointMs} ms`;
      process.stderr.write(
        `warmstart bench: snapshot ${report.key?.slice(0, 12) ?? "?"} taken${took}${size} (TTFR ${formatMs(event.ttfrMs)})\n`,
      );
      return;
    }
    case "measured":
      process.stderr.write(`warmstart bench: ${describeLaunch(event.launch, event.runs)}\n`);
      return;
  }
}

function describeLaunch(launch: BenchLaunch, runs: number): string {
  const fellBack =
    launch.mode === "warm" && launch.reportedMode !== "warm"
      ? ` (started cold: ${launch.fallbackReason ?? "no reason reported"})`
      : "";
  return `${launch.mode} ${launch.run}/${runs}: ${formatMs(launch.ttfrMs)}${fellBack}`;
}

const HEADER = ["MODE", "LAUNCHES", "MEDIAN", "MIN", "MAX"] as const;
const NUMERIC_COLUMNS = new Set([1, 2, 3, 4]);

/** The text report: a table of the modes, then what the ratio says. */
export function renderResult(result: BenchResult): string[] {
  const rows: string[][] = [];
  const addRow = (name: string, summary: TtfrSummary | undefined) => {
    if (summary) {
      rows.push([
        name,
        String(summary.count),
        formatMs(summary.medianMs),
        formatMs(summary.minMs),
        formatMs(summary.maxMs),
      ]);
    }
  };
  addRow("cold", result.cold);
  addRow("warm", result.warm);
  addRow("warm, fell back to cold", result.fellBack);
  const lines = [
    `TTFR of ${formatCommand(result.command)} until ${result.probes.join(", ")}, ${result.runs} launches per mode:`,
    "",
    ...renderTable(HEADER, rows, NUMERIC_COLUMNS),
    "",
  ];
  const fellBackCount = result.fellBack?.count ?? 0;
  if (fellBackCount > 0) {
    lines.push(
      `${fellBackCount} of ${result.runs} warm launches started cold (${result.fallbackReasons.join(", ")}): they are not counted as warm.`,
    );
  }
  lines.push(describeRatio(result.warmOverCold));
  return lines;
}

function describeRatio(ratio: RatioSummary | undefined): string {
  if (!ratio) return "No warm launch was restored: there is no warm TTFR to compare.";
  const figures = `warm / cold, launch by launch: ${formatRatio(ratio.median)} [${formatRatio(ratio.min)}, ${formatRatio(ratio.max)}]`;
  if (ratio.median < 1) return `${figures}: warm is ${(1 / ratio.median).toFixed(1)}x faster.`;
  return `${figures}: warm is NOT faster than cold for this app.`;
}

/** The result with times rounded to 0.1 ms and ratios to 3 digits. */
export function toJson(result: BenchResult): Record<string, unknown> {
  const summary = (value: TtfrSummary | undefined) =>
    value
      ? {
          count: value.count,
          medianMs: round(value.medianMs, 1),
          minMs: round(value.minMs, 1),
          maxMs: round(value.maxMs, 1),
        }
      : null;
  return {
    command: result.command,
    probes: result.probes,
    cacheDir: result.cacheDir,
    runs: result.runs,
    snapshot: { ...result.snapshot, primingTtfrMs: round(result.snapshot.primingTtfrMs, 1) },
    cold: summary(result.cold),
    warm: summary(result.warm),
    fellBack: summary(result.fellBack),
    fallbackReasons: result.fallbackReasons,
    warmOverCold: result.warmOverCold
      ? {
          count: result.warmOverCold.count,
          median: round(result.warmOverCold.median, 3),
          min: round(result.warmOverCold.min, 3),
          max: round(result.warmOverCold.max, 3),
        }
      : null,
    isWarmFaster: result.isWarmFaster ?? null,
    launches: result.launches.map((launch) => ({ ...launch, ttfrMs: round(launch.ttfrMs, 1) })),
  };
}

function formatMs(ms: number): string {
  return `${Math.round(ms)} ms`;
}

function formatRatio(ratio: number): string {
  return ratio.toFixed(2);
}

function round(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}
