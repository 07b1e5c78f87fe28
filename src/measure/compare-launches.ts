// `warmstart bench`'s procedure: one launch that takes the snapshot, then cold and warm
// launches taking turns, each timed from the outside (measure-ttfr.ts), stopped, and its
// port free again before the next. A warm launch counts as warm only if it reported so.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defaultCacheDir } from "../cache/cache-dir.js";
import { type ErrorCode, invalidOption, WarmstartError } from "../errors.js";
import type { LaunchReport } from "../launch/launch.js";
import { describeProbe, parseProbe } from "../readiness/probe-spec.js";
import { measureTtfr } from "./measure-ttfr.js";
import { type RatioSummary, summarizeRatios, summarizeTtfr, type TtfrSummary } from "./ttfr-stats.js";

export interface CompareLaunchesOptions {
  /** The app's command: executable (PATH is searched) and arguments. */
  readonly command: readonly string[];
  /** Readiness probes in CLI syntax, as `warmstart run --ready` takes them. At least one. */
  readonly ready: readonly string[];
  /** Default 60 s, as for `warmstart run`. */
  readonly readyTimeoutMs?: number;
  readonly cacheDir?: string;
  readonly inputs?: readonly string[];
  readonly inputIgnore?: readonly string[];
  readonly envIgnore?: readonly string[];
  /** Launches per mode. Default 5. */
  readonly runs?: number;
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
  readonly onEvent?: (event: BenchEvent) => void;
  /** Aborting stops the launch under way and rejects. */
  readonly signal?: AbortSignal;
}

export type BenchMode = "cold" | "warm";

export interface BenchLaunch {
  /** The mode asked for: `run --cold --no-snapshot`, or `run`. */
  readonly mode: BenchMode;
  /** 1-based, per mode. */
  readonly run: number;
  readonly ttfrMs: number;
  /** The mode the launch reported (a warm launch that fell back reports cold). */
  readonly reportedMode: BenchMode;
  /** Why a warm launch started cold, as its report says (`restore-failed`, `warm-not-faster`, ...). */
  readonly fallbackReason: string | null;
  /** warmstart's own figure: from its process start to its probes passing. */
  readonly readyMs: number;
}

export interface BenchResult {
  readonly command: readonly string[];
  /** The probes, in the short form messages use (`tcp:localhost:3000`). */
  readonly probes: readonly string[];
  readonly cacheDir: string;
  readonly runs: number;
  /** The priming launch, which took the snapshot the warm launches restore. */
  readonly snapshot: {
    readonly key: string | null;
    readonly imageBytes: number | null;
    readonly checkpointMs: number | null;
    readonly primingTtfrMs: number;
  };
  /** Every measured launch, in the order they ran. */
  readonly launches: readonly BenchLaunch[];
  readonly cold: TtfrSummary | undefined;
  /** The warm launches that were restored; those that fell back are in `fellBack`. */
  readonly warm: TtfrSummary | undefined;
  readonly fellBack: TtfrSummary | undefined;
  readonly fallbackReasons: readonly string[];
  /** Warm TTFR over cold TTFR of the same run, for the runs whose warm launch was restored. */
  readonly warmOverCold: RatioSummary | undefined;
  /** Whether the median of those ratios is below 1; undefined when no warm launch was restored. */
  readonly isWarmFaster: boolean | undefined;
}

export type BenchEvent =
  | { readonly type: "priming" }
  | { readonly type: "primed"; readonly ttfrMs: number; readonly report: LaunchReport }
  | { readonly type: "measured"; readonly launch: BenchLaunch; readonly runs: number };

const DEFAULT_RUNS = 5;
const DEFAULT_READY_TIMEOUT_MS = 60_000;

/** Measures the app's time to first response cold and warm, `runs` times each, taking turns. */
export async function compareLaunches(options: CompareLaunchesOptions): Promise<BenchResult> {
  const runs = options.runs ?? DEFAULT_RUNS;
  if (!Number.isInteger(runs) || runs < 1) throw invalidOption("--runs", "a positive integer", runs);
  if (options.ready.length === 0) {
    throw new WarmstartError("invalid-option", "Expected at least one --ready probe, got none.", {
      hint: "the launches are timed until their probes pass: e.g. --ready tcp:3000 or --ready http://127.0.0.1:3000/healthz",
    });
  }
  if (options.command.length === 0) throw invalidOption("the command", "a command and its arguments", []);
  const readyTimeoutMs = options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS;
  if (!(Number.isFinite(readyTimeoutMs) && readyTimeoutMs > 0)) {
    throw invalidOption("--ready-timeout", "a positive number of seconds", readyTimeoutMs / 1000);
  }
  const cwd = options.cwd ?? process.cwd();
  const env = options.env ?? process.env;
  const probes = options.ready.map((text) => parseProbe(text, cwd));
  const cacheDir = options.cacheDir ?? defaultCacheDir(env);
  const emit = options.onEvent ?? (() => {});
  // The launch options every launch shares: the same cache key for all of them.
  const sharedArgs = [
    ...options.ready.flatMap((text) => ["--ready", text]),
    "--ready-timeout",
    String(readyTimeoutMs / 1000),
    "--cache-dir",
    cacheDir,
    ...(options.inputs ?? []).flatMap((glob) => ["--input", glob]),
    ...(options.inputIgnore ?? []).flatMap((glob) => ["--input-ignore", glob]),
    ...(options.envIgnore ?? []).flatMap((name) => ["--env-ignore", name]),
  ];
  const reportsDir = mkdtempSync(join(tmpdir(), "warmstart-bench-"));
  let launchCount = 0;
  const measure = (label: string, modeArgs: readonly string[], mayCheckpoint: boolean) =>
    measureTtfr({
      runArgs: [...modeArgs, ...sharedArgs, "--", ...options.command],
      probes,
      readyTimeoutMs,
      reportFile: join(reportsDir, `launch-${++launchCount}.jsonl`),
      mayCheckpoint,
      label,
      cwd,
      env,
      ...(options.signal ? { signal: options.signal } : {}),
    });

  try {
    emit({ type: "priming" });
    const priming = await measure("priming launch", ["--refresh"], true);
    if (priming.report.checkpoint !== "saved") throw noSnapshotError(priming.report);
    emit({ type: "primed", ttfrMs: priming.ttfrMs, report: priming.report });

    const launches: BenchLaunch[] = [];
    for (let run = 1; run <= runs; run++) {
      for (const mode of ["cold", "warm"] as const) {
        const label = `${mode} launch ${run} of ${runs}`;
        const measured =
          mode === "cold"
            ? await measure(label, ["--cold", "--no-snapshot"], false)
            : // A warm launch that falls back starts cold and snapshots again: it is left to
              // finish, so that the next warm launch has a snapshot to restore.
              await measure(label, [], true);
        const launch: BenchLaunch = {
          mode,
          run,
          ttfrMs: measured.ttfrMs,
          reportedMode: measured.report.mode,
          fallbackReason: measured.report.fallbackReason,
          readyMs: measured.report.readyMs,
        };
        launches.push(launch);
        emit({ type: "measured", launch, runs });
      }
    }
    return summarize({
      command: options.command,
      probes: probes.map(describeProbe),
      cacheDir,
      runs,
      snapshot: {
        key: priming.report.key,
        imageBytes: priming.report.imageBytes,
        checkpointMs: priming.report.checkpointMs,
        primingTtfrMs: priming.ttfrMs,
      },
      launches,
    });
  } finally {
    rmSync(reportsDir, { recursive: true, force: true });
  }
}

/** The figures of a finished bench, from its launches. */
export function summarize(
  measured: Pick<BenchResult, "command" | "probes" | "cacheDir" | "runs" | "snapshot" | "launches">,
): BenchResult {
  const { launches } = measured;
  const cold = launches.filter((launch) => launch.mode === "cold");
  const restored = launches.filter((launch) => launch.mode === "warm" && launch.reportedMode === "warm");
  const fellBack = launches.filter((launch) => launch.mode === "warm" && launch.reportedMode !== "warm");
  const pairs = restored.flatMap((warm) => {
    const coldOfRun = cold.find((launch) => launch.run === warm.run);
    return coldOfRun ? [{ numerator: warm.ttfrMs, denominator: coldOfRun.ttfrMs }] : [];
  });
  const warmOverCold = summarizeRatios(pairs);
  return {
    ...measured,
    cold: summarizeTtfr(cold.map((launch) => launch.ttfrMs)),
    warm: summarizeTtfr(restored.map((launch) => launch.ttfrMs)),
    fellBack: summarizeTtfr(fellBack.map((launch) => launch.ttfrMs)),
    fallbackReasons: [...new Set(fellBack.map((launch) => launch.fallbackReason ?? "unknown"))],
    warmOverCold,
    isWarmFaster: warmOverCold ? warmOverCold.median < 1 : undefined,
  };
}

/** The priming launch ran but left no snapshot: no launch after it could be warm. */
function noSnapshotError(report: LaunchReport): WarmstartError {
  const reason = report.fallbackReason;
  const code: ErrorCode =
    reason === "criu-missing" || reason === "criu-unusable"
      ? reason
      : reason === "cache-dir-refused" || reason === "entry-refused"
        ? "cache-refused"
        : "criu-failed";
  const why = reason ? `: ${reason}` : report.checkpoint ? ` (checkpoint ${report.checkpoint})` : "";
  return new WarmstartError(code, `The priming launch took no snapshot${why}, so no launch could be warm.`, {
    hint: "run the same command with 'warmstart run -v' to see why (and 'warmstart doctor' to check CRIU)",
    details: { fallbackReason: reason, checkpoint: report.checkpoint },
  });
}
