// Issue 4: --watch evicts a stale snapshot; --prewarm and `warmstart prewarm` snapshot the
// new version beside a serving one (same port), so the next launch is warm with new code.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import {
  freePort,
  getJson,
  listEntries,
  makeCacheDir,
  makeTempDir,
  useIntegrationRig,
  WarmstartRun,
  waitForEntry,
  waitUntil,
} from "./rig.js";

useIntegrationRig();

/** An app whose code says its version, so a test can tell which code a snapshot holds. */
function writeApp(dir: string, version: string): void {
  writeFileSync(
    join(dir, "app.cjs"),
    `const VERSION = ${JSON.stringify(version)};
// Listens after a delay, like a real service: with none, warm is not faster than cold.
setTimeout(() => {
  require("node:http")
    .createServer((req, res) => res.end(JSON.stringify({ version: VERSION, pid: process.pid })))
    .listen(Number(process.env.PORT), "127.0.0.1", () => console.log("up " + VERSION));
}, 500);
`,
  );
}

function setUp(): { cacheDir: string; appDir: string } {
  const cacheDir = makeCacheDir();
  const appDir = makeTempDir("warmstart-watch-");
  writeApp(appDir, "v1");
  return { cacheDir, appDir };
}

describe("watch and prewarm", () => {
  test("run --watch --prewarm: an edit evicts the snapshot and the new version is snapshotted beside the old", async () => {
    const { cacheDir, appDir } = setUp();
    const port = await freePort();
    const args = [
      "run",
      "-v",
      "--cache-dir",
      cacheDir,
      "--ready",
      `tcp:${port}`,
      "--input",
      join(appDir, "*.cjs"),
    ];
    const env = { PORT: String(port) };
    const serving = new WarmstartRun(
      [...args, "--watch", "--prewarm", "--", "node", join(appDir, "app.cjs")],
      env,
    );
    await serving.waitFor(/snapshot saved/, "stderr");
    const [v1Key] = listEntries(cacheDir);

    writeApp(appDir, "v2");
    await serving.waitFor(/app\.cjs changed: the snapshot is stale and was removed/, "stderr");
    await serving.waitFor(/prewarmed the new version \(\d+ ms\): the next launch is warm/, "stderr", 60_000);
    // The old version kept serving its port all along.
    assert.equal((await getJson(`http://127.0.0.1:${port}/`)).version, "v1");
    const entries = listEntries(cacheDir);
    assert.equal(entries.length, 1);
    assert.notEqual(entries[0], v1Key);
    await serving.stop();

    const next = new WarmstartRun([...args, "--", "node", join(appDir, "app.cjs")], env);
    await next.waitFor(/ready, warm, pid/, "stderr");
    assert.equal((await getJson(`http://127.0.0.1:${port}/`)).version, "v2");
    await next.stop();
  });

  test("warmstart prewarm snapshots while another instance holds the port; the next run is warm", async () => {
    const { cacheDir, appDir } = setUp();
    const port = await freePort();
    const env = { ...process.env, PORT: String(port) };
    const holder = spawn("node", [join(appDir, "app.cjs")], { env, stdio: "ignore" });
    try {
      assert.ok(
        await waitUntil(
          () => readFileSync("/proc/net/tcp", "utf8").includes(`:${port.toString(16).toUpperCase()} `),
          5000,
        ),
      );
      const prewarm = new WarmstartRun(
        ["prewarm", "--cache-dir", cacheDir, "--ready", `tcp:${port}`, "--", "node", join(appDir, "app.cjs")],
        { PORT: String(port) },
      );
      assert.deepEqual(await prewarm.exited, { code: 0, signal: null }, prewarm.stderr);
      assert.match(prewarm.stderr, /warmstart: prewarmed: snapshot [0-9a-f]{12} \(\d+\.\d MB\)/);
      assert.equal(prewarm.stdout.includes("up v1"), true, "the prewarmed app's output is shown");
      await waitForEntry(cacheDir);
    } finally {
      holder.kill("SIGKILL");
    }
    await new Promise((resolve) => holder.once("exit", resolve));
    const run = new WarmstartRun(
      ["run", "-v", "--cache-dir", cacheDir, "--ready", `tcp:${port}`, "--", "node", join(appDir, "app.cjs")],
      { PORT: String(port) },
    );
    await run.waitFor(/ready, warm, pid/, "stderr");
    assert.equal((await getJson(`http://127.0.0.1:${port}/`)).version, "v1");
    await run.stop();
  });
});
