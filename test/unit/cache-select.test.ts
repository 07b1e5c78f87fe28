import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { removeEntry } from "../../src/cache/entry-remove.js";
import { listEntryKeys, scanEntry } from "../../src/cache/entry-scan.js";
import { isKeyPrefix, resolveKeyPrefix } from "../../src/cache/entry-select.js";
import type { EntryStore } from "../../src/cache/entry-store.js";
import { commitFakeEntry, fakeKey, makeStore } from "./fake-entries.js";

async function storeWith(prefixes: string[]): Promise<EntryStore> {
  const { store } = makeStore();
  for (const prefix of prefixes) await commitFakeEntry(store, fakeKey(prefix), { command: [prefix] });
  return store;
}

describe("resolveKeyPrefix", () => {
  test("a prefix shared by two entries is ambiguous and names both", async () => {
    const store = await storeWith(["3f2a", "3f9b", "7c"]);
    assert.deepEqual(resolveKeyPrefix(store, "3f"), {
      found: false,
      reason: "ambiguous",
      matches: [fakeKey("3f2a"), fakeKey("3f9b")],
    });
  });

  test("one more digit picks one; upper case is the same key", async () => {
    const store = await storeWith(["3f2a", "3f9b", "7c"]);
    assert.deepEqual(resolveKeyPrefix(store, "3f2"), { found: true, key: fakeKey("3f2a") });
    assert.deepEqual(resolveKeyPrefix(store, "3F9"), { found: true, key: fakeKey("3f9b") });
    assert.deepEqual(resolveKeyPrefix(store, fakeKey("7c")), { found: true, key: fakeKey("7c") });
  });

  test("no match is not-found; pending, evicted and lock files never match", async () => {
    const store = await storeWith(["3f2a"]);
    store.createPending(fakeKey("ab"));
    writeFileSync(join(store.root, `.lock-${fakeKey("ab")}`), "1");
    assert.deepEqual(resolveKeyPrefix(store, "ab"), { found: false, reason: "not-found" });
    assert.deepEqual(resolveKeyPrefix(store, "e"), { found: false, reason: "not-found" });
  });

  test("a prefix is 1 to 64 hexadecimal digits", () => {
    assert.equal(isKeyPrefix("3f"), true);
    assert.equal(isKeyPrefix(fakeKey("3f")), true);
    assert.equal(isKeyPrefix(""), false);
    assert.equal(isKeyPrefix("xyz"), false);
    assert.equal(isKeyPrefix("../3f"), false);
    assert.equal(isKeyPrefix(`${fakeKey("3f")}0`), false);
  });
});

describe("removeEntry", () => {
  test("removes the user's entry whole and tells its size", async () => {
    const store = await storeWith(["3f2a", "3f9b"]);
    const sizeBytes = scanEntry(store, fakeKey("3f2a"))?.sizeBytes;
    assert.deepEqual(removeEntry(store, fakeKey("3f2a")), { removed: true, key: fakeKey("3f2a"), sizeBytes });
    assert.deepEqual(listEntryKeys(store), [fakeKey("3f9b")]);
  });

  test("an entry already gone is missing", async () => {
    const store = await storeWith([]);
    assert.deepEqual(removeEntry(store, fakeKey("3f")), {
      removed: false,
      key: fakeKey("3f"),
      reason: "missing",
    });
  });
});
