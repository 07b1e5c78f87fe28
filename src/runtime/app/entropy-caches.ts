/** Node's crypto module, imported at checkpoint time (not at start-up, where it costs). */
export type Crypto = typeof import("node:crypto");

export function loadCrypto(): Promise<Crypto> {
  return import("node:crypto");
}

/**
 * Node serves randomUUID() from a 128-UUID batch and randomInt() from a 6 KiB cache (1024
 * draws of 6 bytes), both filled from OpenSSL and both in the heap of the snapshot. Drawing
 * one full round of each forces exactly one refill, from the reseeded OpenSSL, in the middle
 * of the round: every value the app draws afterwards comes from the new fill.
 */
export function drainEntropyCaches(crypto: Crypto): void {
  for (let i = 0; i <= 128; i++) crypto.randomUUID();
  for (let i = 0; i <= 1024; i++) crypto.randomInt(0, 1);
}
