import { join } from "node:path";

/** What this runtime uses of koffi: its native module, loaded without its JS wrapper. */
interface KoffiNative {
  load(path: null): OwnSymbols;
}

/** C functions of this process (libc's, and OpenSSL's, which the node binary exports). */
export interface OwnSymbols {
  func(declaration: string): (...args: unknown[]) => unknown;
}

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

const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOCK_CLOEXEC = 0o2000000;

/** A connected pair of Unix stream sockets, close-on-exec. */
export function makeSocketPair(own: OwnSymbols): [number, number] {
  const socketpair = own.func("int socketpair(int domain, int type, int protocol, _Out_ int *fds)");
  const fds = [-1, -1];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) !== 0) throw new Error("socketpair failed");
  const [first = -1, second = -1] = fds;
  return [first, second];
}
