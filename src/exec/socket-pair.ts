/**
 * socketpair(2) through koffi, for both sides of warmstart: the launcher (koffi's package,
 * libc.ts) and the in-app runtime (koffi's native module alone, src/runtime/app/). No
 * imports: it is bundled into both.
 */

/** What this needs of an FFI: a C function bound by its prototype, in koffi's syntax. */
export interface CFunctions {
  func(prototype: string): (...args: unknown[]) => unknown;
}

const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOCK_CLOEXEC = 0o2000000;

/**
 * A connected pair of Unix stream sockets, both ends close-on-exec; `why` words a failure
 * (errno, where the caller can read it).
 */
export function bindSocketPair(
  calls: CFunctions,
  why: () => string = () => "failed",
): () => [number, number] {
  const socketpair = calls.func("int socketpair(int domain, int type, int protocol, _Out_ int *fds)");
  return () => {
    const fds = [-1, -1];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) !== 0) throw new Error(`socketpair ${why()}`);
    const [first = -1, second = -1] = fds;
    return [first, second];
  };
}
