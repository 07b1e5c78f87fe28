import { loadKoffiNative } from "./koffi-native.js";

/** A libc function bound through koffi; `async` runs it on a worker thread. */
export type LibcFunction = ((...args: unknown[]) => unknown) & { async(...args: unknown[]): void };

export interface Libc {
  /** Binds a libc function by its C prototype, in koffi's syntax. */
  func(prototype: string): LibcFunction;
  /** The errno of this thread's last call. */
  errno(): number;
  /** An errno in words: "Too many open files". */
  strerror(errno: number): string;
}

let libc: Libc | undefined;

/**
 * libc through koffi (an FFI package whose prebuilt binaries ship inside the npm package: no
 * compiler at install), for the calls Node has no equivalent of: pipe2, fanotify, serve's
 * socket calls, execve. Loaded on first use and once per process (koffi-native.ts: 3-4 ms),
 * paid only by a launch that needs one of them.
 */
export function loadLibc(): Libc {
  if (libc) return libc;
  const koffi = loadKoffiNative();
  const lib = koffi.load("libc.so.6");
  const strerror = lib.func("const char *strerror(int errnum)");
  libc = {
    func: (prototype) => lib.func(prototype) as unknown as LibcFunction,
    errno: () => koffi.errno(),
    strerror: (errno) => String(strerror(errno)),
  };
  return libc;
}

/** The last call's errno, for a message: "Too many open files (errno 24)". */
export function describeErrno(calls: Libc): string {
  const errno = calls.errno();
  return `${calls.strerror(errno)} (errno ${errno})`;
}
