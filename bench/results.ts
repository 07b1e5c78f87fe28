// The shape of bench/results/latest.json. Committed and diffed between runs, so every key is
// always present (null when it does not apply or the mode failed) and in a fixed order.
import type { InProcessFigure } from "./in-process.js";
import type { MachineInfo } from "./machine.js";
import type { Artifact, ModeName } from "./modes.js";
import type { ProcessFigure } from "./process-figures.js";
import { pairwise, type Summary, summarize } from "./stats.js";
import type { PeerName, WorkloadName } from "./workloads.js";

export interface ModeResult {
  readonly mode: ModeName;
  readonly description: string;
  /** One entry per run, in run order; null where the run failed or was skipped. */
  readonly runsMs: readonly (number | null)[];
  readonly ttfrMs: Summary | null;
  readonly artifact: Artifact | null;
  readonly error: string | null;
}

/** Each a summary of per-run values (run i of one mode against run i of the other). */
export interface Ratios {
  readonly warmOverCold: Summary | null;
  readonly warmOverBare: Summary | null;
  readonly warmOverRawCriu: Summary | null;
  /** warm − raw-criu − median(`node -e 0`), in ms: what warmstart adds beyond Node's boot. */
  readonly warmstartOverheadMs: Summary | null;
  readonly peer: PeerName | null;
  readonly warmOverPeer: Summary | null;
}

export interface WorkloadResult {
  readonly name: WorkloadName;
  readonly description: string;
  /** The GET / fingerprint every mode served (the same state, checked on every run). */
  readonly fingerprint: string | null;
  readonly snapshot: {
    readonly coldReadyMs: number;
    readonly checkpointMs: number;
    readonly imageBytes: number;
  } | null;
  readonly modes: readonly ModeResult[];
  readonly ratios: Ratios;
  /** The last measured warm launch's -v steps, ms since warmstart's process started. */
  readonly warmSteps: readonly { readonly atMs: number; readonly step: string }[];
  readonly inProcess: readonly InProcessFigure[];
  /** Set when the workload could not be benchmarked at all (build or first snapshot failed). */
  readonly error: string | null;
}

export interface BenchResults {
  readonly schemaVersion: 1;
  /** The command that produced the file, to run it again. */
  readonly command: string;
  /** `git describe --always --dirty` of the measured tree ("-dirty": uncommitted changes). */
  readonly revision: string | null;
  readonly machine: MachineInfo;
  readonly settings: {
    readonly runs: number;
    readonly quick: boolean;
    readonly workloads: readonly WorkloadName[];
    readonly pollMs: number;
  };
  readonly processes: readonly ProcessFigure[];
  readonly workloads: readonly WorkloadResult[];
  readonly crossRatios: {
    /** Large-heap Node warm TTFR over tiny Node warm TTFR: does the warm path grow with the heap? */
    readonly largeHeapWarmOverTinyWarm: Summary | null;
  };
}

export function computeCrossRatios(workloads: readonly WorkloadResult[]): BenchResults["crossRatios"] {
  const warmRuns = (name: WorkloadName) =>
    workloads.find((workload) => workload.name === name)?.modes.find((mode) => mode.mode === "warm")
      ?.runsMs ?? [];
  const largeOverTiny = pairwise(warmRuns("node-large"), warmRuns("tiny"), (large, tiny) => large / tiny);
  return { largeHeapWarmOverTinyWarm: summarize(largeOverTiny, 3) ?? null };
}

export function computeRatios(
  modes: readonly ModeResult[],
  peer: PeerName | null,
  nodeBootMs: number | null,
): Ratios {
  const runs = (mode: ModeName) => modes.find((result) => result.mode === mode)?.runsMs ?? [];
  const ratio = (mode: ModeName) =>
    summarize(
      pairwise(runs("warm"), runs(mode), (a, b) => a / b),
      3,
    ) ?? null;
  const overhead =
    nodeBootMs === null
      ? []
      : pairwise(runs("warm"), runs("raw-criu"), (warm, raw) => warm - raw - nodeBootMs);
  return {
    warmOverCold: ratio("cold"),
    warmOverBare: ratio("bare"),
    warmOverRawCriu: ratio("raw-criu"),
    warmstartOverheadMs: summarize(overhead) ?? null,
    peer,
    warmOverPeer: peer ? ratio(peer) : null,
  };
}
