// A rig that runs the real CLI on real fixture apps, with real CRIU.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { request } from "node:http";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, before } from "node:test";
import { fileURLToPath } from "node:url";
import { IMAGE_FORMAT_VERSION } from "../../src/cache/key.js";
import { findCriu } from "../../src/criu/find-criu.js";

export const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
export const CLI = join(ROOT, "dist/bundle/cli.cjs");

export function fixture(name: string): string {
  return join(ROOT, "test/fixtures", name);
}

const tempDirs: string[] = [];

/** A fresh temporary directory, removed after the test file. */
export function makeTempDir(prefix = "warmstart-test-"): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

export function makeCacheDir(): string {
  return makeTempDir("warmstart-test-");
}

/** A fresh cache directory and the --report file of its launches (inside it). */
export function newCache(): { cacheDir: string; reportFile: string } {
  const cacheDir = makeCacheDir();
  return { cacheDir, reportFile: join(cacheDir, "reports.jsonl") };
}

/** `warmstart run -v` on that cache, reporting to `reportFile`. */
export function runArgs(
  cacheDir: string,
  reportFile: string,
  ready: readonly string[],
  command: readonly string[],
  extra: readonly string[] = [],
): string[] {
  return [
    "run",
    "-v",
    "--cache-dir",
    cacheDir,
    "--report",
    reportFile,
    ...ready.flatMap((r) => ["--ready", r]),
    ...extra,
    "--",
    ...command,
  ];
}

/**
 * The hooks every integration test file needs: without a working CRIU the file fails
 * here, loudly, rather than skipping; no run nor temporary directory outlives it.
 */
export function useIntegrationRig(): void {
  before(async () => {
    const criu = await findCriu();
    assert.ok(
      criu.found,
      `CRIU >= 4.2 is required for the integration tests (run: sudo node dist/bundle/cli.cjs setup, or npm test, whose pretest does): ${JSON.stringify(criu)}`,
    );
  });
  // A test that fails before it stops its runs must not leave them to the next tests: a
  // serve still running from a failed test made the next one's count of app processes fail.
  afterEach(async () => {
    await stopAllRuns();
  });
  after(async () => {
    await stopAllRuns();
    for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });
}

export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

const running = new Set<WarmstartRun>();

/** Kills every run still going (for `after` hooks: a failed test must not leak apps). */
export async function stopAllRuns(): Promise<void> {
  await Promise.all([...running].map((run) => run.stop("SIGKILL")));
}

/** One `warmstart` process, its output collected. */
export class WarmstartRun {
  readonly child: ChildProcess;
  stdout = "";
  stderr = "";
  readonly exited: Promise<Exit>;

  /** `prefix`: a command warmstart runs under (`unshare --pid --fork ...`). */
  constructor(args: readonly string[], env: NodeJS.ProcessEnv = {}, prefix: readonly string[] = []) {
    const [file = process.execPath, ...before] = [...prefix, process.execPath];
    this.child = spawn(file, [...before, CLI, ...args], {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.child.stdout?.on("data", (chunk) => {
      this.stdout += chunk;
    });
    this.child.stderr?.on("data", (chunk) => {
      this.stderr += chunk;
    });
    running.add(this);
    this.exited = new Promise((resolve) =>
      this.child.once("close", (code, signal) => {
        running.delete(this);
        resolve({ code, signal });
      }),
    );
  }

  /** Resolves with the first match in the stream (already printed or later). */
  async waitFor(
    pattern: RegExp,
    stream: "stdout" | "stderr" = "stdout",
    timeoutMs = 30_000,
  ): Promise<RegExpMatchArray> {
    let match: RegExpMatchArray | null = null;
    const isDone = await waitUntil(() => {
      match = this[stream].match(pattern);
      return match !== null || this.child.exitCode !== null;
    }, timeoutMs);
    if (!isDone || !match) {
      throw new Error(
        `no ${pattern} on ${stream} within ${timeoutMs} ms\nstdout:\n${this.stdout}\nstderr:\n${this.stderr}`,
      );
    }
    return match;
  }

  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<Exit> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    return this.exited;
  }
}

export async function waitUntil(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (condition()) return true;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return condition();
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

export function getJson(url: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false, headers: { connection: "close" } }, (res) => {
      let data = "";
      res.on("data", (chunk) => {
        data += chunk;
      });
      res.on("end", () => {
        try {
          resolve(JSON.parse(data) as Record<string, unknown>);
        } catch {
          reject(new Error(`not JSON from ${url}: ${data}`));
        }
      });
    });
    req.on("error", reject);
    req.setTimeout(5000, () => req.destroy(new Error(`timeout on ${url}`)));
    req.end();
  });
}

/**
 * Signals one process. `process.kill` with 0, a negative number or 1 signals the caller's
 * process group, every process or init: a PID read from output that was not there yet
 * (`Number("")` is 0) would take the test runner and CI down with it.
 */
export function signalProcess(pid: number, signal: NodeJS.Signals): void {
  if (!Number.isInteger(pid) || pid <= 1) throw new Error(`refusing to signal pid ${pid}: not one process`);
  process.kill(pid, signal);
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    // A zombie still answers kill(0); it is not alive for our purposes.
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, "utf8"));
  } catch {
    return false;
  }
}

/** The store inside a cache directory: one per image format version. */
export const STORE_DIR = `v${IMAGE_FORMAT_VERSION}`;

/** Committed cache entries (pending and evicted directories excluded). */
export function listEntries(cacheDir: string): string[] {
  const root = join(cacheDir, STORE_DIR);
  if (!existsSync(root)) return [];
  return readdirSync(root).filter((name) => !name.startsWith("."));
}

export async function waitForEntry(cacheDir: string, timeoutMs = 60_000): Promise<string> {
  if (!(await waitUntil(() => listEntries(cacheDir).length > 0, timeoutMs))) {
    throw new Error(`no cache entry in ${cacheDir} after ${timeoutMs} ms`);
  }
  return listEntries(cacheDir)[0] ?? "";
}

export interface Report {
  readonly event: "ready" | "exit";
  readonly mode: "cold" | "warm";
  readonly key: string | null;
  readonly baseKey: string | null;
  readonly pid: number;
  readonly readyMs: number;
  readonly fallbackReason: string | null;
  readonly checkpoint: string | null;
  readonly exitCode: number | null;
  readonly imageBytes: number | null;
}

/** One report per launch: its "exit" line, or its "ready" line while it runs (or detached). */
export function readReports(file: string): Report[] {
  return readReportEvents(file).filter(
    (report, index, all) => !all.slice(index + 1).some((later) => later.pid === report.pid),
  );
}

/** Every line, "ready" and "exit" events alike. */
export function readReportEvents(file: string): Report[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Report);
}

export function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
