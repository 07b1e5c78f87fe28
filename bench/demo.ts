// `npm run demo`: launches the Node example through warmstart cold, stops it, launches it
// again (warm, restored from the snapshot), and prints both times to first response.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { IMAGE_FORMAT_VERSION } from "../src/cache/key.js";
import { measureTtfr, stop } from "./ttfr.js";

const root = fileURLToPath(new URL("../../", import.meta.url));
const cli = join(root, "dist/bundle/cli.cjs");
const server = join(root, "examples/node-slow-server/server.js");
const port = 3000 + Math.floor(Math.random() * 1000);
const cacheDir = mkdtempSync(join(tmpdir(), "warmstart-demo-"));
const url = `http://127.0.0.1:${port}/`;
const command = [
  process.execPath,
  cli,
  "run",
  "--cache-dir",
  cacheDir,
  "--ready",
  `tcp:${port}`,
  "--",
  "node",
  server,
];
const env = { ...process.env, PORT: String(port) };

try {
  process.stdout.write(`warmstart demo: ${server} on port ${port}\n\n`);
  const cold = await measureTtfr(command, url, { env });
  process.stdout.write(
    `cold launch:  first response after ${cold.ttfrMs.toFixed(0)} ms (pid ${cold.body.pid})\n`,
  );
  // The checkpoint is taken after readiness, while the app serves: give it time to land.
  await waitForSnapshot(cacheDir);
  await stop(cold.child);
  const warm = await measureTtfr(command, url, { env });
  await stop(warm.child);
  // A restored copy answers with the PID it had when it was checkpointed (CRIU gives it back
  // inside a new PID namespace); a cold start would have a new one.
  if (warm.body.pid !== cold.body.pid) {
    process.stderr.write(
      `warm launch:  first response after ${warm.ttfrMs.toFixed(0)} ms, but it was NOT restored (pid ${warm.body.pid}, cold was ${cold.body.pid}); run with -v to see why\n`,
    );
    process.exitCode = 1;
  } else {
    process.stdout.write(
      `warm launch:  first response after ${warm.ttfrMs.toFixed(0)} ms (restored: pid ${warm.body.pid} again, the index the cold launch built)\n`,
    );
  }
  process.stdout.write(
    `\nwarm / cold = ${(warm.ttfrMs / cold.ttfrMs).toFixed(2)} (${(cold.ttfrMs / warm.ttfrMs).toFixed(1)}x faster)\n`,
  );
} finally {
  rmSync(cacheDir, { recursive: true, force: true });
}

async function waitForSnapshot(dir: string): Promise<void> {
  const { readdirSync } = await import("node:fs");
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    try {
      if (readdirSync(join(dir, `v${IMAGE_FORMAT_VERSION}`)).some((name) => !name.startsWith("."))) return;
    } catch {
      // Not created yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error("the cold launch did not produce a snapshot within 60 s (run with -v to see why)");
}
