import { readUrandom } from "./urandom.js";

/**
 * V8 keeps Math.random's xorshift state in the heap and reseeds it only when its state is
 * zero, which no API can make it: two copies restored from one snapshot draw the same
 * numbers. So Math.random is replaced, at start-up, by a function whose state this runtime
 * owns and reseeds after each restore. Installed before the app's code runs, so references
 * the app takes (`const random = Math.random`) are this function and are reseeded too. Only
 * references taken before the --require preload (Node's own internals) keep V8's generator.
 * The generator is xoshiro128** (as V8's, not for cryptography): 53-bit doubles in [0, 1).
 */
let s0 = 0;
let s1 = 0;
let s2 = 0;
let s3 = 0;

function next(): number {
  const result = Math.imul(rotateLeft(Math.imul(s1, 5), 7), 9) >>> 0;
  const t = s1 << 9;
  s2 ^= s0;
  s3 ^= s1;
  s1 ^= s2;
  s0 ^= s3;
  s2 ^= t;
  s3 = rotateLeft(s3, 11);
  return result;
}

function rotateLeft(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

export function reseedMathRandom(): void {
  const seed = readUrandom(16);
  s0 = seed.readInt32LE(0);
  s1 = seed.readInt32LE(4);
  s2 = seed.readInt32LE(8);
  s3 = seed.readInt32LE(12);
  // An all-zero state would only ever give zeros.
  if ((s0 | s1 | s2 | s3) === 0) s0 = 1;
}

export function installMathRandom(): void {
  reseedMathRandom();
  // Same property attributes as V8's own (writable, configurable, not enumerable).
  Object.defineProperty(Math, "random", {
    value: function random(): number {
      return ((next() >>> 5) * 67108864 + (next() >>> 6)) / 9007199254740992;
    },
    writable: true,
    configurable: true,
    enumerable: false,
  });
}
