import { closeSync, openSync, readSync } from "node:fs";

/** Bytes from the kernel: never from `crypto`, whose generator is the one that may be stale. */
export function readUrandom(length: number): Buffer {
  const bytes = Buffer.alloc(length);
  const fd = openSync("/dev/urandom", "r");
  try {
    let filled = 0;
    while (filled < length) filled += readSync(fd, bytes, filled, length - filled, null);
  } finally {
    closeSync(fd);
  }
  return bytes;
}
