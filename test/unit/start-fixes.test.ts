import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { readStartFixes, saveStartFixes } from "../../src/cache/start-fixes.js";

const made: string[] = [];
function makeCacheDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "warmstart-fixes-"));
  made.push(dir);
  return dir;
}
after(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

describe("pre-flight fixes kept for the next cold start", () => {
  test("saved privately and atomically, read back; only the known variable with its one value", () => {
    const cacheDir = makeCacheDir();
    saveStartFixes(cacheDir, "k1", {
      env: { UV_USE_IO_URING: "0", LD_PRELOAD: "/tmp/evil.so" },
      reason: "an io_uring instance",
    });
    assert.deepEqual(readStartFixes(cacheDir, "k1"), {
      env: { UV_USE_IO_URING: "0" },
      reason: "an io_uring instance",
    });
    assert.equal(statSync(join(cacheDir, "fixes")).mode & 0o777, 0o700);
    assert.equal(statSync(join(cacheDir, "fixes/k1.json")).mode & 0o777, 0o600);
    assert.deepEqual(readdirSync(join(cacheDir, "fixes")), ["k1.json"]);
    assert.equal(readStartFixes(cacheDir, "other"), undefined);
    // Nothing allowed, nothing written.
    saveStartFixes(cacheDir, "k2", { env: { UV_USE_IO_URING: "1" }, reason: "?" });
    assert.equal(readStartFixes(cacheDir, "k2"), undefined);
    assert.deepEqual(readdirSync(join(cacheDir, "fixes")), ["k1.json"]);
  });

  test("a file edited to set something else, or writable by others, sets nothing", () => {
    const cacheDir = makeCacheDir();
    saveStartFixes(cacheDir, "k", { env: { UV_USE_IO_URING: "0" }, reason: "r" });
    const path = join(cacheDir, "fixes/k.json");
    writeFileSync(path, JSON.stringify({ env: { NODE_OPTIONS: "--require /tmp/x.js" }, reason: "r" }));
    assert.equal(readStartFixes(cacheDir, "k"), undefined);
    writeFileSync(path, JSON.stringify({ env: { UV_USE_IO_URING: "0" }, reason: "r" }));
    chmodSync(path, 0o666);
    assert.equal(readStartFixes(cacheDir, "k"), undefined);
    writeFileSync(path, "not json");
    chmodSync(path, 0o600);
    assert.equal(readStartFixes(cacheDir, "k"), undefined);
  });
});
