// Issue 11's acceptance for the JVM: what warmstart's Java agent (JAVA_TOOL_OPTIONS) makes
// unique in restored copies without the app's help, and what stays the app's to reseed.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { describe, test } from "node:test";
import {
  fixture,
  freePort,
  getJson,
  makeTempDir,
  newCache,
  readReports,
  runArgs,
  useIntegrationRig,
  WarmstartRun,
  waitForEntry,
} from "./rig.js";

useIntegrationRig();

/** Reseeded by the agent: each restored copy draws its own. */
const FIXED = [
  "mathRandom",
  "threadLocalRandom",
  "threadLocalRandomNewThread",
  "newRandom",
  "newSplittableRandom",
  "defaultRandomGenerator",
  "newSecureRandom",
  "uuid",
];
/** Generators the app created before the checkpoint: out of the agent's reach (docs/uniqueness.md). */
const APP_HELD = ["heldRandom", "heldSha1prng"];

describe("restored JVM copies", () => {
  test("the Java agent reseeds Math.random, ThreadLocalRandom and the default seeds; generators the app holds are its own to reseed", async () => {
    const classes = makeTempDir("warmstart-jvm-");
    execFileSync("javac", ["-d", classes, fixture("jvm/RandomServer.java")]);
    const { cacheDir, reportFile } = newCache();
    const port = await freePort();
    const url = `http://127.0.0.1:${port}/`;
    const java = ["java", "-XX:+UseSerialGC", "-XX:-UsePerfData", "-cp", classes, "RandomServer"];
    const args = runArgs(cacheDir, reportFile, [`tcp:${port}`], java);
    const env = { PORT: String(port), STARTUP_MS: "3000" };

    const original = new WarmstartRun(args, env);
    await original.waitFor(/ready pid=/);
    // The JVM says where its options came from; a log: probe may see this line.
    assert.match(original.stderr, /^Picked up JAVA_TOOL_OPTIONS: -javaagent:\S+warmstart-agent\.jar$/m);
    await waitForEntry(cacheDir);
    await original.stop();

    const copies: Record<string, unknown>[] = [];
    for (const _ of [1, 2]) {
      const run = new WarmstartRun(args, env);
      await run.waitFor(/ready, warm/, "stderr", 60_000);
      copies.push(await getJson(url));
      await run.stop();
    }
    const [first = {}, second = {}] = copies;
    for (const name of FIXED) assert.notEqual(first[name], second[name], `${name} repeats: ${first[name]}`);
    for (const name of APP_HELD) assert.equal(first[name], second[name], `${name} was expected to repeat`);
    assert.deepEqual(
      readReports(reportFile).map((report) => report.mode),
      ["cold", "warm", "warm"],
    );
  });
});
