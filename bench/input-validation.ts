// `npm run bench:inputs`: what checking a snapshot's discovered inputs costs a warm launch
// (issue 10's target: at most 5 ms median for 2,000 files).
// 1. 2,000 files, as a recording would have found them: findChangedInput (a stat each,
//    compared with the recorded one) from a fresh FileHashIndex, as a launch does; then the
//    same after a `touch` of every file (a re-hash each the first time, memo hits after).
// 2. A real app: a Node server that requires 2,000 generated modules, launched cold through
//    the CLI (so fanotify records it), then findEntry on its entry: the lookup a warm launch
//    makes (entry checks, manifest parse, host part, every input stat'ed).
// 3. What the check costs the warm path itself, where it runs while CRIU restores: warm
//    launches of that app through the CLI, alternating with warm launches of the same app
//    whose modules are --input-ignore'd (same image, ~15 inputs); the median of the paired
//    differences in time to ready is the inputs' cost, whatever the machine's drift.
import { spawn } from "node:child_process";
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
import { EntryStore, type Manifest } from "../src/cache/entry-store.js";
import { FileHashIndex } from "../src/cache/file-hash.js";
import { findEntry } from "../src/cache/find-entry.js";
import { findChangedInput, sealDiscoveredInputs } from "../src/inputs/discovered-inputs.js";
import { toStamp } from "../src/inputs/stamp.js";
import { findFreePort } from "./ports.js";

const FILES = 2000;
const APP_MODULES = 2000;
const PAIRS = 15;
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

/** Alternating warm launches with and without the modules as inputs (see the top). */
async function measureWarmPath(
  launchApp: (extra: readonly string[], until: RegExp) => Promise<string>,
  cacheDir: string,
): Promise<void> {
  // A cache of its own: a new snapshot of a command replaces its snapshots of other settings.
  const ignored = ["--cache-dir", `${cacheDir}-ignored`, "--input-ignore", "node_modules/**"];
  const ignoredCold = await launchApp(ignored, /snapshot saved|no snapshot taken|snapshot failed/);
  if (!/snapshot saved/.test(ignoredCold)) throw new Error(`no snapshot without inputs:\n${ignoredCold}`);
  const readyMs = async (extra: readonly string[]) => {
    const stderr = await launchApp(extra, /ready, (warm|cold)/);
    const ready = /\[(\d+) ms\] ready, warm/.exec(stderr);
    if (!ready) throw new Error(`not warm:\n${stderr}`);
    const checked = /(\d+) inputs unchanged in ([\d.]+) ms, during the restore/.exec(stderr);
    return { ms: Number(ready[1]), inputs: Number(checked?.[1] ?? 0), checkMs: Number(checked?.[2] ?? 0) };
  };
  const differences: number[] = [];
  const withInputs: number[] = [];
  const without: number[] = [];
  const checks: number[] = [];
  let inputs = 0;
  for (let pair = 0; pair < PAIRS; pair++) {
    // Alternating which goes first, so neither always follows the other.
    const first = pair % 2 === 0;
    const a = first ? await readyMs([]) : undefined;
    const b = await readyMs(ignored);
    const aa = a ?? (await readyMs([]));
    differences.push(aa.ms - b.ms);
    withInputs.push(aa.ms);
    without.push(b.ms);
    checks.push(aa.checkMs);
    inputs = aa.inputs;
  }
  process.stdout.write(
    `warm path, ${PAIRS} alternating pairs: to ready ${median(withInputs)} ms with ${inputs} inputs, ` +
      `${median(without)} ms with them ignored; paired difference median ${median(differences)} ms ` +
      `(the check itself took ${median(checks)} ms, during the restore)\n`,
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
