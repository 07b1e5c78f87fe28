// Issue 4: every key field, changed one at a time, makes the next launch cold and `-v`
// names it; volatile variables keep it warm.
import assert from "node:assert/strict";
import { appendFileSync, chmodSync, copyFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import {
  fixture,
  makeCacheDir,
  makeTempDir,
  readReports,
  runArgs,
  useIntegrationRig,
  WarmstartRun,
  waitForEntry,
} from "./rig.js";

useIntegrationRig();

interface Setup {
  readonly cacheDir: string;
  readonly appDir: string;
  readonly reportFile: string;
}

function setUp(): Setup {
  const cacheDir = makeCacheDir();
  const appDir = makeTempDir("warmstart-app-");
  copyFileSync(fixture("ticker-server.cjs"), join(appDir, "app.cjs"));
  writeFileSync(join(appDir, "settings.json"), '{"level": 1}\n');
  // The executable is this script, so editing it is "the executable changed".
  writeFileSync(join(appDir, "start.sh"), '#!/bin/bash\nexec node "$(dirname "$0")/app.cjs" "$@"\n');
  chmodSync(join(appDir, "start.sh"), 0o755);
  return { cacheDir, appDir, reportFile: join(cacheDir, "reports.jsonl") };
}

/** One launch until ready (and, when cold, until its snapshot is committed); returns its stderr. */
async function launchOnce(
  setup: Setup,
  options: { args?: string[]; env?: NodeJS.ProcessEnv } = {},
): Promise<{ mode: string; stderr: string }> {
  const run = new WarmstartRun(
    runArgs(
      setup.cacheDir,
      setup.reportFile,
      ["log:^ready pid="],
      [join(setup.appDir, "start.sh"), ...(options.args ?? [])],
      ["--input", join(setup.appDir, "*.json")],
    ),
    { PORT: "0", ...options.env },
  );
  const [, mode] = await run.waitFor(/ready, (cold|warm), pid/, "stderr");
  if (mode === "cold") await run.waitFor(/snapshot saved/, "stderr");
  await run.stop();
  const report = readReports(setup.reportFile).at(-1);
  assert.equal(report?.mode, mode);
  return { mode: mode ?? "", stderr: run.stderr };
}

async function assertWarm(setup: Setup, options: { args?: string[]; env?: NodeJS.ProcessEnv } = {}) {
  const { mode, stderr } = await launchOnce(setup, options);
  assert.equal(mode, "warm", stderr);
}

async function assertColdBecause(
  setup: Setup,
  reason: RegExp,
  options: { args?: string[]; env?: NodeJS.ProcessEnv } = {},
) {
  const { mode, stderr } = await launchOnce(setup, options);
  assert.equal(mode, "cold", stderr);
  assert.match(stderr, reason);
}

describe("cache key", () => {
  test("each field, changed alone, misses and is named; volatile variables stay warm", async () => {
    const setup = setUp();
    await assertColdBecause(setup, /miss: no snapshot of this command yet/, { env: { LEVEL: "1" } });
    await waitForEntry(setup.cacheDir);
    await assertWarm(setup, { env: { LEVEL: "1" } });

    // Volatile variables are not part of the key.
    await assertWarm(setup, { env: { LEVEL: "1", SHLVL: "7", OLDPWD: "/somewhere/else" } });

    await assertColdBecause(setup, /miss: env LEVEL changed/, { env: { LEVEL: "2" } });
    await assertWarm(setup, { env: { LEVEL: "2" } });

    await assertColdBecause(setup, /miss: args changed/, { env: { LEVEL: "2" }, args: ["--flag"] });
    await assertWarm(setup, { env: { LEVEL: "2" }, args: ["--flag"] });

    appendFileSync(join(setup.appDir, "settings.json"), "\n");
    await assertColdBecause(setup, /miss: input \S+settings\.json changed/, {
      env: { LEVEL: "2" },
      args: ["--flag"],
    });
    await assertWarm(setup, { env: { LEVEL: "2" }, args: ["--flag"] });

    appendFileSync(join(setup.appDir, "start.sh"), "# edited\n");
    await assertColdBecause(setup, /miss: executableSha256 changed/, {
      env: { LEVEL: "2" },
      args: ["--flag"],
    });
    await assertWarm(setup, { env: { LEVEL: "2" }, args: ["--flag"] });

    // The real CRIU, reporting another version: a different CRIU writes a different format.
    const otherCriu = join(setup.appDir, "criu-other");
    writeFileSync(
      otherCriu,
      '#!/bin/sh\nif [ "$1" = --version ]; then echo "Version: 4.2.99"; exit 0; fi\nexec /usr/local/sbin/criu "$@"\n',
    );
    chmodSync(otherCriu, 0o755);
    await assertColdBecause(setup, /miss: criuVersion changed/, {
      env: { LEVEL: "2", WARMSTART_CRIU: otherCriu },
      args: ["--flag"],
    });
    await assertWarm(setup, { env: { LEVEL: "2", WARMSTART_CRIU: otherCriu }, args: ["--flag"] });
  });
});
