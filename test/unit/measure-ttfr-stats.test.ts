import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { parseRuns, renderResult, toJson } from "../../src/commands/bench.js";
import { type BenchLaunch, summarize } from "../../src/measure/compare-launches.js";
import { median, summarizeRatios, summarizeTtfr } from "../../src/measure/ttfr-stats.js";

describe("TTFR figures", () => {
  test("median of odd and even counts, unsorted input left alone", () => {
    const values = [30, 10, 20];
    assert.equal(median(values), 20);
    assert.deepEqual(values, [30, 10, 20]);
    assert.equal(median([4, 1, 3, 2]), 2.5);
    assert.equal(median([7]), 7);
    assert.ok(Number.isNaN(median([])));
  });

  test("a summary has the count, median, min and max; none for no values", () => {
    assert.deepEqual(summarizeTtfr([500, 300, 400, 1000]), {
      count: 4,
      medianMs: 450,
      minMs: 300,
      maxMs: 1000,
    });
    assert.equal(summarizeTtfr([]), undefined);
  });

  test("ratios pair by pair, a zero denominator left out", () => {
    assert.deepEqual(
      summarizeRatios([
        { numerator: 100, denominator: 400 },
        { numerator: 300, denominator: 300 },
        { numerator: 50, denominator: 100 },
        { numerator: 1, denominator: 0 },
      ]),
      { count: 3, median: 0.5, min: 0.25, max: 1 },
    );
    assert.equal(summarizeRatios([]), undefined);
  });
});

const measured = (launches: BenchLaunch[]) => ({
  command: ["node", "server.js"],
  probes: ["tcp:localhost:3000"],
  cacheDir: "/tmp/cache",
  runs: 2,
  snapshot: { key: "ab".repeat(32), imageBytes: 1_000_000, checkpointMs: 200, primingTtfrMs: 1900.04 },
  launches,
});
const launch = (
  mode: "cold" | "warm",
  run: number,
  ttfrMs: number,
  fallbackReason: string | null = null,
): BenchLaunch => ({
  mode,
  run,
  ttfrMs,
  reportedMode: fallbackReason ? "cold" : mode,
  fallbackReason,
  readyMs: Math.round(ttfrMs) - 10,
});

describe("warmstart bench results", () => {
  test("warm launches that started cold are counted apart, and only restored ones are paired", () => {
    const result = summarize(
      measured([
        launch("cold", 1, 2000),
        launch("warm", 1, 500),
        launch("cold", 2, 1800),
        launch("warm", 2, 1900, "restore-failed"),
      ]),
    );
    assert.deepEqual(result.cold, { count: 2, medianMs: 1900, minMs: 1800, maxMs: 2000 });
    assert.deepEqual(result.warm, { count: 1, medianMs: 500, minMs: 500, maxMs: 500 });
    assert.deepEqual(result.fellBack, { count: 1, medianMs: 1900, minMs: 1900, maxMs: 1900 });
    assert.deepEqual(result.fallbackReasons, ["restore-failed"]);
    assert.deepEqual(result.warmOverCold, { count: 1, median: 0.25, min: 0.25, max: 0.25 });
    assert.equal(result.isWarmFaster, true);
    assert.deepEqual(renderResult(result), [
      "TTFR of node server.js until tcp:localhost:3000, 2 launches per mode:",
      "",
      "MODE                     LAUNCHES   MEDIAN      MIN      MAX",
      "cold                            2  1900 ms  1800 ms  2000 ms",
      "warm                            1   500 ms   500 ms   500 ms",
      "warm, fell back to cold         1  1900 ms  1900 ms  1900 ms",
      "",
      "1 of 2 warm launches started cold (restore-failed): they are not counted as warm.",
      "warm / cold, launch by launch: 0.25 [0.25, 0.25]: warm is 4.0x faster.",
    ]);
  });

  test("says so when warm is not faster", () => {
    const result = summarize(
      measured([
        launch("cold", 1, 300),
        launch("warm", 1, 330),
        launch("cold", 2, 310),
        launch("warm", 2, 320),
      ]),
    );
    assert.equal(result.isWarmFaster, false);
    assert.equal(
      renderResult(result).at(-1),
      "warm / cold, launch by launch: 1.07 [1.03, 1.10]: warm is NOT faster than cold for this app.",
    );
  });

  test("no restored warm launch: no ratio, and the JSON says null", () => {
    const result = summarize(measured([launch("cold", 1, 300), launch("warm", 1, 310, "warm-not-faster")]));
    assert.equal(result.warm, undefined);
    assert.equal(result.isWarmFaster, undefined);
    assert.equal(
      renderResult(result).at(-1),
      "No warm launch was restored: there is no warm TTFR to compare.",
    );
    const json = toJson(result);
    assert.equal(json.warm, null);
    assert.equal(json.warmOverCold, null);
    assert.equal(json.isWarmFaster, null);
    assert.deepEqual(json.snapshot, { ...result.snapshot, primingTtfrMs: 1900 });
  });

  test("--runs is a positive integer as typed, 5 by default", () => {
    assert.equal(parseRuns(undefined), 5);
    assert.equal(parseRuns("12"), 12);
    for (const bad of ["0", "-1", "1.5", "1e3", "", "two"]) {
      assert.throws(() => parseRuns(bad), {
        name: "WarmstartError",
        code: "invalid-option",
        message: `Expected --runs to be a positive integer, got ${JSON.stringify(bad)}.`,
      });
    }
  });
});
