// `npm run demo` is one of the README's two commands: it must launch the example cold, then
// restore it (the same PID inside its namespace), and say so.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { test } from "node:test";
import { ROOT, useIntegrationRig } from "./rig.js";

useIntegrationRig();

test("npm run demo: cold, then restored warm, and the ratio", () => {
  const result = spawnSync(process.execPath, [join(ROOT, "dist/bench/demo.js")], {
    encoding: "utf8",
    timeout: 180_000,
  });
  assert.equal(result.status, 0, `${result.stdout}\n${result.stderr}`);
  assert.match(result.stdout, /^cold launch: {2}first response after \d+ ms \(pid \d+\)$/m);
  assert.match(result.stdout, /^warm launch: {2}first response after \d+ ms \(restored: pid \d+ again/m);
  assert.match(result.stdout, /^warm \/ cold = \d+\.\d\d/m);
});
