// CRIU pagemap images as the unit tests need them, written as CRIU writes them and read back;
// on their own (not through src/criu/pagemap-image.ts), so that no test checks that code with itself.
export const LAZY = 1 << 1;
export const PRESENT = 1 << 2;
const MAGICS = [0x54564319, 0x56084025];

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

export function frame(fields: readonly (readonly [number, number])[]): Buffer {
  const body = Buffer.from(fields.flatMap(([field, value]) => [...varint(field * 8), ...varint(value)]));
  const size = Buffer.alloc(4);
  size.writeUInt32LE(body.length);
  return Buffer.concat([size, body]);
}

export interface Entry {
  readonly vaddr: number;
  readonly nrPages: number;
  readonly flags: number;
}

/** A pagemap image as CRIU writes it: magics, head (pages_id 1), entries. */
export function image(entries: readonly Entry[], magics = MAGICS): Buffer {
  const header = Buffer.alloc(8);
  header.writeUInt32LE(magics[0] ?? 0, 0);
  header.writeUInt32LE(magics[1] ?? 0, 4);
  return Buffer.concat([
    header,
    frame([[1, 1]]),
    ...entries.map((entry) =>
      frame([
        [1, entry.vaddr],
        [2, 0],
        [4, entry.flags],
        [5, entry.nrPages],
      ]),
    ),
  ]);
}

/** The entries of an image this test (or CRIU) wrote. */
export function entriesOf(bytes: Buffer): Entry[] {
  const entries: Entry[] = [];
  let offset = 8;
  let isHead = true;
  while (offset < bytes.length) {
    const size = bytes.readUInt32LE(offset);
    const body = bytes.subarray(offset + 4, offset + 4 + size);
    offset += 4 + size;
    if (isHead) {
      isHead = false;
      continue;
    }
    const fields = new Map<number, number>();
    for (let at = 0; at < body.length; ) {
      let key = 0;
      for (let scale = 1; ; scale *= 128) {
        const byte = body[at++] ?? 0;
        key += (byte & 0x7f) * scale;
        if (byte < 0x80) break;
      }
      let value = 0;
      for (let scale = 1; ; scale *= 128) {
        const byte = body[at++] ?? 0;
        value += (byte & 0x7f) * scale;
        if (byte < 0x80) break;
      }
      fields.set(Math.floor(key / 8), value);
    }
    entries.push({ vaddr: fields.get(1) ?? -1, nrPages: fields.get(5) ?? -1, flags: fields.get(4) ?? -1 });
  }
  return entries;
}
