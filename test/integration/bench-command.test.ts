// Issue 5: `warmstart bench`, the real CLI timing real launches of a fixture, with real CRIU.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { fixture, freePort, listEntries, makeCacheDir, useIntegrationRig, WarmstartRun } from "./rig.js";

useIntegrationRig();

interface Summary {
  count: number;
  medianMs: number;
  minMs: number;
  maxMs: number;
}

interface BenchJson {
  command: string[];
  probes: string[];
  cacheDir: string;
  runs: number;
  snapshot: { key: string; imageBytes: number; checkpointMs: number; primingTtfrMs: number };
  cold: Summary;
  warm: Summary | null;
  fellBack: Summary | null;
  fallbackReasons: string[];
  warmOverCold: { count: number; median: number; min: number; max: number } | null;
  isWarmFaster: boolean | null;
  launches: {
    mode: string;
    run: number;
    ttfrMs: number;
    reportedMode: string;
    fallbackReason: string | null;
    readyMs: number;
  }[];
}

async function bench(args: readonly string[], env: NodeJS.ProcessEnv = {}) {
  const run = new WarmstartRun(["bench", ...args], env);
  const exit = await run.exited;
  return { code: exit.code, stdout: run.stdout, stderr: run.stderr };
}

function assertSummary(summary: Summary | null, count: number): void {
  assert.ok(summary, "a summary");
  assert.equal(summary.count, count);
  assert.ok(summary.minMs > 0, `min ${summary.minMs} > 0`);
  assert.ok(summary.minMs <= summary.medianMs && summary.medianMs <= summary.maxMs, JSON.stringify(summary));
}

describe("warmstart bench", () => {
  test("times 2 cold and 2 warm launches, and every warm one was restored", async () => {
    const cacheDir = makeCacheDir();
    const port = await freePort();
    const command = ["node", fixture("ticker-server.cjs")];
    const { code, stdout, stderr } = await bench(
      ["--runs", "2", "--json", "--cache-dir", cacheDir, "--ready", `tcp:${port}`, "--", ...command],
      { PORT: String(port) },
    );
    assert.equal(code, 0, stderr);
    const result = JSON.parse(stdout) as BenchJson;
    assert.deepEqual(result.command, command);
    assert.deepEqual(result.probes, [`tcp:localhost:${port}`]);
    assert.equal(result.cacheDir, cacheDir);
    assert.equal(result.runs, 2);
    assert.match(result.snapshot.key, /^[0-9a-f]{64}$/);
    assert.ok(result.snapshot.imageBytes > 0 && result.snapshot.primingTtfrMs > 0);
    assert.deepEqual(listEntries(cacheDir), [result.snapshot.key]);
    assertSummary(result.cold, 2);
    assertSummary(result.warm, 2);
    assert.equal(result.fellBack, null);
    assert.deepEqual(result.fallbackReasons, []);
    assert.ok(result.warmOverCold && result.warmOverCold.count === 2 && result.warmOverCold.median > 0);
    assert.equal(typeof result.isWarmFaster, "boolean");
    // Cold and warm take turns, and each says what it was.
    assert.deepEqual(
      result.launches.map((launch) => [launch.mode, launch.run, launch.reportedMode, launch.fallbackReason]),
      [
        ["cold", 1, "cold", null],
        ["warm", 1, "warm", null],
        ["cold", 2, "cold", null],
        ["warm", 2, "warm", null],
      ],
    );
    for (const launch of result.launches) {
      assert.ok(launch.ttfrMs > 0 && launch.readyMs > 0, JSON.stringify(launch));
    }
    // Progress goes to stderr, one line per launch.
    assert.match(stderr, /warmstart bench: snapshot [0-9a-f]{12} taken/);
    assert.equal(stderr.match(/^warmstart bench: (cold|warm) \d\/2: \d+ ms$/gm)?.length, 4, stderr);
  });

  test("a log: probe of a restored app counts when warmstart says it is ready", async () => {
    const cacheDir = makeCacheDir();
    // PORT unset: the fixture listens on no port; "ready ..." is printed once, before the snapshot.
    const { code, stdout, stderr } = await bench(
      [
        "--runs",
        "1",
        "--cache-dir",
        cacheDir,
        "--ready",
        "log:^ready pid",
        "--",
        "node",
        fixture("ticker-server.cjs"),
      ],
      { PORT: "" },
    );
    assert.equal(code, 0, stderr);
    assert.match(stdout, /^cold +1 +\d+ ms/m);
    assert.match(stdout, /^warm +1 +\d+ ms/m);
    assert.match(stdout, /^warm \/ cold, launch by launch: \d+\.\d\d \[/m);
  });

  test("--runs must be a positive integer", async () => {
    for (const runs of ["0", "-1", "1.5", "many"]) {
      // `--runs=-1`: parseArgs takes `--runs -1` for a forgotten value.
      const { code, stdout, stderr } = await bench([
        `--runs=${runs}`,
        "--ready",
        "tcp:3000",
        "--",
        "node",
        fixture("ticker-server.cjs"),
      ]);
      assert.equal(stderr, `warmstart: error: Expected --runs to be a positive integer, got "${runs}".\n`);
      assert.equal(code, 2);
      assert.equal(stdout, "");
    }
  });

  test("--ready is required", async () => {
    const { code, stderr } = await bench(["--", "node", fixture("ticker-server.cjs")]);
    assert.equal(code, 2);
    assert.match(stderr, /^warmstart: error: Expected at least one --ready probe, got none\.\n/);
  });
});
