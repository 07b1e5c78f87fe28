// `npm run bench:key`: the cache key of a warm launch of `node` with a 100-file app
// declared as inputs (issue 4: under 5 ms). The first computation hashes everything (the
// node binary is ~100 MB); later ones find every file in the stat-keyed memo, as a warm
// launch does. Each timed call starts from a fresh FileHashIndex, read from disk.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FileHashIndex } from "../src/cache/file-hash.js";
import { computeBaseKey } from "../src/cache/key.js";
import { collectKeyFields } from "../src/cache/key-fields.js";

const FILES = 100;
const root = mkdtempSync(join(tmpdir(), "warmstart-key-bench-"));
try {
  const cacheDir = join(root, "cache");
  const appDir = join(root, "app");
  mkdirSync(cacheDir, { mode: 0o700 });
  for (let i = 0; i < FILES; i++) {
    const dir = join(appDir, "src", `module-${i % 10}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      join(dir, `file-${i}.js`),
      `export const value${i} = ${JSON.stringify("x".repeat(4000 + i))};\n`,
    );
  }
  const inputs = {
    executable: process.execPath,
    args: [join(appDir, "src/module-0/file-0.js")],
    cwd: appDir,
    env: process.env,
    envIgnore: new Set<string>(),
    inputPatterns: ["src/**/*.js"],
    inputIgnore: [],
    criuVersion: "4.2.1",
  };
  const computeKey = async () => {
    const hashes = new FileHashIndex(cacheDir);
    const fields = await collectKeyFields(inputs, cacheDir, hashes);
    await hashes.save();
    if (Object.keys(fields.inputs).length !== FILES) throw new Error(`expected ${FILES} inputs`);
    return computeBaseKey(fields);
  };
  const firstStarted = performance.now();
  const key = await computeKey();
  const firstMs = performance.now() - firstStarted;
  const { Bench } = await import("tinybench");
  const bench = new Bench({ time: 2000, warmupTime: 200, throws: true });
  bench.add("key", async () => {
    if ((await computeKey()) !== key) throw new Error("the key changed between identical launches");
  });
  await bench.run();
  const result = bench.getTask("key")?.result;
  if (!result || !("latency" in result)) throw new Error("the key benchmark did not run");
  const { p50, p99, samplesCount } = result.latency;
  process.stdout.write(
    `key of node + a ${FILES}-file app: first (hashing everything) ${firstMs.toFixed(1)} ms; ` +
      `warm median ${p50.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms (${samplesCount} samples)\n`,
  );
} finally {
  rmSync(root, { recursive: true, force: true });
}
