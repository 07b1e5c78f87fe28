import assert from "node:assert/strict";
import { readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { isWarmNotFaster, readStats, recordHit } from "../../src/cache/entry-stats.js";
import { commitFakeEntry, fakeKey, makeStore } from "./fake-entries.js";

async function newEntry() {
  const { store } = makeStore();
  return commitFakeEntry(store, fakeKey("ab"));
}

describe("entry stats", () => {
  test("an entry nobody restored yet has no stats", async () => {
    const entry = await newEntry();
    assert.equal(readStats(entry.dir), undefined);
  });

  test("recordHit counts, keeps the last and the best warm time and the cold time from the manifest", async () => {
    const entry = await newEntry();
    const first = recordHit(entry.dir, 410, new Date("2025-02-01T10:00:00.000Z"));
    assert.deepEqual(first, {
      lastUsedAt: "2025-02-01T10:00:00.000Z",
      hits: 1,
      warmReadyMs: 410,
      bestWarmReadyMs: 410,
      coldReadyMs: 1500,
    });
    recordHit(entry.dir, 395, new Date("2025-02-02T10:00:00.000Z"));
    recordHit(entry.dir, 1600, new Date("2025-02-03T10:00:00.000Z"));
    assert.deepEqual(readStats(entry.dir), {
      lastUsedAt: "2025-02-03T10:00:00.000Z",
      hits: 3,
      warmReadyMs: 1600,
      bestWarmReadyMs: 395,
      coldReadyMs: 1500,
    });
  });

  test("warm counts as not faster only when even the best warm launch was not", () => {
    const stats = { lastUsedAt: "2025-02-03T10:00:00.000Z", hits: 3, coldReadyMs: 1500 };
    assert.equal(isWarmNotFaster({ ...stats, warmReadyMs: 1600, bestWarmReadyMs: 395 }), false);
    assert.equal(isWarmNotFaster({ ...stats, warmReadyMs: 1600, bestWarmReadyMs: 1500 }), true);
    // Stats written before the best time was kept: the last one decides.
    assert.equal(isWarmNotFaster({ ...stats, warmReadyMs: 1600 }), true);
    assert.equal(isWarmNotFaster(undefined), false);
  });

  test("stats.json is 0600, beside the manifest, and no temp file is left", async () => {
    const entry = await newEntry();
    recordHit(entry.dir, 400);
    assert.equal(statSync(join(entry.dir, "stats.json")).mode & 0o777, 0o600);
    assert.deepEqual(readdirSync(entry.dir).sort(), ["images", "manifest.json", "stats.json"]);
    assert.deepEqual(readdirSync(entry.imagesDir).sort(), ["core-1.img", "pages-1.img"]);
  });

  test("an entry evicted meanwhile: recordHit gives undefined instead of failing the launch", async () => {
    const entry = await newEntry();
    rmSync(entry.dir, { recursive: true });
    assert.equal(recordHit(entry.dir, 400), undefined);
  });

  test("garbage, a wrong shape or a symlink read as no stats", async () => {
    const entry = await newEntry();
    const path = join(entry.dir, "stats.json");
    writeFileSync(path, "{not json", { mode: 0o600 });
    assert.equal(readStats(entry.dir), undefined);
    writeFileSync(path, JSON.stringify({ lastUsedAt: "yesterday", hits: 1, warmReadyMs: 1, coldReadyMs: 1 }));
    assert.equal(readStats(entry.dir), undefined);
    rmSync(path);
    const elsewhere = join(entry.dir, "..", "elsewhere.json");
    writeFileSync(
      elsewhere,
      JSON.stringify({ lastUsedAt: "2025-01-01T00:00:00.000Z", hits: 9, warmReadyMs: 1, coldReadyMs: 1 }),
    );
    symlinkSync(elsewhere, path);
    assert.equal(readStats(entry.dir), undefined);
    // A hit replaces the symlink itself, never the file it points to.
    recordHit(entry.dir, 380, new Date("2025-03-01T00:00:00.000Z"));
    assert.equal(readStats(entry.dir)?.hits, 1);
    assert.equal(JSON.parse(readFileSync(elsewhere, "utf8")).hits, 9);
  });
});
