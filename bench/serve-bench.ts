// `npm run bench:serve`: issue 13's benchmarks for `warmstart serve`, on the three workloads.
//
// - first response: from a client's connect to its first answer with no instance running,
//   through serve (restore on the connection) and with --spare (a stopped copy resumed),
//   against raw CRIU restoring the same image with warmstart's own restore command line
//   (bench/raw-criu.ts), and --spare against raw CRIU's restore left stopped and sent SIGCONT
//   at the connect (its floor), runs taking turns;
// - steady state (tiny): autocannon, 100 connections, 10 s, against the app started directly
//   and through serve, three runs each taking turns, medians;
// - burst: 200 connections at once with no instance running: how many are answered, refused,
//   reset.
//
// Options: --runs N (default 5), --workloads tiny,node-large,jvm, --skip-steady, --skip-burst.
// Writes bench/results/serve-latest.json and prints a markdown summary.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import autocannon from "autocannon";
import { IMAGE_FORMAT_VERSION } from "../src/cache/key.js";
import { formatWithBiome } from "./format-results.js";
import { describeMachine } from "./machine.js";
import { findFreePort, waitForPortFree } from "./ports.js";
import { measureRawRestore, measureRawSpare, prepareKerndatCopy } from "./raw-criu.js";
import { type Summary, summarize } from "./stats.js";
import { CLI, ROOT, WORKLOADS, type Workload, type WorkloadName } from "./workloads.js";

interface FirstResponse {
  readonly workload: WorkloadName;
  readonly rawCriuMs: number[];
  readonly serveMs: number[];
  readonly spareMs: number[];
  /** CRIU alone, the restore left stopped, SIGCONT at the connect: the floor of --spare. */
  readonly rawSpareMs: number[];
}

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "5" },
    workloads: { type: "string", default: "tiny,node-large,jvm" },
    "skip-steady": { type: "boolean", default: false },
    "skip-burst": { type: "boolean", default: false },
    // Without the in-app runtime (no reseed handshake at restore): what the handshake costs.
    "no-runtime": { type: "boolean", default: false },
  },
});
const RUNS = Number(values.runs);
const NAMES = String(values.workloads).split(",") as WorkloadName[];
const IDLE = "400ms";
const RUNTIME_FLAGS = values["no-runtime"] ? ["--no-runtime"] : [];

/** A `warmstart serve` process, its stderr collected. */
class ServeProcess {
  readonly child: ChildProcess;
  stderr = "";

  constructor(cacheDir: string, port: number, workload: Workload, extra: readonly string[]) {
    this.child = spawn(
      process.execPath,
      [
        CLI,
        "serve",
        "-v",
        "--cache-dir",
        cacheDir,
        "--listen",
        listenOf(workload, port),
        ...RUNTIME_FLAGS,
        ...extra,
        "--",
        ...workload.command,
      ],
      {
        cwd: ROOT,
        env: { ...process.env, ...workload.env, PORT: String(port) },
        stdio: ["ignore", "ignore", "pipe"],
      },
    );
    this.child.stderr?.on("data", (chunk) => {
      this.stderr += chunk;
    });
  }

  count(pattern: RegExp): number {
    return [...this.stderr.matchAll(new RegExp(pattern, "g"))].length;
  }

  async until(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (!condition()) {
      if (performance.now() > deadline || this.child.exitCode !== null)
        throw new Error(`serve: no ${what} within ${timeoutMs} ms:\n${this.stderr.slice(-3000)}`);
      await sleep(10);
    }
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const gone = new Promise((resolve) => this.child.once("exit", resolve));
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 60_000);
    await gone;
    clearTimeout(timer);
  }
}

/** Java listens on "127.0.0.1" through an IPv6 socket (dual-stack): serve must hold that one. */
function listenOf(workload: Workload, port: number): string {
  return workload.name === "jvm" ? `[::ffff:127.0.0.1]:${port}` : `127.0.0.1:${port}`;
}

/** One GET on its own connection: connect to the end of the answer. Throws on refusal or reset. */
function timeGet(port: number, timeoutMs = 120_000): Promise<number> {
  return new Promise((resolve, reject) => {
    const startedMs = performance.now();
    const req = request(
      { host: "127.0.0.1", port, path: "/", agent: false, headers: { connection: "close" } },
      (res) => {
        res.resume();
        res.on("error", reject);
        res.on("end", () =>
          res.statusCode === 200
            ? resolve(performance.now() - startedMs)
            : reject(new Error(`status ${res.statusCode}`)),
        );
      },
    );
    req.on("error", reject);
    req.setTimeout(timeoutMs, () => req.destroy(new Error("timeout")));
    req.end();
  });
}

/** A snapshot of the workload through `warmstart run`, as a user's first launch takes it. */
async function takeSnapshot(cacheDir: string, port: number, workload: Workload): Promise<string> {
  const run = spawn(
    process.execPath,
    [
      CLI,
      "run",
      "-v",
      "--cache-dir",
      cacheDir,
      // An http probe: the app has answered a request before its checkpoint, so the code
      // that answers is compiled in the image (a Node server's first request compiles
      // ~20-30 ms of it), as it is in an app that served before its snapshot.
      "--ready",
      `http://127.0.0.1:${port}/`,
      ...RUNTIME_FLAGS,
      "--",
      ...workload.command,
    ],
    {
      cwd: ROOT,
      env: { ...process.env, ...workload.env, PORT: String(port) },
      stdio: ["ignore", "ignore", "pipe"],
    },
  );
  let stderr = "";
  run.stderr?.on("data", (chunk) => {
    stderr += chunk;
  });
  const deadline = performance.now() + 180_000;
  while (!/snapshot saved/.test(stderr)) {
    if (performance.now() > deadline || run.exitCode !== null) throw new Error(`no snapshot:\n${stderr}`);
    await sleep(50);
  }
  const gone = new Promise((resolve) => run.once("exit", resolve));
  run.kill("SIGTERM");
  await gone;
  await waitForPortFree(port, 30_000);
  await prepareKerndatCopy(cacheDir, process.env);
  const root = join(cacheDir, `v${IMAGE_FORMAT_VERSION}`);
  const key = readdirSync(root).find((name) => !name.startsWith("."));
  if (!key) throw new Error("the snapshot did not land");
  return join(root, key);
}

async function measureFirstResponses(workload: Workload): Promise<FirstResponse> {
  const cacheDir = mkdtempSync(join(tmpdir(), "warmstart-serve-bench-"));
  const port = await findFreePort();
  try {
    const entryDir = await takeSnapshot(cacheDir, port, workload);
    process.stderr.write(`${workload.name}: snapshot taken\n`);
    const manifest = JSON.parse(readFileSync(join(entryDir, "manifest.json"), "utf8")) as {
      stdio: string[];
      imageBytes: number;
      pid: number;
    };
    const isLazy = manifest.imageBytes >= 100 * 1024 * 1024;
    const rawCriuMs: number[] = [];
    const serveMs: number[] = [];
    const spareMs: number[] = [];
    const rawSpareMs: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      const scratch = join(cacheDir, "scratch");
      mkdirSync(scratch, { recursive: true });
      const raw = {
        entry: { imagesDir: join(entryDir, "images"), stdio: manifest.stdio },
        isLazy,
        scratchDir: scratch,
        url: `http://127.0.0.1:${port}/`,
        timeoutMs: workload.timeoutMs,
      };
      rawCriuMs.push((await measureRawRestore(raw)).ttfrMs);
      process.stderr.write(`${workload.name}: raw-criu ${rawCriuMs.at(-1)?.toFixed(1)} ms\n`);
      await waitForPortFree(port, 30_000);
      serveMs.push(await measureServe(cacheDir, port, workload, []));
      spareMs.push(await measureServe(cacheDir, port, workload, ["--spare"]));
      rawSpareMs.push(await measureRawSpare({ ...raw, dumpedPid: manifest.pid }));
      await waitForPortFree(port, 30_000);
      process.stderr.write(
        `${workload.name} run ${run + 1}: raw-criu ${rawCriuMs.at(-1)?.toFixed(1)} ms, serve ${serveMs.at(-1)?.toFixed(1)} ms, spare ${spareMs.at(-1)?.toFixed(1)} ms, raw spare ${rawSpareMs.at(-1)?.toFixed(1)} ms\n`,
      );
    }
    return { workload: workload.name, rawCriuMs, serveMs, spareMs, rawSpareMs };
  } finally {
    rmSync(cacheDir, { recursive: true, force: true });
  }
}

/**
 * A resident serve with no instance running: one connection, the time to its answer. serve
 * has restored (or resumed) and stopped an instance once before, as a long-lived serve has.
 */
async function measureServe(
  cacheDir: string,
  port: number,
  workload: Workload,
  extra: readonly string[],
): Promise<number> {
  const serve = new ServeProcess(cacheDir, port, workload, ["--idle", IDLE, ...extra]);
  const isSpare = extra.includes("--spare");
  const started = () => serve.count(/serving \((restored|resumed)/);
  try {
    await serve.until(() => /serving on/.test(serve.stderr), 30_000, "front");
    for (let round = 1; round <= 2; round++) {
      if (isSpare)
        await serve.until(() => serve.count(/restored and stopped/) >= round, workload.timeoutMs, "spare");
      await serve.until(() => serve.count(/stopped \(idle\)/) >= round - 1, 30_000, "idle stop");
      // Let the last restore settle (page cache, CPU), as a user's would have.
      await sleep(500);
      const ms = await timeGet(port);
      await serve.until(() => started() >= round, 10_000, "instance");
      if (round === 2) {
        if (started() !== 2)
          throw new Error(`serve did not start one instance per connection:\n${serve.stderr}`);
        return ms;
      }
    }
    throw new Error("unreachable");
  } finally {
    await serve.stop();
    await waitForPortFree(port, 30_000);
  }
}

interface SteadyRun {
  readonly requestsPerSecond: number;
  readonly p99Ms: number;
  /** Failed requests (refused, reset, timed out) and non-2xx answers: a run with any is not a measure of the app. */
  readonly errors: number;
  readonly non2xx: number;
}

async function cannon(port: number): Promise<SteadyRun> {
  const result = await autocannon({ url: `http://127.0.0.1:${port}/`, connections: 100, duration: 10 });
  return {
    requestsPerSecond: result.requests.average,
    p99Ms: result.latency.p99,
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx,
  };
}

async function measureSteadyState(): Promise<{ direct: SteadyRun[]; serve: SteadyRun[] }> {
  const workload = WORKLOADS.find((candidate) => candidate.name === "tiny");
  if (!workload) throw new Error("no tiny workload");
  const cacheDir = mkdtempSync(join(tmpdir(), "warmstart-serve-bench-"));
  const port = await findFreePort();
  const direct: SteadyRun[] = [];
  const through: SteadyRun[] = [];
  try {
    await takeSnapshot(cacheDir, port, workload);
    for (let run = 0; run < 3; run++) {
      const app = spawn(workload.command[0] ?? "node", workload.command.slice(1), {
        cwd: ROOT,
        env: { ...process.env, PORT: String(port) },
        stdio: "ignore",
      });
      await waitUntilAnswers(port);
      direct.push(await cannon(port));
      const gone = new Promise((resolve) => app.once("exit", resolve));
      app.kill("SIGTERM");
      await gone;
      await waitForPortFree(port, 30_000);
      const serve = new ServeProcess(cacheDir, port, workload, ["--idle", "0"]);
      try {
        await serve.until(() => /serving on/.test(serve.stderr), 30_000, "front");
        await timeGet(port);
        through.push(await cannon(port));
      } finally {
        await serve.stop();
        await waitForPortFree(port, 30_000);
      }
      process.stderr.write(
        `steady run ${run + 1}: direct ${describeSteady(direct.at(-1))}, serve ${describeSteady(through.at(-1))}\n`,
      );
    }
    return { direct, serve: through };
  } finally {
    rmSync(cacheDir, { recursive: true, force: true });
  }
}

function describeSteady(run: SteadyRun | undefined): string {
  if (!run) return "-";
  const failures = run.errors + run.non2xx > 0 ? ` (${run.errors} errors, ${run.non2xx} non-2xx)` : "";
  return `${run.requestsPerSecond} req/s p99 ${run.p99Ms} ms${failures}`;
}

async function waitUntilAnswers(port: number): Promise<void> {
  for (let i = 0; i < 3000; i++) {
    try {
      await timeGet(port, 1000);
      return;
    } catch {
      await sleep(10);
    }
  }
  throw new Error(`nothing answers on ${port}`);
}

interface BurstResult {
  readonly workload: WorkloadName;
  readonly answered: number;
  readonly failed: Record<string, number>;
  readonly lastAnswerMs: number;
}

/** 200 connections at once, no instance running. */
async function measureBurst(workload: Workload): Promise<BurstResult> {
  const cacheDir = mkdtempSync(join(tmpdir(), "warmstart-serve-bench-"));
  const port = await findFreePort();
  try {
    await takeSnapshot(cacheDir, port, workload);
    const serve = new ServeProcess(cacheDir, port, workload, ["--idle", "0"]);
    try {
      await serve.until(() => /serving on/.test(serve.stderr), 30_000, "front");
      const outcomes = await Promise.all(
        Array.from({ length: 200 }, () =>
          timeGet(port).then(
            (ms) => ({ ms, error: undefined }),
            (error: NodeJS.ErrnoException) => ({ ms: 0, error: error.code ?? error.message }),
          ),
        ),
      );
      const failed: Record<string, number> = {};
      for (const outcome of outcomes)
        if (outcome.error) failed[outcome.error] = (failed[outcome.error] ?? 0) + 1;
      return {
        workload: workload.name,
        answered: outcomes.filter((outcome) => !outcome.error).length,
        failed,
        lastAnswerMs: Math.round(Math.max(...outcomes.map((outcome) => outcome.ms))),
      };
    } finally {
      await serve.stop();
      await waitForPortFree(port, 30_000);
    }
  } finally {
    rmSync(cacheDir, { recursive: true, force: true });
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function line(name: string, summary: Summary | undefined): string {
  return summary ? `${name} ${summary.median} ms (min ${summary.min}, max ${summary.max})` : `${name} -`;
}

async function main(): Promise<void> {
  const machine = describeMachine();
  const workloads = WORKLOADS.filter((workload) => NAMES.includes(workload.name));
  for (const workload of workloads) workload.prepare();
  const first: FirstResponse[] = [];
  for (const workload of workloads) first.push(await measureFirstResponses(workload));
  const steady = values["skip-steady"] ? undefined : await measureSteadyState();
  const bursts: BurstResult[] = [];
  if (!values["skip-burst"]) for (const workload of workloads) bursts.push(await measureBurst(workload));
  const results = { machine, runs: RUNS, first, steady, bursts };
  mkdirSync(join(ROOT, "bench/results"), { recursive: true });
  const resultsPath = join(ROOT, "bench/results/serve-latest.json");
  writeFileSync(resultsPath, `${JSON.stringify(results, null, 2)}\n`);
  formatWithBiome([resultsPath]);
  const out: string[] = [
    `Machine: ${machine.cpuModel}, ${machine.nproc} CPUs, load ${machine.loadAverage}, ${machine.date}`,
  ];
  for (const result of first) {
    const diffs = result.serveMs.map((ms, i) => ms - (result.rawCriuMs[i] ?? Number.NaN));
    out.push(
      `${result.workload}: ${line("raw-criu", summarize(result.rawCriuMs))}; ${line("serve", summarize(result.serveMs))}; ${line("serve - raw-criu (side by side)", summarize(diffs))}; ${line("--spare", summarize(result.spareMs))}; ${line("raw-criu left stopped, SIGCONT at the connect", summarize(result.rawSpareMs))}`,
    );
  }
  if (steady) {
    const median = (runs: SteadyRun[], pick: (run: SteadyRun) => number) =>
      summarize(runs.map(pick))?.median ?? 0;
    const directRps = median(steady.direct, (run) => run.requestsPerSecond);
    const serveRps = median(steady.serve, (run) => run.requestsPerSecond);
    const failures = [...steady.direct, ...steady.serve].reduce(
      (sum, run) => sum + run.errors + run.non2xx,
      0,
    );
    out.push(
      `steady (tiny, 100 connections, 10 s, median of 3): ${failures} failed requests in all runs; direct ${directRps} req/s p99 ${median(steady.direct, (run) => run.p99Ms)} ms; through serve ${serveRps} req/s p99 ${median(steady.serve, (run) => run.p99Ms)} ms; ratio ${(serveRps / directRps).toFixed(3)}`,
    );
  }
  for (const burst of bursts) {
    out.push(
      `burst of 200 (${burst.workload}): ${burst.answered} answered, failed ${JSON.stringify(burst.failed)}, last answer after ${burst.lastAnswerMs} ms`,
    );
  }
  process.stdout.write(`${out.join("\n")}\n`);
}

await main();
