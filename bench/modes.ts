// The ways the benchmarks start a workload. Each mode prepares once (a snapshot, a blob, an
// archive) and then measures one launch at a time: spawn, first 2xx on GET /, stop, and wait
// until the port is free again for the next launch.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { IMAGE_FORMAT_VERSION } from "../src/cache/key.js";
import { LAZY_MIN_IMAGE_BYTES } from "../src/launch/launch.js";
import { waitForPortFree } from "./ports.js";
import { measureRawRestore, prepareKerndatCopy } from "./raw-criu.js";
import { measureTtfr, stop, type TtfrRun } from "./ttfr.js";
import { CLI, JVM_BUILD_DIR, type PeerName, ROOT, readRunShJavaFlags, type Workload } from "./workloads.js";

export const MODE_NAMES = ["bare", "cold", "warm", "raw-criu", "node-snapshot", "appcds"] as const;
export type ModeName = (typeof MODE_NAMES)[number];

export const MODE_DESCRIPTIONS: Record<ModeName, string> = {
  bare: "the app started directly, without warmstart",
  cold: "warmstart run --cold --no-snapshot",
  warm: "warmstart run, restoring the snapshot",
  "raw-criu": "the same image restored by criu alone (unshare + criu restore; lazy where warmstart is)",
  "node-snapshot": "Node startup snapshot (node --snapshot-blob)",
  appcds: "JVM AppCDS archive (-XX:SharedArchiveFile)",
};

/** One workload's state for the whole benchmark. */
export interface BenchContext {
  readonly workload: Workload;
  readonly port: number;
  readonly url: string;
  /** Private scratch directory, removed at the end. */
  readonly dir: string;
  readonly cacheDir: string;
  readonly env: NodeJS.ProcessEnv;
}

/** The cold launch that produced the cache entry the warm and raw-criu modes restore. */
export interface Snapshot {
  readonly entryDir: string;
  readonly imagesDir: string;
  readonly manifestPath: string;
  readonly key: string;
  readonly stdio: readonly string[];
  readonly imageBytes: number;
  /** Whether warmstart's default restores this image lazily; raw-criu does the same. */
  readonly isLazyRestore: boolean;
  readonly checkpointMs: number;
  readonly coldReadyMs: number;
  /** The app's answer on its first launch: every mode must serve the same state. */
  readonly fingerprint: string;
}

/** What a mode launches from, when it needs something built first. */
export interface Artifact {
  readonly kind: string;
  readonly bytes: number;
  /** How long making it took (the dump, the blob build, the training run). */
  readonly buildMs: number;
}

/** A warmstart -v line: a step and its time since warmstart's process started. */
export interface Step {
  readonly atMs: number;
  readonly step: string;
}

export interface Measured {
  readonly ttfrMs: number;
  /** What GET / answered: the same state in every mode, or the run does not count. */
  readonly fingerprint: string;
  /** warmstart launches only. */
  readonly steps?: readonly Step[];
}

export interface Mode {
  readonly name: ModeName;
  prepare(ctx: BenchContext, snapshot: Snapshot): Promise<Artifact | null>;
  measure(ctx: BenchContext): Promise<Measured>;
}

export function modesFor(workload: Workload, snapshot: Snapshot): Mode[] {
  const modes: Mode[] = [bare, cold, warm(snapshot), rawCriu(snapshot)];
  const peers: Record<PeerName, () => Mode> = { "node-snapshot": nodeSnapshot, appcds };
  if (workload.peer) modes.push(peers[workload.peer]());
  return modes;
}

const snapshotArtifact = async (_ctx: BenchContext, snapshot: Snapshot): Promise<Artifact> => ({
  kind: `CRIU image (${snapshot.isLazyRestore ? "lazy" : "eager"} restore)`,
  bytes: snapshot.imageBytes,
  buildMs: snapshot.checkpointMs,
});

const bare: Mode = {
  name: "bare",
  prepare: async () => null,
  measure: (ctx) => measureAndStop(ctx, [...ctx.workload.command]),
};

const cold: Mode = {
  name: "cold",
  prepare: async () => null,
  measure: (ctx) => measureWarmstart(ctx, ["--cold", "--no-snapshot"], "cold"),
};

/**
 * warmstart launches an entry cold once a warm launch of it was not faster than its first,
 * cold one (the entry's stats.json). One slow restore on a busy machine would then turn every
 * later "warm" run into a cold one: the stats are removed before each warm launch, so each
 * measures the restore.
 */
function warm(snapshot: Snapshot): Mode {
  return {
    name: "warm",
    prepare: snapshotArtifact,
    measure: (ctx) => {
      rmSync(join(snapshot.entryDir, "stats.json"), { force: true });
      return measureWarmstart(ctx, [], "warm");
    },
  };
}

function rawCriu(snapshot: Snapshot): Mode {
  return {
    name: "raw-criu",
    prepare: snapshotArtifact,
    async measure(ctx) {
      const run = await measureRawRestore({
        entry: snapshot,
        isLazy: snapshot.isLazyRestore,
        scratchDir: ctx.dir,
        url: ctx.url,
        timeoutMs: ctx.workload.timeoutMs,
      });
      await waitForPortFree(ctx.port);
      return { ttfrMs: run.ttfrMs, fingerprint: String(run.body.fingerprint) };
    },
  };
}

/** Node's own answer to slow startups: the heap built once, deserialized on every launch. */
function nodeSnapshot(): Mode {
  let blob = "";
  return {
    name: "node-snapshot",
    async prepare(ctx) {
      blob = join(ctx.dir, "app.blob");
      const app = join(ROOT, "bench/peers/node-snapshot-app.js");
      const startedMs = performance.now();
      const result = spawnSync("node", ["--snapshot-blob", blob, "--build-snapshot", app], {
        env: ctx.env,
        encoding: "utf8",
        timeout: 300_000,
      });
      if (result.status !== 0) {
        throw new Error(`building the snapshot blob failed: ${result.stderr || result.error?.message}`);
      }
      return {
        kind: "V8 startup snapshot",
        bytes: statSync(blob).size,
        buildMs: performance.now() - startedMs,
      };
    },
    measure: (ctx) => measureAndStop(ctx, ["node", "--snapshot-blob", blob]),
  };
}

/**
 * The JVM's answer: class metadata archived by a training run (the dynamic archive is written
 * when the JVM exits, SIGTERM included) and mapped by later runs. CDS only archives classes
 * from JAR files, so the classes are packed into one; the flags are run.sh's.
 */
function appcds(): Mode {
  let java: string[] = [];
  return {
    name: "appcds",
    async prepare(ctx) {
      const jar = join(ctx.dir, "app.jar");
      const archive = join(ctx.dir, "app.jsa");
      const packed = spawnSync("jar", ["cf", jar, "-C", JVM_BUILD_DIR, "."], {
        encoding: "utf8",
        timeout: 60_000,
      });
      if (packed.status !== 0) throw new Error(`jar failed: ${packed.stderr || packed.error?.message}`);
      const flags = readRunShJavaFlags();
      const startedMs = performance.now();
      const training = await measureTtfr(
        ["java", ...flags, `-XX:ArchiveClassesAtExit=${archive}`, "-cp", jar, "SlowServer"],
        ctx.url,
        { env: ctx.env, cwd: ROOT, timeoutMs: ctx.workload.timeoutMs },
      );
      await stop(training.child);
      await waitForPortFree(ctx.port);
      if (!existsSync(archive))
        throw new Error(`the training run wrote no ${archive}:\n${training.stderr()}`);
      java = ["java", ...flags, `-XX:SharedArchiveFile=${archive}`, "-cp", jar, "SlowServer"];
      return { kind: "CDS archive", bytes: statSync(archive).size, buildMs: performance.now() - startedMs };
    },
    measure: (ctx) => measureAndStop(ctx, java),
  };
}

async function measureAndStop(ctx: BenchContext, command: readonly string[]): Promise<Measured> {
  const run = await measureTtfr(command, ctx.url, {
    env: ctx.env,
    cwd: ROOT,
    timeoutMs: ctx.workload.timeoutMs,
  });
  await stop(run.child);
  await waitForPortFree(ctx.port);
  return { ttfrMs: run.ttfrMs, fingerprint: String(run.body.fingerprint) };
}

export function warmstartCommand(ctx: BenchContext, flags: readonly string[], reportPath: string): string[] {
  return [
    ...["node", CLI, "run", "--ready", `tcp:127.0.0.1:${ctx.port}`],
    ...["--cache-dir", ctx.cacheDir, "--report", reportPath],
    // -v: the steps with their times, and the "ready" line stopWarmstart waits for.
    "-v",
    ...flags,
    "--",
    ...ctx.workload.command,
  ];
}

/** A warmstart launch that must be of the expected mode: a warm run that fell back to cold is an error. */
async function measureWarmstart(
  ctx: BenchContext,
  flags: readonly string[],
  expected: "cold" | "warm",
): Promise<Measured> {
  const reportPath = join(ctx.dir, `${expected}.jsonl`);
  const run = await measureTtfr(warmstartCommand(ctx, flags, reportPath), ctx.url, {
    env: ctx.env,
    cwd: ROOT,
    timeoutMs: ctx.workload.timeoutMs,
  });
  await stopWarmstart(run, ctx.workload.timeoutMs);
  await waitForPortFree(ctx.port);
  const report = readLastReport(reportPath);
  if (report.mode !== expected) {
    throw new Error(
      `expected a ${expected} launch, warmstart reported ${String(report.mode)} (fallback: ${String(report.fallbackReason)}):\n${run.stderr()}`,
    );
  }
  return { ttfrMs: run.ttfrMs, fingerprint: String(run.body.fingerprint), steps: parseSteps(run.stderr()) };
}

/**
 * The app answers before warmstart has finished its own post-restore readiness check, and a
 * SIGTERM that arrives before warmstart counts the launch as ready is not forwarded to a
 * restored app (warmstart then waits on an app that never stops). So: wait for -v's "ready"
 * line, then SIGTERM.
 */
async function stopWarmstart(run: TtfrRun, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!/\] ready, /.test(run.stderr()) && run.child.exitCode === null && performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  await stop(run.child);
}

/** -v's lines: `warmstart: [123 ms] restoring the snapshot`, times since warmstart's process started. */
function parseSteps(stderr: string): Step[] {
  return [...stderr.matchAll(/^warmstart: \[(\d+) ms\] (.*)$/gm)].map((match) => ({
    atMs: Number(match[1]),
    step: match[2] ?? "",
  }));
}

/**
 * The first launch: cold, then checkpointed while it serves. Waits for the entry to be
 * committed before stopping the app, and reads the entry the way a restore would.
 */
export async function makeSnapshot(ctx: BenchContext): Promise<Snapshot> {
  const reportPath = join(ctx.dir, "snapshot.jsonl");
  let run: TtfrRun | undefined;
  try {
    run = await measureTtfr(warmstartCommand(ctx, [], reportPath), ctx.url, {
      env: ctx.env,
      cwd: ROOT,
      timeoutMs: ctx.workload.timeoutMs,
    });
    const entryDir = await waitForEntry(join(ctx.cacheDir, `v${IMAGE_FORMAT_VERSION}`), 120_000);
    await stopWarmstart(run, ctx.workload.timeoutMs);
    await prepareKerndatCopy(ctx.cacheDir, ctx.env);
    await waitForPortFree(ctx.port);
    const report = readLastReport(reportPath);
    if (report.checkpoint !== "saved") {
      throw new Error(`the first launch's checkpoint was ${String(report.checkpoint)}:\n${run.stderr()}`);
    }
    const manifestPath = join(entryDir, "manifest.json");
    const manifest = JSON.parse(readFileSync(manifestPath, "utf8")) as { key: string; stdio: string[] };
    const imageBytes = Number(report.imageBytes);
    return {
      entryDir,
      imagesDir: join(entryDir, "images"),
      manifestPath,
      key: manifest.key,
      stdio: manifest.stdio,
      imageBytes,
      isLazyRestore: imageBytes >= LAZY_MIN_IMAGE_BYTES,
      checkpointMs: Number(report.checkpointMs),
      coldReadyMs: Number(report.readyMs),
      fingerprint: String(run.body.fingerprint),
    };
  } finally {
    if (run) await stop(run.child);
  }
}

/** A committed entry is a directory named by its key; pending dumps and the rest are named otherwise. */
async function waitForEntry(root: string, timeoutMs: number): Promise<string> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    const names = existsSync(root) ? readdirSync(root).filter((name) => /^[0-9a-f]{64}$/.test(name)) : [];
    if (names[0]) return join(root, names[0]);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`no cache entry appeared under ${root} within ${timeoutMs} ms`);
}

function readLastReport(path: string): Record<string, unknown> {
  const lines = readFileSync(path, "utf8").trim().split("\n");
  return JSON.parse(lines.at(-1) ?? "{}") as Record<string, unknown>;
}
