import assert from "node:assert/strict";
import { statfsSync } from "node:fs";
import { describe, test } from "node:test";
import { listEntryKeys, scanEntry } from "../../src/cache/entry-scan.js";
import { recordHit } from "../../src/cache/entry-stats.js";
import type { EntryStore } from "../../src/cache/entry-store.js";
import {
  DEFAULT_MAX_CACHE_BYTES,
  defaultMaxCacheBytes,
  dropOlderEntriesOfCommand,
  enforceCacheLimit,
} from "../../src/cache/eviction.js";
import { parseSize } from "../../src/cache/parse-size.js";
import { WarmstartError } from "../../src/errors.js";
import { commitFakeEntry, fakeHost, fakeKey, makeStore } from "./fake-entries.js";

function sizeOf(store: EntryStore, key: string): number {
  const scanned = scanEntry(store, key);
  assert.ok(scanned, `entry ${key} exists`);
  return scanned.sizeBytes;
}

/** Four 40 KiB entries last used on days 1..4 of January, in the order a, c, b, d. */
async function fillStore(store: EntryStore): Promise<Record<"a" | "b" | "c" | "d", string>> {
  const keys = { a: fakeKey("a"), b: fakeKey("b"), c: fakeKey("c"), d: fakeKey("d") };
  const lastUsedDay = { a: 1, c: 2, b: 3, d: 4 };
  for (const [name, key] of Object.entries(keys)) {
    const entry = await commitFakeEntry(store, key, { command: ["app", name], pagesBytes: 40 * 1024 });
    recordHit(entry.dir, 100, new Date(`2025-01-0${lastUsedDay[name as keyof typeof keys]}T00:00:00.000Z`));
  }
  return keys;
}

describe("enforceCacheLimit", () => {
  test("evicts least recently used first until the rest fit", async () => {
    const store = makeStore().store;
    const keys = await fillStore(store);
    const entryBytes = sizeOf(store, keys.a);
    // Room for two entries and a half: the two least recently used (a, then c) go.
    const outcome = enforceCacheLimit(store, { maxBytes: Math.floor(entryBytes * 2.5) });
    assert.deepEqual(
      outcome.evicted.map((entry) => entry.key),
      [keys.a, keys.c],
    );
    assert.deepEqual(listEntryKeys(store), [keys.b, keys.d]);
    assert.equal(outcome.entryCount, 2);
    assert.equal(outcome.totalBytes, sizeOf(store, keys.b) + sizeOf(store, keys.d));
    assert.deepEqual(outcome.foreign, []);
  });

  test("under the cap nothing is evicted", async () => {
    const store = makeStore().store;
    const keys = await fillStore(store);
    const outcome = enforceCacheLimit(store, { maxBytes: sizeOf(store, keys.a) * 4 });
    assert.deepEqual(outcome.evicted, []);
    assert.equal(listEntryKeys(store).length, 4);
  });

  test("never evicts `keep`, even the least recently used, and counts it against the cap", async () => {
    const store = makeStore().store;
    const keys = await fillStore(store);
    const entryBytes = sizeOf(store, keys.a);
    const outcome = enforceCacheLimit(store, { maxBytes: Math.floor(entryBytes * 2.5), keep: keys.a });
    assert.deepEqual(
      outcome.evicted.map((entry) => entry.key),
      [keys.c, keys.b],
    );
    assert.deepEqual(listEntryKeys(store), [keys.a, keys.d]);
  });

  test("a `keep` larger than the cap stays, alone", async () => {
    const store = makeStore().store;
    const keys = await fillStore(store);
    const outcome = enforceCacheLimit(store, { maxBytes: 1000, keep: keys.b });
    assert.deepEqual(
      outcome.evicted.map((entry) => entry.key),
      [keys.a, keys.c, keys.d],
    );
    assert.deepEqual(listEntryKeys(store), [keys.b]);
  });

  test("an entry larger than the whole cap goes; older ones that fit stay", async () => {
    const store = makeStore().store;
    const keys = await fillStore(store);
    const big = await commitFakeEntry(store, fakeKey("e"), { command: ["big"], pagesBytes: 400 * 1024 });
    recordHit(big.dir, 100, new Date("2025-01-05T00:00:00.000Z"));
    const outcome = enforceCacheLimit(store, { maxBytes: sizeOf(store, keys.a) * 4 });
    assert.deepEqual(
      outcome.evicted.map((entry) => entry.key),
      [big.key],
    );
    assert.deepEqual(listEntryKeys(store), [keys.a, keys.b, keys.c, keys.d]);
  });

  test("without stats, an entry was last used when it was created", async () => {
    const store = makeStore().store;
    const older = await commitFakeEntry(store, fakeKey("1"), { createdAt: "2025-01-02T00:00:00.000Z" });
    const newer = await commitFakeEntry(store, fakeKey("2"), {
      command: ["other"],
      createdAt: "2025-01-03T00:00:00.000Z",
    });
    recordHit(older.dir, 100, new Date("2025-01-04T00:00:00.000Z"));
    const outcome = enforceCacheLimit(store, { maxBytes: sizeOf(store, older.key) + 1 });
    assert.deepEqual(
      outcome.evicted.map((entry) => entry.key),
      [newer.key],
    );
  });

  test("the default cap is 20% of the free space, at most 10 GiB", () => {
    const { cacheDir, store } = makeStore();
    const fs = statfsSync(cacheDir);
    const expected = Math.min(10 * 1024 ** 3, Math.floor(fs.bavail * fs.bsize * 0.2));
    assert.equal(DEFAULT_MAX_CACHE_BYTES, 10 * 1024 ** 3);
    assert.equal(defaultMaxCacheBytes(cacheDir), expected);
    assert.equal(enforceCacheLimit(store).maxBytes, expected);
  });

  test("a bad maxBytes is an option error", () => {
    const store = makeStore().store;
    assert.throws(() => enforceCacheLimit(store, { maxBytes: -1 }), {
      name: "WarmstartError",
      message: "Expected maxBytes to be a non-negative integer number of bytes, got -1.",
    });
  });
});

describe("dropOlderEntriesOfCommand", () => {
  test("drops the same command in the same directory, nothing else", async () => {
    const store = makeStore().store;
    const older = await commitFakeEntry(store, fakeKey("01"), { command: ["node", "a.js"], cwd: "/srv/a" });
    const otherCwd = await commitFakeEntry(store, fakeKey("02"), {
      command: ["node", "a.js"],
      cwd: "/srv/b",
    });
    const otherCommand = await commitFakeEntry(store, fakeKey("03"), {
      command: ["node", "a.js", "--fast"],
      cwd: "/srv/a",
    });
    const prefixCommand = await commitFakeEntry(store, fakeKey("04"), { command: ["node"], cwd: "/srv/a" });
    const landed = await commitFakeEntry(store, fakeKey("05"), { command: ["node", "a.js"], cwd: "/srv/a" });
    const landedEntry = await store.lookup(landed.key);
    assert.ok(landedEntry.hit);
    const dropped = dropOlderEntriesOfCommand(store, landedEntry.entry.manifest);
    assert.deepEqual(dropped, [older.key]);
    assert.deepEqual(listEntryKeys(store), [otherCwd.key, otherCommand.key, prefixCommand.key, landed.key]);
  });

  test("keeps the same command in the same directory with another environment: a configuration, not an older version", async () => {
    // PORT=3000 and PORT=3001 of one app, launched by turns: dropping one for the other
    // would make every launch of each cold.
    const store = makeStore().store;
    const command = ["node", "server.js"];
    const port3000 = await commitFakeEntry(store, fakeKey("01"), { command, env: { PORT: "digest-3000" } });
    const older3001 = await commitFakeEntry(store, fakeKey("02"), { command, env: { PORT: "digest-3001" } });
    const landed = await commitFakeEntry(store, fakeKey("03"), { command, env: { PORT: "digest-3001" } });
    const landedEntry = await store.lookup(landed.key);
    assert.ok(landedEntry.hit);
    assert.deepEqual(dropOlderEntriesOfCommand(store, landedEntry.entry.manifest), [older3001.key]);
    assert.deepEqual(listEntryKeys(store), [port3000.key, landed.key]);
  });

  test("keeps entries for another host part and the newest earlier version under the same base key", async () => {
    const store = makeStore().store;
    const host = fakeHost();
    const base = "b".repeat(64);
    const same = { command: ["node", "a.js"], cwd: "/srv/a", baseKey: base, host };
    const oldest = await commitFakeEntry(store, fakeKey("11"), {
      ...same,
      createdAt: "2025-01-01T00:00:00.000Z",
    });
    const previous = await commitFakeEntry(store, fakeKey("12"), {
      ...same,
      createdAt: "2025-01-02T00:00:00.000Z",
    });
    const smallCgroup = await commitFakeEntry(store, fakeKey("13"), {
      ...same,
      host: fakeHost({ memoryLimitBytes: 512 * 1024 ** 2 }),
    });
    const otherBase = await commitFakeEntry(store, fakeKey("14"), { ...same, baseKey: "c".repeat(64) });
    const landed = await commitFakeEntry(store, fakeKey("15"), {
      ...same,
      createdAt: "2025-01-03T00:00:00.000Z",
    });
    const landedEntry = await store.lookup(landed.key);
    assert.ok(landedEntry.hit);
    assert.deepEqual(dropOlderEntriesOfCommand(store, landedEntry.entry.manifest), [
      oldest.key,
      otherBase.key,
    ]);
    assert.deepEqual(listEntryKeys(store), [previous.key, smallCgroup.key, landed.key]);
  });
});

describe("parseSize", () => {
  test("bytes, K, M, G, T in powers of 1024, with or without B/iB", () => {
    assert.equal(parseSize("1234"), 1234);
    assert.equal(parseSize("1234B"), 1234);
    assert.equal(parseSize("4K"), 4096);
    assert.equal(parseSize("500M"), 500 * 1024 ** 2);
    assert.equal(parseSize("500m"), 500 * 1024 ** 2);
    assert.equal(parseSize("10G"), 10 * 1024 ** 3);
    assert.equal(parseSize("10GiB"), 10 * 1024 ** 3);
    assert.equal(parseSize("10GB"), 10 * 1024 ** 3);
    assert.equal(parseSize("1.5G"), 1.5 * 1024 ** 3);
    assert.equal(parseSize("2T"), 2 * 1024 ** 4);
  });

  const expected = "a positive size in bytes, or with a K, M, G or T suffix (like 500M or 10G)";
  for (const bad of ["", "ten", "10X", "-5M", "0", "0.4", "1e3", "10 G B", "G", "99999999999T"]) {
    test(`${JSON.stringify(bad)} is refused, naming the option and the value`, () => {
      assert.throws(
        () => parseSize(bad),
        (error: unknown) => {
          assert.ok(error instanceof WarmstartError);
          assert.equal(error.code, "invalid-option");
          assert.equal(
            error.message,
            `Expected --max-cache-size to be ${expected}, got ${JSON.stringify(bad)}.`,
          );
          assert.deepEqual(error.details, { option: "--max-cache-size", got: bad });
          return true;
        },
      );
    });
  }
});
