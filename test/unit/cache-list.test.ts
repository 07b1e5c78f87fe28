import assert from "node:assert/strict";
import { chmodSync, truncateSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { listCacheEntries } from "../../src/cache/entry-list.js";
import { scanEntry } from "../../src/cache/entry-scan.js";
import { recordHit } from "../../src/cache/entry-stats.js";
import { commitFakeEntry, fakeKey, makeStore } from "./fake-entries.js";

describe("listCacheEntries", () => {
  test("most recently used first, with sizes, hits and timings; refused and corrupt last, untrusted", async () => {
    const store = makeStore().store;
    const idle = await commitFakeEntry(store, fakeKey("a1"), {
      command: ["node", "idle.js"],
      createdAt: "2025-01-03T00:00:00.000Z",
    });
    const busy = await commitFakeEntry(store, fakeKey("a2"), {
      command: ["node", "busy.js"],
      pagesBytes: 8192,
    });
    recordHit(busy.dir, 380, new Date("2025-01-05T00:00:00.000Z"));
    recordHit(busy.dir, 420, new Date("2025-01-06T00:00:00.000Z"));
    const exposed = await commitFakeEntry(store, fakeKey("a3"));
    chmodSync(exposed.dir, 0o750);
    const truncated = await commitFakeEntry(store, fakeKey("a0"));
    truncateSync(join(truncated.imagesDir, "pages-1.img"), 10);

    const listed = await listCacheEntries(store);
    assert.deepEqual(
      listed.map((entry) => [entry.key, entry.state]),
      [
        [busy.key, "ok"],
        [idle.key, "ok"],
        [truncated.key, "corrupt"],
        [exposed.key, "refused"],
      ],
    );
    const [first, second, third, fourth] = listed;
    assert.ok(first?.state === "ok" && second?.state === "ok");
    assert.deepEqual(first.manifest.command, ["node", "busy.js"]);
    assert.equal(first.sizeBytes, scanEntry(store, busy.key)?.sizeBytes);
    assert.deepEqual(
      [first.lastUsedAt, first.hits, first.coldReadyMs, first.warmReadyMs, first.bestWarmReadyMs],
      ["2025-01-06T00:00:00.000Z", 2, 1500, 420, 380],
    );
    assert.deepEqual(
      [second.lastUsedAt, second.hits, second.coldReadyMs, second.warmReadyMs, second.bestWarmReadyMs],
      ["2025-01-03T00:00:00.000Z", 0, 1500, null, null],
    );
    assert.deepEqual(third, {
      state: "corrupt",
      key: truncated.key,
      dir: truncated.dir,
      sizeBytes: scanEntry(store, truncated.key)?.sizeBytes,
      ownerUid: process.getuid?.(),
      isOwnedByUser: true,
      detail: `${join(truncated.imagesDir, "pages-1.img")} has 10 bytes, the manifest says 4096`,
    });
    assert.ok(fourth?.state === "refused");
    assert.equal(fourth.detail, `${exposed.dir} is readable by other users (mode 750)`);
    assert.equal("manifest" in fourth, false, "a refused entry's manifest is not shown");
  });

  test("an empty or missing store lists nothing", async () => {
    assert.deepEqual(await listCacheEntries(makeStore().store), []);
  });
});
