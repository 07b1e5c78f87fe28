import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { chmodSync, linkSync, lstatSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { verifyEntry } from "../../src/cache/entry-verify.js";
import { FileHashIndex, IMAGE_PURPOSE } from "../../src/cache/file-hash.js";
import { flipByte } from "../corrupt-file.js";
import { commitFakeEntry, fakeKey, makeStore } from "./fake-entries.js";

describe("verifyEntry", () => {
  test("a sound entry is ok", async () => {
    const store = makeStore().store;
    const entry = await commitFakeEntry(store, fakeKey("c0"));
    const outcome = await verifyEntry(store, entry.key);
    assert.equal(outcome.state, "ok");
  });

  test("one flipped byte in a pages file: the lookup misses it, verify does not", async () => {
    const store = makeStore().store;
    const entry = await commitFakeEntry(store, fakeKey("c1"), { pagesBytes: 64 * 1024 });
    const pages = join(entry.imagesDir, "pages-1.img");
    flipByte(pages, 40_000);
    // Launches skip hashing pages (too slow for a warm start): that is what verify is for.
    assert.equal((await store.lookup(entry.key)).hit, true);
    assert.deepEqual(await verifyEntry(store, entry.key), {
      state: "corrupt",
      detail: `${pages} does not match its sha256 in the manifest`,
    });
  });

  test("damaged metadata and unsafe modes are reported as the lookup words them", async () => {
    const store = makeStore().store;
    const damaged = await commitFakeEntry(store, fakeKey("c2"));
    flipByte(join(damaged.imagesDir, "core-1.img"), 0);
    assert.deepEqual(await verifyEntry(store, damaged.key), {
      state: "corrupt",
      detail: `${join(damaged.imagesDir, "core-1.img")} does not match its sha256 in the manifest`,
    });
    const exposed = await commitFakeEntry(store, fakeKey("c3"));
    chmodSync(exposed.dir, 0o755);
    assert.deepEqual(await verifyEntry(store, exposed.key), {
      state: "refused",
      detail: `${exposed.dir} is readable by other users (mode 755)`,
    });
  });

  test("a launch's lookup hashes a small image file again only once it has changed", async () => {
    const { cacheDir, store } = makeStore();
    const entry = await commitFakeEntry(store, fakeKey("c5"));
    const core = join(entry.imagesDir, "core-1.img");
    const hashes = new FileHashIndex(cacheDir);
    assert.equal((await store.lookup(entry.key, hashes)).hit, true);
    // Remembered: the same version of the file is not read again, even after a restore has
    // hard-linked it into its staging directory and unlinked it (which moves its ctime).
    const staged = join(cacheDir, "staged-core.img");
    linkSync(core, staged);
    rmSync(staged);
    const stat = lstatSync(core, { bigint: true });
    assert.equal(
      hashes.memoizeSync(core, IMAGE_PURPOSE, stat, () => assert.fail("re-read an unchanged file")),
      createHash("sha256").update(readFileSync(core)).digest("hex"),
    );
    // A write moves the mtime: the memo does not vouch for the new bytes.
    flipByte(core, 0);
    assert.deepEqual(await store.lookup(entry.key, hashes), {
      hit: false,
      reason: "corrupt",
      detail: `${core} does not match its sha256 in the manifest`,
      dir: entry.dir,
    });
  });

  test("an entry that is gone is missing", async () => {
    const store = makeStore().store;
    assert.deepEqual(await verifyEntry(store, fakeKey("c4")), { state: "missing" });
  });
});
