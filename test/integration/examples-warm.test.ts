// Issue 3: the second launch of each example restores the state its first launch built,
// from a new host PID.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { describe, test } from "node:test";
import {
  freePort,
  getJson,
  newCache,
  ROOT,
  readReports,
  runArgs,
  useIntegrationRig,
  WarmstartRun,
} from "./rig.js";

useIntegrationRig();

const EXAMPLES = [
  { name: "node-slow-server", command: ["node", join(ROOT, "examples/node-slow-server/server.js")] },
  { name: "jvm-slow-server", command: ["bash", join(ROOT, "examples/jvm-slow-server/run.sh")] },
];

describe("examples through warmstart", () => {
  for (const example of EXAMPLES) {
    test(`${example.name}: the second launch is warm, with the first launch's state, from a new PID`, {
      timeout: 180_000,
    }, async () => {
      if (example.name === "jvm-slow-server") {
        execFileSync("bash", [join(ROOT, "examples/jvm-slow-server/build.sh")], { stdio: "ignore" });
      }
      const { cacheDir, reportFile } = newCache();
      const port = await freePort();
      const args = runArgs(cacheDir, reportFile, [`tcp:${port}`], example.command);
      const env = { PORT: String(port) };

      const cold = new WarmstartRun(args, env);
      await cold.waitFor(/snapshot saved/, "stderr", 120_000);
      const first = await getJson(`http://127.0.0.1:${port}/`);
      await cold.stop();

      const warm = new WarmstartRun(args, env);
      await warm.waitFor(/ready, warm, pid/, "stderr", 60_000);
      const second = await getJson(`http://127.0.0.1:${port}/`);
      await warm.stop();

      // The state built at startup, and when: the restored process did not start again.
      assert.equal(second.fingerprint, first.fingerprint);
      assert.equal(second.startedAt, first.startedAt);
      assert.equal(second.readyAt, first.readyAt);
      const [coldReport, warmReport] = readReports(reportFile);
      assert.equal(coldReport?.mode, "cold");
      assert.equal(warmReport?.mode, "warm");
      assert.notEqual(warmReport?.pid, coldReport?.pid, "restored under a new host PID");
      assert.equal(second.pid, first.pid, "inside its namespace it keeps the PID it had");
    });
  }
});
