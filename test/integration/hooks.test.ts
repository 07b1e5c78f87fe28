// Issue 11's acceptance for hooks: warmstart/runtime's onCheckpoint/onRestore (order, timeout,
// failure) and the --before-checkpoint / --after-restore commands and HTTP requests.
import assert from "node:assert/strict";
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import {
  fixture,
  freePort,
  getJson,
  listEntries,
  makeTempDir,
  newCache,
  ROOT,
  readReports,
  runArgs,
  useIntegrationRig,
  WarmstartRun,
  waitForEntry,
  waitUntil,
} from "./rig.js";

useIntegrationRig();

/** A slow start, so that the never-slower rule never starts a restore cold on a busy machine. */
const SLOW_START = { STARTUP_MS: "3000" };

/** The lines of the hook log, without the PID each starts with. */
function hookLog(path: string): string[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((line) => line.replace(/^\d+ /, ""));
}

async function waitForLog(path: string, line: string): Promise<void> {
  assert.ok(
    await waitUntil(() => hookLog(path).includes(line), 30_000),
    `no "${line}" in:\n${hookLog(path).join("\n")}`,
  );
}

/** A directory whose node_modules holds another copy (another version) of warmstart/runtime. */
function otherRuntimeCopy(): string {
  const dir = makeTempDir("warmstart-app-");
  const pkg = join(dir, "node_modules", "warmstart");
  mkdirSync(pkg, { recursive: true });
  copyFileSync(join(ROOT, "dist/runtime/api.cjs"), join(pkg, "runtime.cjs"));
  writeFileSync(
    join(pkg, "package.json"),
    JSON.stringify({ name: "warmstart", version: "0.0.1-other", exports: { "./runtime": "./runtime.cjs" } }),
  );
  return dir;
}

async function setUp(mode: string, extra: readonly string[] = [], env: NodeJS.ProcessEnv = {}) {
  const { cacheDir, reportFile } = newCache();
  const port = await freePort();
  const log = join(cacheDir, "hooks.log");
  const args = runArgs(cacheDir, reportFile, [`tcp:${port}`], ["node", fixture("hooks-app.cjs")], extra);
  return {
    cacheDir,
    reportFile,
    port,
    log,
    url: `http://127.0.0.1:${port}/`,
    start: () =>
      new WarmstartRun(args, { ...SLOW_START, PORT: String(port), HOOK_LOG: log, HOOK_MODE: mode, ...env }),
  };
}

describe("warmstart/runtime hooks", () => {
  test("checkpoint hooks run newest first, restore hooks oldest first, in the original (told so) and in each copy", async () => {
    const app = await setUp("ok", [], { RUNTIME_FROM: otherRuntimeCopy() });
    const original = app.start();
    await original.waitFor(/ready pid=/);
    await waitForEntry(app.cacheDir);
    await waitForLog(app.log, "restore second-registered saved isRestored=false");
    assert.deepEqual(hookLog(app.log), [
      "checkpoint second-registered",
      "checkpoint first-registered",
      "restore first-registered saved isRestored=false",
      "restore second-registered saved isRestored=false",
    ]);
    assert.equal((await getJson(app.url)).isRestored, false);
    await original.stop();

    const copy = app.start();
    await copy.waitFor(/ready, warm/, "stderr");
    // The restore hooks have run before the launch counts as ready.
    assert.deepEqual(hookLog(app.log).slice(4), [
      "restore first-registered restored isRestored=true",
      "restore second-registered restored isRestored=true",
    ]);
    assert.equal((await getJson(app.url)).isRestored, true);
    await copy.stop();
  });

  test("a checkpoint hook that throws cancels the snapshot; the app keeps serving and is told", async () => {
    const app = await setUp("before-throws");
    const run = app.start();
    await run.waitFor(
      /no snapshot taken, the app keeps serving: .*checkpoint hook 1 \(newest first\) threw: not now/,
      "stderr",
    );
    await waitForLog(app.log, "restore second-registered cancelled isRestored=false");
    assert.equal((await getJson(app.url)).isRestored, false);
    assert.deepEqual(listEntries(app.cacheDir), []);
    await run.stop();
    assert.equal(readReports(app.reportFile)[0]?.checkpoint, "failed");
  });

  test("a checkpoint hook that outlives --hook-timeout cancels the snapshot", async () => {
    const app = await setUp("before-hangs", ["--hook-timeout", "1"]);
    const run = app.start();
    await run.waitFor(
      /no snapshot taken, the app keeps serving: .*timed out \(the hooks have 1000 ms\)/,
      "stderr",
    );
    await waitForLog(app.log, "restore first-registered cancelled isRestored=false");
    await getJson(app.url);
    assert.deepEqual(listEntries(app.cacheDir), []);
    await run.stop();
  });

  test("warmstart stopped while the checkpoint hooks run: the snapshot is abandoned and says so, the app stops", async () => {
    const app = await setUp("before-hangs");
    const run = app.start();
    await run.waitFor(/checkpointing/, "stderr");
    await new Promise((resolve) => setTimeout(resolve, 500));
    run.child.kill("SIGTERM");
    assert.deepEqual(await run.exited, { code: 143, signal: null });
    assert.match(run.stderr, /snapshot abandoned: warmstart was stopped while it was taken/);
    assert.doesNotMatch(run.stderr, /the app keeps serving/);
    assert.equal(readReports(app.reportFile)[0]?.checkpoint, "abandoned");
    assert.deepEqual(listEntries(app.cacheDir), []);
  });

  test("a restore hook that throws is reported; with --strict-hooks the launch starts cold instead", async () => {
    const app = await setUp("after-throws");
    const original = app.start();
    await original.waitFor(/ready pid=/);
    await waitForEntry(app.cacheDir);
    await original.stop();

    const copy = app.start();
    await copy.waitFor(
      /warning: restore hook failed: process \d+: restore hook 2 threw: no database/,
      "stderr",
    );
    await copy.waitFor(/ready, warm/, "stderr");
    await copy.stop();

    const strictCopy = new WarmstartRun(
      runArgs(
        app.cacheDir,
        app.reportFile,
        [`tcp:${app.port}`],
        ["node", fixture("hooks-app.cjs")],
        ["--strict-hooks"],
      ),
      { ...SLOW_START, PORT: String(app.port), HOOK_LOG: app.log, HOOK_MODE: "after-throws" },
    );
    await strictCopy.waitFor(
      /warning: .*restore hook 2 threw: no database; evicted the snapshot, starting cold/,
      "stderr",
    );
    await strictCopy.waitFor(/ready, cold/, "stderr");
    await strictCopy.stop();
    const reports = readReports(app.reportFile);
    assert.deepEqual(
      reports.map((report) => [report.mode, report.fallbackReason]),
      [
        ["cold", null],
        ["warm", null],
        ["cold", "hook-failed"],
      ],
    );
  });
});

type HookKind = "command" | "http";

describe("--before-checkpoint and --after-restore", () => {
  const pairs: [HookKind, HookKind][] = [
    ["command", "http"],
    ["http", "command"],
  ];
  for (const [before, after] of pairs) {
    test(`a ${before} before the checkpoint and a ${after} after each restore run exactly once each time`, async () => {
      const { cacheDir, reportFile } = newCache();
      const port = await freePort();
      const log = join(cacheDir, "hooks.log");
      const commands = join(cacheDir, "commands.log");
      const command = `echo "$WARMSTART_EVENT $WARMSTART_PID $WARMSTART_KEY" >> ${commands}`;
      const hook = (kind: HookKind, event: string) =>
        kind === "command" ? command : `http://127.0.0.1:${port}/_warm/${event}`;
      const args = runArgs(
        cacheDir,
        reportFile,
        [`tcp:${port}`],
        ["node", fixture("hooks-app.cjs")],
        ["--before-checkpoint", hook(before, "before"), "--after-restore", hook(after, "restore")],
      );
      const env = { ...SLOW_START, PORT: String(port), HOOK_LOG: log, HOOK_MODE: "ok" };
      const commandLines = () =>
        existsSync(commands) ? readFileSync(commands, "utf8").split("\n").filter(Boolean) : [];

      const original = new WarmstartRun(args, env);
      await original.waitFor(/ready pid=/);
      await waitForEntry(cacheDir);
      const afterCheckpoint = await getJson(`http://127.0.0.1:${port}/`);
      await original.stop();
      const cold = readReports(reportFile)[0];
      if (before === "command")
        assert.deepEqual(commandLines(), [`before-checkpoint ${cold?.pid} ${cold?.baseKey}`]);
      else assert.deepEqual(afterCheckpoint.httpHooks, { before: 1 });

      for (const copy of [1, 2]) {
        const run = new WarmstartRun(args, env);
        await run.waitFor(/ready, warm/, "stderr");
        const answer = await getJson(`http://127.0.0.1:${port}/`);
        await run.stop();
        const warm = readReports(reportFile)[copy];
        if (after === "command") {
          assert.deepEqual(commandLines().slice(before === "command" ? 1 : 0), [
            ...(copy === 2 ? [`after-restore ${readReports(reportFile)[1]?.pid} ${cold?.baseKey}`] : []),
            `after-restore ${warm?.pid} ${cold?.baseKey}`,
          ]);
        } else {
          // The copy came from the snapshot, whose count was taken before any restore.
          assert.deepEqual(answer.httpHooks, before === "http" ? { before: 1, restore: 1 } : { restore: 1 });
        }
      }
      assert.deepEqual(
        hookLog(log).filter((line) => line.startsWith("http")),
        before === "http"
          ? ["http before before-checkpoint"]
          : ["http restore after-restore", "http restore after-restore"],
      );
    });
  }

  test("a prewarm's before-checkpoint request reaches the prewarmed app, not the instance serving on the same port", async () => {
    const { cacheDir, reportFile } = newCache();
    const port = await freePort();
    const url = `http://127.0.0.1:${port}/`;
    const command = ["node", fixture("hooks-app.cjs")];
    const hook = ["--before-checkpoint", `http://127.0.0.1:${port}/_warm/before`];
    const env = { ...SLOW_START, PORT: String(port), HOOK_LOG: join(cacheDir, "hooks.log"), HOOK_MODE: "ok" };
    const serving = new WarmstartRun(
      runArgs(cacheDir, reportFile, [`tcp:${port}`], command, ["--no-snapshot"]),
      env,
    );
    await serving.waitFor(/ready pid=/);
    const prewarm = new WarmstartRun(
      ["prewarm", "--cache-dir", cacheDir, "--ready", `tcp:${port}`, ...hook, "--", ...command],
      env,
    );
    assert.deepEqual(await prewarm.exited, { code: 0, signal: null }, prewarm.stderr);
    assert.deepEqual((await getJson(url)).httpHooks, {}, "the serving instance got no hook");
    await serving.stop();

    const warm = new WarmstartRun(runArgs(cacheDir, reportFile, [`tcp:${port}`], command, hook), env);
    await warm.waitFor(/ready, warm/, "stderr");
    assert.deepEqual((await getJson(url)).httpHooks, { before: 1 }, "the snapshot's app got it");
    await warm.stop();
  });
});
