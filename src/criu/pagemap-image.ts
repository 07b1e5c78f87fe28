/**
 * CRIU's pagemap image (pagemap-<pid>.img), read and rewritten so that chosen pages of a
 * lazy restore are restored up front instead of through userfaultfd.
 *
 * The image is CRIU's common magic, the pagemap magic, then protobuf messages each after its
 * size as a little-endian uint32: a pagemap_head, then one pagemap_entry per run of pages
 * (images/pagemap.proto: vaddr = 1, compat_nr_pages = 2, in_parent = 3, flags = 4,
 * nr_pages = 5, all varints). Page contents live in the pages image, in the order of the
 * entries that have PE_PRESENT; an entry with PE_LAZY as well is skipped by `criu restore
 * --lazy-pages` and served page by page by `criu lazy-pages` when the app touches it. So an
 * entry split in two, one part without PE_LAZY, still points at the same page contents in the
 * same order, and that part is read into place by the restore before the app runs.
 *
 * Anything this code does not know (another magic, another field or wire type, an entry
 * from a parent snapshot) leaves the image as it is: the restore is then as lazy as before.
 */

const IMG_COMMON_MAGIC = 0x54564319;
const PAGEMAP_MAGIC = 0x56084025;
const HEADER_SIZE = 8;
const PAGE_SIZE = 4096;

const PE_LAZY = 1 << 1;
const PE_PRESENT = 1 << 2;

const FIELD_VADDR = 1;
const FIELD_COMPAT_NR_PAGES = 2;
const FIELD_FLAGS = 4;
const FIELD_NR_PAGES = 5;
const WIRE_VARINT = 0;

interface PagemapEntry {
  readonly vaddr: number;
  readonly nrPages: number;
  readonly flags: number;
}

/** Pages [first, first + count), numbered as address / 4096. */
export interface PageRun {
  readonly first: number;
  readonly count: number;
}

export interface EagerPagemap {
  readonly image: Buffer;
  /** Pages the restore now reads into place itself. */
  readonly eagerPages: number;
}

/**
 * The pagemap with every lazy page in `runs` (sorted, not overlapping) made eager, or
 * undefined when the image is not one this code can rewrite safely or no lazy page of it is
 * in `runs`. Works run by run, never page by page: a large image's entries cover ~90,000
 * pages, and a fresh process took 25 ms to look each one up.
 */
export function makePagesEager(image: Buffer, runs: readonly PageRun[]): EagerPagemap | undefined {
  if (image.length < HEADER_SIZE) return undefined;
  if (image.readUInt32LE(0) !== IMG_COMMON_MAGIC || image.readUInt32LE(4) !== PAGEMAP_MAGIC) return undefined;
  // The image's own bytes are kept as they are, spans of them between the entries rewritten:
  // a buffer per entry cost a fresh process more than the whole rest.
  const out: Buffer[] = [];
  let keptFrom = 0;
  let eagerPages = 0;
  let isHead = true;
  for (let offset = HEADER_SIZE; offset < image.length; ) {
    if (offset + 4 > image.length) return undefined;
    const start = offset + 4;
    const end = start + image.readUInt32LE(offset);
    if (end > image.length) return undefined;
    const entryStart = offset;
    offset = end;
    if (isHead) {
      isHead = false;
      continue;
    }
    const entry = decodeEntry(image, start, end);
    if (!entry) return undefined;
    if (!(entry.flags & PE_LAZY && entry.flags & PE_PRESENT)) continue;
    const parts = splitByEagerness(entry, runs);
    if (parts.every((part) => !part.isEager)) continue;
    out.push(image.subarray(keptFrom, entryStart));
    for (const part of parts) {
      const flags = part.isEager ? entry.flags & ~PE_LAZY : entry.flags;
      if (part.isEager) eagerPages += part.count;
      out.push(frame(encodeEntry({ vaddr: part.first * PAGE_SIZE, nrPages: part.count, flags })));
    }
    keptFrom = end;
  }
  if (eagerPages === 0) return undefined;
  out.push(image.subarray(keptFrom));
  return { image: Buffer.concat(out), eagerPages };
}

/** A pagemap_entry from image[start, end), or undefined for anything this code does not know. */
function decodeEntry(image: Buffer, start: number, end: number): PagemapEntry | undefined {
  let vaddr: number | undefined;
  let compatNrPages: number | undefined;
  let nrPages: number | undefined;
  let flags: number | undefined;
  for (let offset = start; offset < end; ) {
    const key = readVarint(image, offset, end);
    if (!key || key.value % 8 !== WIRE_VARINT) return undefined;
    const value = readVarint(image, key.next, end);
    if (!value) return undefined;
    offset = value.next;
    const field = (key.value - WIRE_VARINT) / 8;
    if (field === FIELD_VADDR) vaddr = value.value;
    else if (field === FIELD_COMPAT_NR_PAGES) compatNrPages = value.value;
    else if (field === FIELD_NR_PAGES) nrPages = value.value;
    else if (field === FIELD_FLAGS) flags = value.value;
    // An entry of a parent snapshot (in_parent), or a field this code does not know: the
    // image is left as it is.
    else return undefined;
  }
  nrPages ??= compatNrPages;
  // No flags: an old image's entry (PE_PRESENT implied), never lazy.
  if (vaddr === undefined || nrPages === undefined || flags === undefined || vaddr % PAGE_SIZE !== 0)
    return undefined;
  return { vaddr, nrPages, flags };
}

/** As CRIU writes an entry: vaddr, compat_nr_pages (required, 0), flags, nr_pages. */
function encodeEntry(entry: PagemapEntry): Buffer {
  return Buffer.from([
    ...varint(FIELD_VADDR * 8 + WIRE_VARINT),
    ...varint(entry.vaddr),
    ...varint(FIELD_COMPAT_NR_PAGES * 8 + WIRE_VARINT),
    ...varint(0),
    ...varint(FIELD_FLAGS * 8 + WIRE_VARINT),
    ...varint(entry.flags),
    ...varint(FIELD_NR_PAGES * 8 + WIRE_VARINT),
    ...varint(entry.nrPages),
  ]);
}

interface Part extends PageRun {
  readonly isEager: boolean;
}

/** The entry's pages as parts of the same eagerness, in order. */
function splitByEagerness(entry: PagemapEntry, runs: readonly PageRun[]): Part[] {
  const first = entry.vaddr / PAGE_SIZE;
  const end = first + entry.nrPages;
  const parts: Part[] = [];
  let at = first;
  for (let index = firstRunEndingAfter(runs, first); index < runs.length; index++) {
    const run = runs[index];
    if (!run || run.first >= end) break;
    const start = Math.max(run.first, at);
    const stop = Math.min(run.first + run.count, end);
    if (start > at) parts.push({ first: at, count: start - at, isEager: false });
    parts.push({ first: start, count: stop - start, isEager: true });
    at = stop;
  }
  if (at < end) parts.push({ first: at, count: end - at, isEager: false });
  return parts;
}

/** The index of the first run that ends after `page` (binary search). */
function firstRunEndingAfter(runs: readonly PageRun[], page: number): number {
  let low = 0;
  let high = runs.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    const run = runs[middle];
    if (run && run.first + run.count <= page) low = middle + 1;
    else high = middle;
  }
  return low;
}

function frame(message: Buffer): Buffer {
  const size = Buffer.alloc(4);
  size.writeUInt32LE(message.length);
  return Buffer.concat([size, message]);
}

/** Varints as Numbers: CRIU's values here (user-space addresses, page counts) stay below 2^53. */
function readVarint(
  buffer: Buffer,
  offset: number,
  end: number,
): { value: number; next: number } | undefined {
  let value = 0;
  for (let index = 0, scale = 1; index < 8 && offset + index < end; index++, scale *= 128) {
    const byte = buffer[offset + index] ?? 0;
    value += (byte & 0x7f) * scale;
    if (byte < 0x80) return { value, next: offset + index + 1 };
  }
  return undefined;
}

function varint(value: number): number[] {
  const bytes: number[] = [];
  let rest = value;
  while (rest >= 0x80) {
    bytes.push((rest % 128) | 0x80);
    rest = Math.floor(rest / 128);
  }
  bytes.push(rest);
  return bytes;
}
