// `npm run bench [-- --runs N --workloads tiny,node-large,jvm --quick]`: time to first
// response of each workload started bare, cold through warmstart, warm (restored by
// warmstart), restored by CRIU alone, and by the peer a user would pick instead; plus the
// fixed costs of a warm launch. Writes bench/results/latest.{json,md} and ttfr.svg
// (--quick: quick.*, gitignored).
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { renderChart } from "./chart.js";
import { formatWithBiome } from "./format-results.js";
import { measureInProcess } from "./in-process.js";
import { describeMachine } from "./machine.js";
import {
  type Artifact,
  type BenchContext,
  MODE_DESCRIPTIONS,
  type ModeName,
  makeSnapshot,
  modesFor,
  type Step,
} from "./modes.js";
import { findFreePort } from "./ports.js";
import { measureProcesses } from "./process-figures.js";
import { renderMarkdown } from "./report.js";
import {
  type BenchResults,
  computeCrossRatios,
  computeRatios,
  type ModeResult,
  type WorkloadResult,
} from "./results.js";
import { summarize } from "./stats.js";
import { liveChildren, POLL_MS } from "./ttfr.js";
import { ROOT, WORKLOAD_NAMES, WORKLOADS, type Workload, type WorkloadName } from "./workloads.js";

interface BenchOptions {
  readonly runs: number;
  readonly workloads: readonly WorkloadName[];
  readonly isQuick: boolean;
}

function parseOptions(argv: string[]): BenchOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      runs: { type: "string" },
      workloads: { type: "string", default: WORKLOAD_NAMES.join(",") },
      quick: { type: "boolean", default: false },
    },
    strict: true,
  });
  const isQuick = values.quick;
  const runs = Number(values.runs ?? (isQuick ? 2 : 5));
  if (!Number.isInteger(runs) || runs < 1) {
    throw new Error(`Expected --runs to be a positive integer, got ${JSON.stringify(values.runs)}.`);
  }
  const workloads = values.workloads.split(",").filter(Boolean);
  for (const name of workloads) {
    if (!(WORKLOAD_NAMES as readonly string[]).includes(name)) {
      throw new Error(
        `Expected --workloads to list ${WORKLOAD_NAMES.join(", ")}, got ${JSON.stringify(name)}.`,
      );
    }
  }
  return { runs, workloads: workloads as WorkloadName[], isQuick };
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const options = parseOptions(argv);
  const outDir = join(ROOT, "bench/results");
  const baseName = options.isQuick ? "quick" : "latest";
  const scratch = mkdtempSync(join(tmpdir(), "warmstart-bench-"));
  const cleanUp = () => {
    for (const child of liveChildren) child.kill("SIGKILL");
    rmSync(scratch, { recursive: true, force: true });
  };
  process.once("exit", cleanUp);
  for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => process.exit(130));
  // Every launch has its own timeout; this bounds the whole run should something hang between them.
  const overallMs = (10 + options.runs * options.workloads.length * 2) * 60_000;
  setTimeout(() => {
    process.stderr.write(`bench: still running after ${overallMs / 60_000} min, giving up\n`);
    process.exit(124);
  }, overallMs).unref();

  const machine = describeMachine();
  log(`bench: ${machine.cpuModel}, ${machine.nproc} CPUs, Linux ${machine.kernel}, Node ${machine.node}`);
  const processes = await measureProcesses(options.isQuick ? 3 : Math.max(10, options.runs));
  for (const figure of processes) log(`  ${figure.name}: ${figure.ms?.median ?? figure.error} ms`);
  const nodeBootMs = processes.find((figure) => figure.name === "node -e 0")?.ms?.median ?? null;

  const workloads: WorkloadResult[] = [];
  for (const name of options.workloads) {
    const workload = WORKLOADS.find((candidate) => candidate.name === name);
    if (workload) workloads.push(await benchWorkload(workload, options, scratch, nodeBootMs));
  }
  const results: BenchResults = {
    schemaVersion: 1,
    command: ["npm run bench", ...(argv.length > 0 ? ["--", ...argv] : [])].join(" "),
    revision: describeRevision(),
    machine,
    settings: { runs: options.runs, quick: options.isQuick, workloads: options.workloads, pollMs: POLL_MS },
    processes,
    workloads,
    crossRatios: computeCrossRatios(workloads),
  };
  mkdirSync(outDir, { recursive: true });
  const written = [
    writeOutput(join(outDir, `${baseName}.json`), `${JSON.stringify(results, null, 2)}\n`),
    writeOutput(join(outDir, `${baseName}.md`), renderMarkdown(results)),
  ];
  writeOutput(join(outDir, baseName === "latest" ? "ttfr.svg" : `${baseName}.svg`), renderChart(results));
  formatWithBiome(written);
  log(`\n${renderMarkdown(results)}`);
}

/** One workload: build, first snapshot, each mode's preparation, then the runs, modes taking turns. */
async function benchWorkload(
  workload: Workload,
  options: BenchOptions,
  scratch: string,
  nodeBootMs: number | null,
): Promise<WorkloadResult> {
  log(`\n${workload.name}: ${workload.description}`);
  const dir = mkdtempSync(join(scratch, `${workload.name}-`));
  const port = await findFreePort();
  const ctx: BenchContext = {
    workload,
    port,
    url: `http://127.0.0.1:${port}/`,
    dir,
    cacheDir: join(dir, "cache"),
    env: { ...process.env, PORT: String(port), ...workload.env },
  };
  const failed = (error: unknown): WorkloadResult => ({
    name: workload.name,
    description: workload.description,
    fingerprint: null,
    snapshot: null,
    modes: [],
    ratios: computeRatios([], workload.peer, nodeBootMs),
    warmSteps: [],
    inProcess: [],
    error: (error as Error).message,
  });
  let snapshot: Awaited<ReturnType<typeof makeSnapshot>>;
  try {
    workload.prepare();
    snapshot = await makeSnapshot(ctx);
  } catch (error) {
    log(`  failed: ${(error as Error).message}`);
    return failed(error);
  }
  log(`  snapshot: ${(snapshot.imageBytes / 1e6).toFixed(1)} MB, dump ${snapshot.checkpointMs} ms`);

  const modes = modesFor(workload, snapshot);
  const state = new Map<
    ModeName,
    { runs: (number | null)[]; artifact: Artifact | null; error: string | null }
  >();
  for (const mode of modes) {
    try {
      state.set(mode.name, { runs: [], artifact: await mode.prepare(ctx, snapshot), error: null });
    } catch (error) {
      state.set(mode.name, { runs: [], artifact: null, error: `prepare: ${(error as Error).message}` });
    }
  }
  let warmSteps: readonly Step[] = [];
  for (let run = 0; run < options.runs; run++) {
    const line: string[] = [];
    for (const mode of modes) {
      const entry = state.get(mode.name);
      if (!entry) continue;
      if (entry.error) {
        entry.runs.push(null);
        continue;
      }
      try {
        const measured = await mode.measure(ctx);
        if (measured.fingerprint !== snapshot.fingerprint) {
          throw new Error(`served fingerprint ${measured.fingerprint}, the app's is ${snapshot.fingerprint}`);
        }
        entry.runs.push(Math.round(measured.ttfrMs * 10) / 10);
        if (mode.name === "warm" && measured.steps) warmSteps = measured.steps;
        line.push(`${mode.name} ${Math.round(measured.ttfrMs)}`);
      } catch (error) {
        entry.error = `run ${run + 1}: ${(error as Error).message}`;
        entry.runs.push(null);
        line.push(`${mode.name} FAILED`);
      }
    }
    log(`  run ${run + 1}/${options.runs}: ${line.join(", ")} (ms)`);
  }
  const modeResults: ModeResult[] = modes.map((mode) => {
    const entry = state.get(mode.name) ?? { runs: [], artifact: null, error: "never ran" };
    return {
      mode: mode.name,
      description: MODE_DESCRIPTIONS[mode.name],
      runsMs: entry.runs,
      ttfrMs: summarize(entry.runs.filter((ms): ms is number => ms !== null)) ?? null,
      artifact: entry.artifact && {
        kind: entry.artifact.kind,
        bytes: entry.artifact.bytes,
        buildMs: Math.round(entry.artifact.buildMs),
      },
      error: entry.error,
    };
  });
  for (const mode of modeResults) if (mode.error) log(`  ${mode.mode} failed: ${mode.error}`);

  let inProcess: WorkloadResult["inProcess"] = [];
  try {
    inProcess = await measureInProcess(ctx, snapshot, options.isQuick ? 100 : 1000);
  } catch (error) {
    log(`  in-process figures failed: ${(error as Error).message}`);
  }
  rmSync(dir, { recursive: true, force: true });
  return {
    name: workload.name,
    description: workload.description,
    fingerprint: snapshot.fingerprint,
    snapshot: {
      coldReadyMs: snapshot.coldReadyMs,
      checkpointMs: snapshot.checkpointMs,
      imageBytes: snapshot.imageBytes,
    },
    modes: modeResults,
    ratios: computeRatios(modeResults, workload.peer, nodeBootMs),
    warmSteps,
    inProcess,
    error: null,
  };
}

function describeRevision(): string | null {
  const git = spawnSync("git", ["describe", "--always", "--dirty"], {
    cwd: ROOT,
    encoding: "utf8",
    timeout: 10_000,
  });
  return git.status === 0 ? git.stdout.trim() : null;
}

function writeOutput(path: string, text: string): string {
  writeFileSync(path, text);
  return path;
}

function log(text: string): void {
  process.stdout.write(`${text}\n`);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`bench: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
