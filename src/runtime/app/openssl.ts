import type { OwnSymbols } from "./own-symbols.js";
import { readUrandom } from "./urandom.js";

let reseedAll: (() => void) | undefined;

/**
 * Binds OpenSSL's DRBG functions, which the node binary exports. Done at checkpoint time,
 * before the dump, so that a restored copy has them in memory and pays nothing to load them
 * (and so that a machine where koffi cannot load refuses the snapshot instead of restoring
 * copies it cannot make unique). Idempotent.
 */
export function prepareOpenSslReseed(lib: OwnSymbols): void {
  if (reseedAll) return;
  const getters = ["RAND_get0_primary", "RAND_get0_public", "RAND_get0_private"].map((name) =>
    lib.func(`void *${name}(void *ctx)`),
  );
  const reseed = lib.func(
    "int EVP_RAND_reseed(void *ctx, int prediction_resistance, const uint8_t *entropy, size_t entropy_length, const uint8_t *additional, size_t additional_length)",
  );
  reseedAll = () => {
    // The primary first: the public and private DRBGs of every thread reseed from it when
    // they see its reseed counter move; this thread's two are reseeded directly as well.
    for (const get of getters) {
      const drbg = get(null);
      if (!drbg) throw new Error("OpenSSL returned no DRBG");
      const bytes = readUrandom(64);
      if (reseed(drbg, 0, bytes.subarray(0, 48), 48, bytes.subarray(48), 16) !== 1)
        throw new Error("EVP_RAND_reseed failed");
    }
  };
}

/**
 * OpenSSL 3 reseeds on fork by comparing getpid(), which a copy restored in its own PID
 * namespace keeps: without this every copy draws the same bytes.
 */
export function reseedOpenSsl(): void {
  if (!reseedAll) throw new Error("the OpenSSL reseed was not prepared before the checkpoint");
  reseedAll();
}
