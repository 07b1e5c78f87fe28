// A restored app's timers on a host whose monotonic clock is far lower than at dump time (after
// a reboot, on another host): simulated by taking the snapshot inside a time namespace whose
// clocks run 100000 s ahead, then restoring on the host's own clocks.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  fixture,
  freePort,
  newCache,
  runArgs,
  useIntegrationRig,
  WarmstartRun,
  waitForEntry,
} from "./rig.js";

useIntegrationRig();

describe("clocks", () => {
  it("a restored app's timers keep firing when the host's monotonic clock is lower than at dump time", async () => {
    const { cacheDir, reportFile } = newCache();
    const port = await freePort();
    const env = { PORT: String(port), TICK_MS: "200" };
    const args = runArgs(
      cacheDir,
      reportFile,
      [`tcp:127.0.0.1:${port}`],
      [process.execPath, fixture("ticker-server.cjs")],
    );
    const ahead = ["unshare", "--time", "--monotonic=100000", "--boottime=100000", "--fork", "--kill-child"];
    const cold = new WarmstartRun(args, env, ahead);
    await cold.waitFor(/snapshot saved/, "stderr", 60_000);
    await waitForEntry(cacheDir);
    // unshare --fork blocks SIGTERM in itself; SIGKILL ends it, and --kill-child the rest.
    await cold.stop("SIGKILL");

    const warm = new WarmstartRun(args, env);
    await warm.waitFor(/ready, warm/, "stderr", 60_000);
    // Timers are due 200 ms after the dump on the dump's clock: with that clock 100000 s
    // behind, they would wait a day. A tick printed after the restore shows they did not.
    const printedBefore = warm.stdout.length;
    await warm.waitFor(/tick \d+/, "stdout", 10_000);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    assert.match(warm.stdout.slice(printedBefore), /tick \d+/, `no tick after the restore:\n${warm.stderr}`);
    await warm.stop();
  });
});
