import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readdirSync, utimesSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { describe, test } from "node:test";
import { listEntryKeys, scanEntry } from "../../src/cache/entry-scan.js";
import { recordHit } from "../../src/cache/entry-stats.js";
import { currentOwner, formatOwnerTag } from "../../src/cache/owner-stamp.js";
import { pruneCache } from "../../src/cache/prune.js";
import { commitFakeEntry, fakeKey, makeStore } from "./fake-entries.js";

/** A PID that just exited: nothing owns a directory named after it. */
function deadPid(): number {
  const { pid } = spawnSync("true");
  assert.ok(pid);
  return pid;
}

/** V8 words JSON errors differently from one Node version to the next. */
function jsonErrorOf(text: string): string {
  try {
    JSON.parse(text);
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error(`${text} is valid JSON`);
}

describe("pruneCache", () => {
  test("removes abandoned dumps, the user's refused and damaged entries, then the LRU over the cap", async () => {
    const { store } = makeStore();
    const old = await commitFakeEntry(store, fakeKey("b1"), { command: ["old"], pagesBytes: 32 * 1024 });
    recordHit(old.dir, 100, new Date("2025-01-01T00:00:00.000Z"));
    const fresh = await commitFakeEntry(store, fakeKey("b2"), { command: ["fresh"], pagesBytes: 32 * 1024 });
    recordHit(fresh.dir, 100, new Date("2025-01-02T00:00:00.000Z"));
    const exposed = await commitFakeEntry(store, fakeKey("b3"));
    chmodSync(join(exposed.imagesDir, "core-1.img"), 0o644);
    const damaged = await commitFakeEntry(store, fakeKey("b4"));
    writeFileSync(join(damaged.dir, "manifest.json"), "{", { mode: 0o600 });
    const deadOwner = formatOwnerTag({ ...currentOwner(), pid: deadPid(), startTicks: 1 });
    const abandoned = `.pending-${"b5".padEnd(16, "0")}-${deadOwner}-0badf00d`;
    mkdirSync(join(store.root, abandoned, "images"), { recursive: true });
    const live = store.createPending(fakeKey("b6"));
    // A store of an older format version: never read, removed whole.
    const oldFormat = join(dirname(store.root), "v1");
    mkdirSync(join(oldFormat, fakeKey("b7")), { recursive: true });
    writeFileSync(join(oldFormat, fakeKey("b7"), "manifest.json"), "{}");
    const exposedBytes = scanEntry(store, exposed.key)?.sizeBytes;
    const damagedBytes = scanEntry(store, damaged.key)?.sizeBytes;
    const freshBytes = scanEntry(store, fresh.key)?.sizeBytes ?? 0;

    const report = await pruneCache(store, { maxBytes: freshBytes + 100 });

    assert.deepEqual(report.otherFormats, [{ name: "v1", sizeBytes: 2 }]);
    assert.equal(existsSync(oldFormat), false);
    assert.deepEqual(report.abandoned, [`${basename(store.root)}/${abandoned}`]);
    assert.deepEqual(report.removed, [
      {
        key: exposed.key,
        state: "refused",
        detail: `${join(exposed.imagesDir, "core-1.img")} is readable by other users (mode 644)`,
        sizeBytes: exposedBytes,
      },
      {
        key: damaged.key,
        state: "corrupt",
        detail: `${join(damaged.dir, "manifest.json")} is not valid JSON (${jsonErrorOf("{")})`,
        sizeBytes: damagedBytes,
      },
    ]);
    assert.deepEqual(report.kept, []);
    assert.deepEqual(
      report.limit.evicted.map((entry) => entry.key),
      [old.key],
    );
    assert.deepEqual(
      [report.limit.entryCount, report.limit.totalBytes, report.limit.maxBytes],
      [1, freshBytes, freshBytes + 100],
    );
    assert.deepEqual(listEntryKeys(store), [fresh.key]);
    // This process's own dump in progress is not abandoned.
    assert.deepEqual(
      readdirSync(store.root).filter((name) => name.startsWith(".")),
      [live.dir.split("/").pop()],
    );
  });

  test("unfinished copies of CRIU's kernel-feature cache that no probe will finish go; a fresh one and the copy stay", async () => {
    const { cacheDir, store } = makeStore();
    const dir = join(cacheDir, "kerndat");
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    // A launch killed while its probe ran, two minutes ago; a probe running now; the copy.
    const twoMinutesAgo = new Date(Date.now() - 120_000);
    for (const name of [".0123456789ab.tmp", ".ba9876543210.tmp", "criu-0123.kdat"])
      writeFileSync(join(dir, name), "kdat", { mode: 0o600 });
    utimesSync(join(dir, ".0123456789ab.tmp"), twoMinutesAgo, twoMinutesAgo);
    utimesSync(join(dir, "criu-0123.kdat"), twoMinutesAgo, twoMinutesAgo);
    const report = await pruneCache(store);
    assert.deepEqual(report.abandoned, ["kerndat/.0123456789ab.tmp"]);
    assert.deepEqual(readdirSync(dir).sort(), [".ba9876543210.tmp", "criu-0123.kdat"]);
  });

  test("the hash memo of earlier versions, which held every discovered input's hash too, goes", async () => {
    const { cacheDir, store } = makeStore();
    writeFileSync(join(cacheDir, "file-hashes.json"), "{}", { mode: 0o600 });
    const report = await pruneCache(store);
    assert.deepEqual(report.abandoned, ["file-hashes.json"]);
    assert.equal(existsSync(join(cacheDir, "file-hashes.json")), false);
  });

  test("a clean cache under the cap: nothing to do", async () => {
    const { store } = makeStore();
    const entry = await commitFakeEntry(store, fakeKey("b7"));
    const report = await pruneCache(store, { maxBytes: 1024 ** 3 });
    assert.deepEqual(
      { ...report, limit: { ...report.limit } },
      {
        otherFormats: [],
        abandoned: [],
        removed: [],
        kept: [],
        limit: {
          maxBytes: 1024 ** 3,
          evicted: [],
          entryCount: 1,
          totalBytes: scanEntry(store, entry.key)?.sizeBytes,
          foreign: [],
        },
      },
    );
  });
});
