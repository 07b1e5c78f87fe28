import { describeErrno, loadLibc } from "./libc.js";
import { bindSocketPair } from "./socket-pair.js";

/** A pipe(2): two fds of this process, close-on-exec, blocking. */
export interface PipeFds {
  readonly read: number;
  readonly write: number;
}

type Pipe2 = (fds: number[], flags: number) => number;

const O_CLOEXEC = 0o2000000;

let pipe2: Pipe2 | undefined;

/**
 * Real pipes, which Node cannot make (its "pipe" stdio are Unix socketpairs). CRIU needs
 * them where an app had a pipe: on restore it reopens an inherited pipe through
 * /proc/self/fd (pipes.c), which a socket refuses (ENXIO). Through koffi (libc.ts: ~10 ms
 * at first use, less than the bash process substitutions and relay processes it replaces).
 * Close-on-exec: a child gets the ends it is given as stdio only.
 */
export function makePipe(): PipeFds {
  pipe2 ??= loadLibc().func("int pipe2(_Out_ int *fds, int flags)") as Pipe2;
  const fds = [-1, -1];
  if (pipe2(fds, O_CLOEXEC) !== 0) throw new Error(`pipe2 failed: ${describeErrno(loadLibc())}`);
  const [read = -1, write = -1] = fds;
  return { read, write };
}

let socketPair: (() => [number, number]) | undefined;

/**
 * A Unix stream socketpair, both ends close-on-exec: the restore chain's stdout and stderr.
 * Bidirectional, as Node's "pipe" stdio is: the reaper reads its fd 1 to learn that the
 * launcher is gone (EOF), and the launcher sees the chain's end close when it has exited.
 */
export function makeSocketPair(): [number, number] {
  socketPair ??= bindSocketPair(loadLibc(), () => `failed: ${describeErrno(loadLibc())}`);
  return socketPair();
}
