import assert from "node:assert/strict";
import { readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import {
  decideNeverSlower,
  isWarmNotFaster,
  REMEASURE_EVERY,
  readStats,
  recordHit,
  recordRuleColdLaunch,
} from "../../src/cache/entry-stats.js";
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

  test("recordHit counts, keeps the last three warm times, the best one and the cold time from the manifest", async () => {
    const entry = await newEntry();
    const first = recordHit(entry.dir, 410, new Date("2025-02-01T10:00:00.000Z"));
    assert.deepEqual(first, {
      lastUsedAt: "2025-02-01T10:00:00.000Z",
      hits: 1,
      warmReadyMs: 410,
      bestWarmReadyMs: 410,
      coldReadyMs: 1500,
      warmSamplesMs: [410],
      coldSamplesMs: [1500],
      coldSinceWarm: 0,
    });
    recordHit(entry.dir, 395, new Date("2025-02-02T10:00:00.000Z"));
    recordHit(entry.dir, 1600, new Date("2025-02-03T10:00:00.000Z"));
    recordHit(entry.dir, 420, new Date("2025-02-04T10:00:00.000Z"));
    assert.deepEqual(readStats(entry.dir), {
      lastUsedAt: "2025-02-04T10:00:00.000Z",
      hits: 4,
      warmReadyMs: 420,
      bestWarmReadyMs: 395,
      coldReadyMs: 1500,
      warmSamplesMs: [395, 1600, 420],
      coldSamplesMs: [1500],
      coldSinceWarm: 0,
    });
  });

  test("never slower: one slow restore proves nothing; the median of three does", () => {
    const base = { lastUsedAt: "2025-02-03T10:00:00.000Z", hits: 3, warmReadyMs: 1600, coldReadyMs: 1500 };
    // A cold page cache after a reboot: one slow restore among fast ones.
    assert.deepEqual(decideNeverSlower({ ...base, warmSamplesMs: [400, 1600, 420] }), {
      action: "restore",
      isRemeasure: false,
    });
    assert.equal(isWarmNotFaster({ ...base, warmSamplesMs: [400, 1600, 420] }), false);
    // Fewer than three samples: measure more before judging.
    assert.deepEqual(decideNeverSlower({ ...base, warmSamplesMs: [1600, 1700] }), {
      action: "restore",
      isRemeasure: false,
    });
    // Stats written before samples were kept count as one sample: not enough to judge.
    assert.deepEqual(decideNeverSlower(base), { action: "restore", isRemeasure: false });
    assert.deepEqual(decideNeverSlower({ ...base, warmSamplesMs: [1600, 1700, 1550] }), {
      action: "start-cold",
      warmMs: 1600,
      coldMs: 1500,
    });
    assert.equal(isWarmNotFaster({ ...base, warmSamplesMs: [1600, 1700, 1550] }), true);
    // Cold launches the rule made are cold samples too.
    assert.deepEqual(
      decideNeverSlower({ ...base, warmSamplesMs: [1600, 1700, 1550], coldSamplesMs: [1500, 1900, 1800] }),
      {
        action: "restore",
        isRemeasure: false,
      },
    );
    assert.equal(decideNeverSlower(undefined).action, "restore");
  });

  test("never slower: every REMEASURE_EVERY-th launch under the rule restores again", async () => {
    const entry = await newEntry();
    for (const ms of [1600, 1700, 1550]) recordHit(entry.dir, ms);
    const decisions: string[] = [];
    for (let launch = 1; launch <= REMEASURE_EVERY; launch++) {
      const decision = decideNeverSlower(readStats(entry.dir));
      decisions.push(decision.action === "restore" && decision.isRemeasure ? "remeasure" : decision.action);
      if (decision.action === "start-cold") recordRuleColdLaunch(entry.dir, 1500);
    }
    assert.deepEqual(decisions, [...Array(REMEASURE_EVERY - 1).fill("start-cold"), "remeasure"]);
    // The warm launch it measured was fast: the rule lets restores through again.
    recordHit(entry.dir, 300);
    recordHit(entry.dir, 310);
    assert.deepEqual(decideNeverSlower(readStats(entry.dir)), { action: "restore", isRemeasure: false });
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
