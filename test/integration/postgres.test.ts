// Issue 11's acceptance for connections: a Node app holding a pg.Pool to a real PostgreSQL
// (a private cluster started here, scripts/pg-test-cluster.sh) serves queries after each of
// two restores, with hooks that close and reopen its pool, and without them.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { after, before, describe, test } from "node:test";
import {
  fixture,
  freePort,
  getJson,
  makeTempDir,
  newCache,
  ROOT,
  readReports,
  runArgs,
  useIntegrationRig,
  WarmstartRun,
  waitForEntry,
} from "./rig.js";

useIntegrationRig();

const CLUSTER_SCRIPT = `${ROOT}scripts/pg-test-cluster.sh`;
let clusterDir = "";
let pgPort = 0;

before(async () => {
  // Its own temporary directory: the script hands it to the postgres user.
  clusterDir = makeTempDir("warmstart-pg-");
  pgPort = await freePort();
  execFileSync("bash", [CLUSTER_SCRIPT, "start", clusterDir, String(pgPort)], { stdio: "inherit" });
});

after(() => {
  if (clusterDir) execFileSync("bash", [CLUSTER_SCRIPT, "stop", clusterDir], { stdio: "inherit" });
});

async function assertServesAfterTwoRestores(pgHooks: "0" | "1"): Promise<void> {
  const { cacheDir, reportFile } = newCache();
  const port = await freePort();
  const url = `http://127.0.0.1:${port}/`;
  const args = runArgs(cacheDir, reportFile, [`tcp:${port}`], ["node", fixture("pg-app.cjs")]);
  // A slow start, so that the never-slower rule never starts a restore cold on a busy machine.
  const env = { PORT: String(port), PGPORT: String(pgPort), PG_HOOKS: pgHooks, STARTUP_MS: "3000" };

  const original = new WarmstartRun(args, env);
  await original.waitFor(/ready pid=/);
  await waitForEntry(cacheDir);
  const before = await getJson(url);
  assert.equal(before.answer, 42);
  await original.stop();

  const backends = new Set([before.backend]);
  for (const copy of ["first copy", "second copy"]) {
    const run = new WarmstartRun(args, env);
    await run.waitFor(/ready, warm/, "stderr");
    for (let i = 0; i < 3; i++) {
      const answer = await getJson(url);
      assert.equal(answer.answer, 42, `${copy}: ${JSON.stringify(answer)}\n${run.stderr}`);
      // With hooks, the snapshot holds the first pool (ended) and the copy made a second.
      assert.equal(answer.pools, pgHooks === "1" ? 2 : 1, `${copy}: ${JSON.stringify(answer)}`);
      backends.add(answer.backend);
    }
    await run.stop();
  }
  // Each copy talks to PostgreSQL over connections of its own.
  assert.ok(backends.size >= 3, `backends: ${[...backends]}`);
  assert.deepEqual(
    readReports(reportFile).map((report) => report.mode),
    ["cold", "warm", "warm"],
  );
}

describe("a pg.Pool across restores", () => {
  test("closed in onCheckpoint and reopened in onRestore, it serves queries after each of two restores", async () => {
    await assertServesAfterTwoRestores("1");
  });

  test("without hooks, a pool with an error listener recovers: the connections come back closed and are replaced", async () => {
    await assertServesAfterTwoRestores("0");
  });
});
