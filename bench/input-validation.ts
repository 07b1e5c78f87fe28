// `npm run bench:inputs`: what checking a snapshot's discovered inputs costs a warm launch
// (issue 10's target: at most 5 ms median for 2,000 files).
// 1. 2,000 files, as a recording would have found them: findChangedInput (a stat each,
//    compared with the recorded one) from a fresh FileHashIndex, as a launch does; then the
//    same after a `touch` of every file (a re-hash each the first time, memo hits after);
//    and one check in a fresh process, as a warm launch makes it: the native library
//    (src/inputs/native/) reading the entry's stamps file, the library given the lines, and a
//    statSync per file, taking turns.
// 2. A real app: a Node server that requires 2,000 generated modules, launched cold through
//    the CLI (so fanotify records it), then findEntry on its entry: the lookup a warm launch
//    makes (entry checks, manifest parse, host part, every input stat'ed).
// 3. What the check costs the warm path itself, where it runs while CRIU restores: warm
//    launches of that app through the CLI, alternating with warm launches of the same app
//    whose modules are --input-ignore'd (another snapshot, ~15 inputs); paired differences in
//    time to ready, in the restores themselves, and in the part before the restore starts
//    (the key and the lookup); how long before the restore resumed the check was done.
import { execFile, spawn } from "node:child_process";
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { EntryStore, type Manifest } from "../src/cache/entry-store.js";
import { FileHashIndex } from "../src/cache/file-hash.js";
import { findEntry } from "../src/cache/find-entry.js";
import { findChangedInput, sealDiscoveredInputs } from "../src/inputs/discovered-inputs.js";
import { encodeStamps, STAMPS_FILE } from "../src/inputs/native-stamps.js";
import { toStamp } from "../src/inputs/stamp.js";
import { findFreePort } from "./ports.js";

const FILES = 2000;
const APP_MODULES = 2000;
const PAIRS = 15;
const FRESH_RUNS = 21;
const execFileAsync = promisify(execFile);
const CLI = fileURLToPath(new URL("../../dist/bundle/cli.cjs", import.meta.url));

async function timeIt(name: string, fn: () => Promise<unknown>): Promise<string> {
  const { Bench } = await import("tinybench");
  const bench = new Bench({ time: 2000, warmupTime: 200, throws: true });
  bench.add(name, fn);
  await bench.run();
  const result = bench.getTask(name)?.result;
  if (!result || !("latency" in result)) throw new Error(`${name} did not run`);
  const { p50, p99, samplesCount } = result.latency;
  return `${name}: median ${p50.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms (${samplesCount} samples)`;
}

function writeModules(dir: string, count: number): string[] {
  const paths: string[] = [];
  for (let i = 0; i < count; i++) {
    const sub = join(dir, "node_modules", `package-${i % 40}`, "lib");
    mkdirSync(sub, { recursive: true });
    const path = join(sub, `module-${i}.js`);
    writeFileSync(path, `module.exports = ${JSON.stringify("x".repeat(2000 + i))}.length;\n`);
    paths.push(path);
  }
  return paths;
}

async function measureSynthetic(root: string): Promise<void> {
  const cacheDir = join(root, "cache-synthetic");
  mkdirSync(cacheDir, { mode: 0o700 });
  const paths = writeModules(join(root, "synthetic"), FILES);
  const sealed = await sealDiscoveredInputs(
    {
      isComplete: true,
      mode: "fanotify",
      files: paths.map((path) => ({ path, kind: "file" as const, stamp: toStamp(statSync(path)) })),
      outputs: [],
    },
    [],
    () => true,
    new FileHashIndex(cacheDir),
  );
  if (!sealed.isComplete) throw new Error(sealed.reason);
  const validate = async () => {
    if (await findChangedInput(sealed.discovered, new FileHashIndex(cacheDir))) throw new Error("changed");
  };
  // The floor: the stat calls alone, nothing compared.
  process.stdout.write(
    `${await timeIt(`${FILES} bare statSync calls (the floor)`, async () => {
      for (const path of paths) statSync(path);
    })}\n`,
  );
  process.stdout.write(`${await timeIt(`${FILES} files, unchanged`, validate)}\n`);
  await measureFreshProcess(sealed.discovered.files, cacheDir);
  const later = new Date(Date.now() + 60_000);
  for (const path of paths) utimesSync(path, later, later);
  const firstStarted = performance.now();
  const hashes = new FileHashIndex(cacheDir);
  await validate();
  await hashes.save();
  process.stdout.write(
    `${FILES} files, all touched: first launch ${(performance.now() - firstStarted).toFixed(1)} ms (re-hashes each)\n`,
  );
  await validateAndSave(sealed.discovered, cacheDir);
  process.stdout.write(`${await timeIt(`${FILES} files, all touched, memo filled`, validate)}\n`);
}

/**
 * What a warm launch pays: one check in a fresh process (nothing compiled yet), the native
 * library against a statSync per input, taking turns.
 */
async function measureFreshProcess(files: readonly string[], cacheDir: string): Promise<void> {
  const linesFile = join(cacheDir, "lines.json");
  writeFileSync(linesFile, JSON.stringify(files));
  const stampsFile = join(cacheDir, STAMPS_FILE);
  writeFileSync(stampsFile, encodeStamps(files), { mode: 0o600 });
  const once = fileURLToPath(new URL("./check-inputs-once.js", import.meta.url));
  const modes = ["stamps-file", "encoded", "statSync"] as const;
  const samples = new Map<string, number[]>(modes.map((mode) => [mode, []]));
  for (let run = 0; run < FRESH_RUNS; run++) {
    for (const mode of modes) {
      const { stdout } = await execFileAsync(process.execPath, [once, linesFile, stampsFile, cacheDir, mode]);
      samples.get(mode)?.push(Number(stdout.trim()));
    }
  }
  const describe = (mode: string) => {
    const values = samples.get(mode) ?? [];
    return `${mode} median ${median(values)} ms (max ${Math.max(...values).toFixed(1)})`;
  };
  process.stdout.write(
    `${files.length} files, unchanged, one check in a fresh process (${FRESH_RUNS} each, taking turns): ` +
      `${modes.map(describe).join(", ")}\n`,
  );
}

async function validateAndSave(discovered: Manifest["discovered"], cacheDir: string): Promise<void> {
  const hashes = new FileHashIndex(cacheDir);
  await findChangedInput(discovered, hashes);
  await hashes.save();
}

async function measureRealApp(root: string): Promise<void> {
  const appDir = join(root, "app");
  const cacheDir = join(root, "cache-app");
  mkdirSync(cacheDir, { mode: 0o700 });
  const modules = writeModules(appDir, APP_MODULES);
  writeFileSync(
    join(appDir, "server.cjs"),
    `let total = 0;\n${modules.map((path) => `total += require(${JSON.stringify(path)});`).join("\n")}\n` +
      `setTimeout(() => require("node:http").createServer((q, s) => s.end(String(total))).listen(Number(process.env.PORT), "127.0.0.1"), 500);\n`,
  );
  const port = await findFreePort();
  const launchApp = (extra: readonly string[], until: RegExp) =>
    launchUntil(
      appDir,
      port,
      extra.includes("--cache-dir") ? extra : ["--cache-dir", cacheDir, ...extra],
      until,
    );
  const cold = await launchApp([], /snapshot saved|no snapshot taken|snapshot failed/);
  if (!/snapshot saved/.test(cold)) throw new Error(`no snapshot of the app:\n${cold}`);
  const store = new EntryStore(cacheDir);
  const [key] = readdirSync(store.root).filter((name) => /^[0-9a-f]{64}$/.test(name));
  const manifestPath = join(store.root, key ?? "", "manifest.json");
  const manifest = JSON.parse(readFileSync(manifestPath, "utf8")) as Manifest;
  const inputs = manifest.discovered.files.length;
  process.stdout.write(
    `app requiring ${APP_MODULES} modules: ${inputs} discovered inputs (${/inputs: .*/.exec(cold)?.[0]}), manifest ${(statSync(manifestPath).size / 1024).toFixed(0)} KiB\n`,
  );
  process.stdout.write(
    `${await timeIt("findEntry on its entry (warm lookup, inputs included)", async () => {
      const found = await findEntry(store, manifest.baseKey, manifest.fields, new FileHashIndex(cacheDir));
      if (!found.hit) throw new Error(JSON.stringify(found));
    })}\n`,
  );
  process.stdout.write(
    `${await timeIt("findChangedInput on its inputs alone", async () => {
      if (await findChangedInput(manifest.discovered, new FileHashIndex(cacheDir)))
        throw new Error("changed");
    })}\n`,
  );
  await measureWarmPath(launchApp, cacheDir);
}

/**
 * Alternating warm launches with and without the modules as inputs (see the top). They restore
 * two snapshots (two cold starts of the app), whose restores differ by more than the check
 * costs: what the check adds to the path is read from `-v` (the lookup before the restore,
 * and how long before the restore resumed the check was done).
 */
async function measureWarmPath(
  launchApp: (extra: readonly string[], until: RegExp) => Promise<string>,
  cacheDir: string,
): Promise<void> {
  // A cache of its own: a new snapshot of a command replaces its snapshots of other settings.
  const ignored = ["--cache-dir", `${cacheDir}-ignored`, "--input-ignore", "node_modules/**"];
  const ignoredCold = await launchApp(ignored, /snapshot saved|no snapshot taken|snapshot failed/);
  if (!/snapshot saved/.test(ignoredCold)) throw new Error(`no snapshot without inputs:\n${ignoredCold}`);
  const at = (stderr: string, pattern: string) =>
    Number(new RegExp(`\\[(\\d+) ms\\] ${pattern}`).exec(stderr)?.[1] ?? Number.NaN);
  const launch = async (extra: readonly string[]) => {
    const stderr = await launchApp(extra, /ready, (warm|cold)/);
    if (!/ready, warm/.test(stderr)) throw new Error(`not warm:\n${stderr}`);
    const checked = /(\d+) inputs unchanged in ([\d.]+) ms, during the restore/.exec(stderr);
    const restoringMs = at(stderr, "restoring the snapshot\n");
    const resumingMs = at(stderr, "resuming the stopped restore");
    return {
      readyMs: at(stderr, "ready, warm"),
      // From warmstart's start to CRIU's: the key and the lookup, on the path.
      restoringMs,
      restoreMs: resumingMs - restoringMs,
      inputs: Number(checked?.[1] ?? 0),
      checkMs: Number(checked?.[2] ?? 0),
      slackMs: resumingMs - at(stderr, "restoring the snapshot \\(\\d+ inputs"),
    };
  };
  type Launch = Awaited<ReturnType<typeof launch>>;
  const pairs: [Launch, Launch][] = [];
  for (let pair = 0; pair < PAIRS; pair++) {
    // Alternating which goes first, so neither always follows the other.
    if (pair % 2 === 0) {
      const a = await launch([]);
      pairs.push([a, await launch(ignored)]);
    } else {
      const b = await launch(ignored);
      pairs.push([await launch([]), b]);
    }
  }
  const of = (pick: (launch: Launch) => number, side: 0 | 1) => median(pairs.map((p) => pick(p[side])));
  const difference = (pick: (launch: Launch) => number) => median(pairs.map(([a, b]) => pick(a) - pick(b)));
  const ready = (launch: Launch) => launch.readyMs;
  const restoring = (launch: Launch) => launch.restoringMs;
  const restore = (launch: Launch) => launch.restoreMs;
  process.stdout.write(
    `warm path, ${PAIRS} alternating pairs, ${pairs[0]?.[0].inputs} inputs against them ignored (medians):\n` +
      `  to ready ${of(ready, 0)} against ${of(ready, 1)} ms, paired difference ${difference(ready)} ms, ` +
      `of which the two images' restores ${difference(restore)} ms (${of(restore, 0)} against ${of(restore, 1)} ms)\n` +
      `  on the path: to the restore's start ${of(restoring, 0)} against ${of(restoring, 1)} ms, paired difference ${difference(restoring)} ms\n` +
      `  beside the restore: the check took ${of((l) => l.checkMs, 0)} ms and was done ${of((l) => l.slackMs, 0)} ms before the restore resumed\n`,
  );
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  const value =
    sorted.length % 2 ? (sorted[middle] ?? 0) : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
  return Math.round(value * 10) / 10;
}

/** `warmstart run -v` of the app until `until` shows on stderr, then SIGTERM; its stderr. */
async function launchUntil(
  appDir: string,
  port: number,
  options: readonly string[],
  until: RegExp,
): Promise<string> {
  const child = spawn(
    process.execPath,
    [CLI, "run", "-v", ...options, "--ready", `tcp:127.0.0.1:${port}`, "--", "node", "server.cjs"],
    { cwd: appDir, env: { ...process.env, PORT: String(port) }, stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  child.stderr.on("data", (chunk) => {
    stderr += chunk;
  });
  const deadline = Date.now() + 120_000;
  while (!until.test(stderr) && child.exitCode === null && Date.now() < deadline)
    await new Promise((resolve) => setTimeout(resolve, 20));
  child.kill("SIGTERM");
  if (child.exitCode === null) await new Promise((resolve) => child.once("close", resolve));
  return stderr;
}

const root = mkdtempSync(join(tmpdir(), "warmstart-inputs-bench-"));
try {
  await measureSynthetic(root);
  await measureRealApp(root);
} finally {
  rmSync(root, { recursive: true, force: true });
}
