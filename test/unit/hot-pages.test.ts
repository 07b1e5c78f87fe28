import assert from "node:assert/strict";
import {
  chmodSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { findHotPages, HOT_PAGES_FILE, keepHotPages, MAX_HOT_PAGES } from "../../src/cache/hot-pages.js";
import { entriesOf, image, LAZY, PRESENT } from "./pagemap-fixture.js";

const root = mkdtempSync(join(tmpdir(), "warmstart-unit-hot-pages-"));
after(() => rmSync(root, { recursive: true, force: true }));

const PID = 41;
const FIRST_PAGE = 0x7f0000020;

/** An entry with one process's pagemap (lazy pages from FIRST_PAGE), and a restore's
 * staged link to it. */
function newEntry(lazyPages = 8) {
  const dir = mkdtempSync(join(root, "entry-"));
  const imagesDir = join(dir, "images");
  const stagedDir = join(dir, "staged");
  mkdirSync(imagesDir);
  mkdirSync(stagedDir);
  const pagemap = join(imagesDir, `pagemap-${PID}.img`);
  writeFileSync(
    pagemap,
    image([
      { vaddr: 0x10000 * 4096, nrPages: 2, flags: PRESENT },
      { vaddr: FIRST_PAGE * 4096, nrPages: lazyPages, flags: LAZY | PRESENT },
    ]),
    { mode: 0o600 },
  );
  linkSync(pagemap, join(stagedDir, `pagemap-${PID}.img`));
  const inventory = join(imagesDir, "inventory.img");
  writeFileSync(inventory, "CRIU's inventory", { mode: 0o600 });
  linkSync(inventory, join(stagedDir, "inventory.img"));
  return { dir, imagesDir, stagedDir, pagemap, inventory };
}

describe("an entry's hot pages", () => {
  test("are kept as a private copy of the pagemap with them eager, found while the pagemap is the same file", () => {
    const entry = newEntry();
    assert.deepEqual(
      findHotPages(entry.dir, entry.imagesDir).pagemaps,
      [],
      "an entry never restored lazily has none",
    );
    const faults = new Map([[PID, [FIRST_PAGE + 3, FIRST_PAGE + 2, 0x99999, FIRST_PAGE + 3]]]);
    assert.equal(keepHotPages(entry.dir, entry.imagesDir, entry.stagedDir, faults), 2);
    const hot = join(entry.dir, `hot-pagemap-${PID}.img`);
    assert.deepEqual(findHotPages(entry.dir, entry.imagesDir).pagemaps, [
      { name: `pagemap-${PID}.img`, path: hot, eagerPages: 2 },
    ]);
    assert.deepEqual(entriesOf(readFileSync(hot)).slice(1), [
      { vaddr: FIRST_PAGE * 4096, nrPages: 2, flags: LAZY | PRESENT },
      { vaddr: (FIRST_PAGE + 2) * 4096, nrPages: 2, flags: PRESENT },
      { vaddr: (FIRST_PAGE + 4) * 4096, nrPages: 4, flags: LAZY | PRESENT },
    ]);
    assert.equal(statSync(hot).mode & 0o777, 0o600);
    assert.equal(statSync(join(entry.dir, HOT_PAGES_FILE)).mode & 0o777, 0o600);
    assert.deepEqual(
      readdirSync(entry.dir).filter((name) => name.endsWith(".tmp")),
      [],
      "no temporary file left",
    );
    // The entry's pagemap is another file now (an entry replaced in place): the copy is not
    // this image's, and is not used.
    writeFileSync(`${entry.pagemap}.new`, readFileSync(entry.pagemap), { mode: 0o600 });
    rmSync(entry.pagemap);
    linkSync(`${entry.pagemap}.new`, entry.pagemap);
    assert.deepEqual(findHotPages(entry.dir, entry.imagesDir).pagemaps, []);
  });

  test("are not kept when the entry no longer holds the images the restore staged", () => {
    const entry = newEntry();
    // Replaced meanwhile (a --refresh): another dump's files under the same names.
    rmSync(entry.inventory);
    writeFileSync(entry.inventory, "another dump's inventory", { mode: 0o600 });
    assert.equal(
      keepHotPages(entry.dir, entry.imagesDir, entry.stagedDir, new Map([[PID, [FIRST_PAGE]]])),
      0,
    );
    assert.deepEqual(readdirSync(entry.dir).sort(), ["images", "staged"]);
    assert.deepEqual(findHotPages(entry.dir, entry.imagesDir), { isLearned: false, pagemaps: [] });
  });

  test("a learning restore that faulted on no lazy page is recorded, so that the next one does not learn again", () => {
    const entry = newEntry();
    assert.equal(keepHotPages(entry.dir, entry.imagesDir, entry.stagedDir, new Map([[PID, [0x99999]]])), 0);
    assert.deepEqual(findHotPages(entry.dir, entry.imagesDir), { isLearned: true, pagemaps: [] });
    const other = newEntry();
    assert.equal(keepHotPages(other.dir, other.imagesDir, other.stagedDir, new Map()), 0);
    assert.deepEqual(findHotPages(other.dir, other.imagesDir), { isLearned: true, pagemaps: [] });
    assert.deepEqual(readdirSync(other.dir).sort(), [HOT_PAGES_FILE, "images", "staged"]);
  });

  test("keep the first pages faulted on, up to the limit", () => {
    const entry = newEntry(MAX_HOT_PAGES + 10);
    const pages = Array.from(
      { length: MAX_HOT_PAGES + 10 },
      (_, index) => FIRST_PAGE + MAX_HOT_PAGES + 9 - index,
    );
    assert.equal(
      keepHotPages(entry.dir, entry.imagesDir, entry.stagedDir, new Map([[PID, pages]])),
      MAX_HOT_PAGES,
    );
    // The last ten faulted on are the entry's first ten pages: they stay lazy.
    const [, first] = entriesOf(readFileSync(join(entry.dir, `hot-pagemap-${PID}.img`)));
    assert.deepEqual(first, { vaddr: FIRST_PAGE * 4096, nrPages: 10, flags: LAZY | PRESENT });
  });

  test("are ignored when the record is damaged, or others could have written it or the copy", () => {
    const entry = newEntry();
    keepHotPages(entry.dir, entry.imagesDir, entry.stagedDir, new Map([[PID, [FIRST_PAGE]]]));
    const record = join(entry.dir, HOT_PAGES_FILE);
    const kept = readFileSync(record, "utf8");
    for (const text of ["{", '{"version":2,"processes":{}}', `{"version":1,"processes":{"${PID}":{}}}`]) {
      writeFileSync(record, text, { mode: 0o600 });
      assert.deepEqual(findHotPages(entry.dir, entry.imagesDir).pagemaps, [], text);
    }
    writeFileSync(record, kept, { mode: 0o600 });
    assert.equal(findHotPages(entry.dir, entry.imagesDir).pagemaps.length, 1);
    chmodSync(record, 0o666);
    assert.deepEqual(findHotPages(entry.dir, entry.imagesDir).pagemaps, [], "a record others can write");
    chmodSync(record, 0o600);
    const copy = join(entry.dir, `hot-pagemap-${PID}.img`);
    chmodSync(copy, 0o644);
    assert.deepEqual(findHotPages(entry.dir, entry.imagesDir).pagemaps, [], "a copy others can read");
    rmSync(copy);
    symlinkSync(entry.pagemap, copy);
    assert.deepEqual(findHotPages(entry.dir, entry.imagesDir).pagemaps, [], "a copy that is a symlink");
  });
});
