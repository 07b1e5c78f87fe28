import { join } from "node:path";
import type { CFunctions } from "../../exec/socket-pair.js";

/** What this runtime uses of koffi: its native module, loaded without its JS wrapper. */
interface KoffiNative {
  load(path: null): OwnSymbols;
}

/** C functions of this process (libc's, and OpenSSL's, which the node binary exports). */
export type OwnSymbols = CFunctions;

let symbols: OwnSymbols | undefined;

/**
 * The process's own symbols through koffi, loaded from the runtime directory at checkpoint
 * time (never at start-up, where it would cost every launch). Idempotent.
 */
export function loadOwnSymbols(runtimeDir: string): OwnSymbols {
  if (symbols) return symbols;
  const module = { exports: {} as KoffiNative };
  process.dlopen(module, join(runtimeDir, "koffi.node"));
  symbols = module.exports.load(null);
  return symbols;
}
