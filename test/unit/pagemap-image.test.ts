import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { makePagesEager } from "../../src/criu/pagemap-image.js";
import { type Entry, entriesOf, frame, image, LAZY, PRESENT } from "./pagemap-fixture.js";

/** Each present page's address, in the order the pages image holds them. */
function presentPages(entries: readonly Entry[]): number[] {
  return entries
    .filter((entry) => entry.flags & PRESENT)
    .flatMap((entry) => Array.from({ length: entry.nrPages }, (_, index) => entry.vaddr + index * 4096));
}

const PAGE = (address: number) => address / 4096;
const original: Entry[] = [
  { vaddr: 0x7f0000010000, nrPages: 4, flags: PRESENT },
  { vaddr: 0x7f0000020000, nrPages: 6, flags: LAZY | PRESENT },
  { vaddr: 0x7f0000040000, nrPages: 2, flags: LAZY | PRESENT },
];

describe("a pagemap image made partly eager", () => {
  test("splits lazy entries around the chosen pages and keeps every page where the pages image has it", () => {
    const chosen = [
      { first: PAGE(0x7f0000010000), count: 1 }, // eager already
      { first: PAGE(0x7f0000021000), count: 2 },
      { first: PAGE(0x7f0000025000), count: 4 }, // past the entry's end, into a gap
      { first: PAGE(0x7f0000099000), count: 1 }, // in no entry
    ];
    const eager = makePagesEager(image(original), chosen);
    assert.ok(eager);
    assert.equal(eager.eagerPages, 3);
    const entries = entriesOf(eager.image);
    assert.deepEqual(entries, [
      original[0],
      { vaddr: 0x7f0000020000, nrPages: 1, flags: LAZY | PRESENT },
      { vaddr: 0x7f0000021000, nrPages: 2, flags: PRESENT },
      { vaddr: 0x7f0000023000, nrPages: 2, flags: LAZY | PRESENT },
      { vaddr: 0x7f0000025000, nrPages: 1, flags: PRESENT },
      original[2],
    ]);
    assert.deepEqual(presentPages(entries), presentPages(original));
    // The head and the untouched entries are CRIU's bytes as they were.
    assert.deepEqual(eager.image.subarray(0, 8 + 6), image(original).subarray(0, 8 + 6));
  });

  test("is left alone when no lazy page is chosen, or when it is not an image this code knows", () => {
    assert.equal(makePagesEager(image(original), [{ first: PAGE(0x7f0000010000), count: 1 }]), undefined);
    assert.equal(
      makePagesEager(image(original, [0x54564319, 0x12345678]), [{ first: PAGE(0x7f0000020000), count: 1 }]),
      undefined,
    );
    // An entry of a parent snapshot (in_parent), or a field this code does not know.
    const withParent = Buffer.concat([
      image([]),
      frame([
        [1, 0x7f0000020000],
        [2, 1],
        [3, 1],
      ]),
    ]);
    assert.equal(makePagesEager(withParent, [{ first: PAGE(0x7f0000020000), count: 1 }]), undefined);
    const withUnknown = Buffer.concat([
      image([]),
      frame([
        [1, 0x7f0000020000],
        [4, LAZY | PRESENT],
        [5, 1],
        [9, 1],
      ]),
    ]);
    assert.equal(makePagesEager(withUnknown, [{ first: PAGE(0x7f0000020000), count: 1 }]), undefined);
    // Cut short.
    const whole = image(original);
    assert.equal(
      makePagesEager(whole.subarray(0, whole.length - 2), [{ first: PAGE(0x7f0000020000), count: 1 }]),
      undefined,
    );
  });
});
