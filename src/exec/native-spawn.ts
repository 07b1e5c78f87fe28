import { closeSync } from "node:fs";
import { constants as osConstants } from "node:os";
import { delimiter, join } from "node:path";
import type { CommandLine } from "./command-lines.js";
import { isExecutableFile } from "./executable-file.js";
import { describeErrno, type LibcFunction, loadLibc } from "./libc.js";

/**
 * posix_spawn(3) through koffi, for the restore chain of every warm launch. Node's spawn
 * forks the launcher (~56 MB resident): 8-10 ms per restore on these machines, against
 * ~1.5 ms for glibc's posix_spawn, which runs the child on the parent's memory until it
 * execs (CLONE_VM|CLONE_VFORK) and reports a failed exec as its return value. The child
 * gets what Node's spawn gives it: default dispositions and an empty mask for every signal
 * (Node ignores SIGPIPE, which an exec would pass on), a session of its own if asked, and
 * only the fds it is given. Node does not know the child: its exit is read with waitpid
 * (tryReap) once the caller has seen the child's end of a socket close.
 */
export interface NativeSpawnOptions {
  readonly env: NodeJS.ProcessEnv;
  /** The child's fds from 0 up: an fd of this process to dup there, null for /dev/null,
   * undefined for none (closed). */
  readonly fds: readonly (number | null | undefined)[];
  readonly isSessionLeader: boolean;
}

export interface ProcessStatus {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

interface SpawnCalls {
  readonly spawn: LibcFunction;
  readonly actionsInit: LibcFunction;
  readonly actionsDup2: LibcFunction;
  readonly actionsOpen: LibcFunction;
  readonly actionsDestroy: LibcFunction;
  readonly attrInit: LibcFunction;
  readonly attrFlags: LibcFunction;
  readonly attrMask: LibcFunction;
  readonly attrDefault: LibcFunction;
  readonly attrDestroy: LibcFunction;
  readonly sigfillset: LibcFunction;
  readonly sigemptyset: LibcFunction;
  readonly waitpid: LibcFunction;
  readonly dupAbove: LibcFunction;
}

// glibc's values (spawn.h, fcntl.h, wait.h) for Linux.
const POSIX_SPAWN_SETSIGDEF = 0x04;
const POSIX_SPAWN_SETSIGMASK = 0x08;
const POSIX_SPAWN_SETSID = 0x80;
const O_RDWR = 2;
const F_DUPFD_CLOEXEC = 1030;
const WNOHANG = 1;
// Opaque glibc structures, allocated with room to spare: file actions 80 bytes, attributes
// 336, a sigset_t 128.
const ACTIONS_BYTES = 256;
const ATTR_BYTES = 512;
const SIGSET_BYTES = 128;

let calls: SpawnCalls | undefined;

function bind(): SpawnCalls {
  if (calls) return calls;
  const libc = loadLibc();
  calls = {
    spawn: libc.func(
      "int posix_spawn(_Out_ int *pid, const char *path, void *actions, void *attr, const char **argv, const char **envp)",
    ),
    actionsInit: libc.func("int posix_spawn_file_actions_init(void *actions)"),
    actionsDup2: libc.func("int posix_spawn_file_actions_adddup2(void *actions, int fd, int newfd)"),
    actionsOpen: libc.func(
      "int posix_spawn_file_actions_addopen(void *actions, int fd, const char *path, int oflag, unsigned int mode)",
    ),
    actionsDestroy: libc.func("int posix_spawn_file_actions_destroy(void *actions)"),
    attrInit: libc.func("int posix_spawnattr_init(void *attr)"),
    attrFlags: libc.func("int posix_spawnattr_setflags(void *attr, short flags)"),
    attrMask: libc.func("int posix_spawnattr_setsigmask(void *attr, const void *set)"),
    attrDefault: libc.func("int posix_spawnattr_setsigdefault(void *attr, const void *set)"),
    attrDestroy: libc.func("int posix_spawnattr_destroy(void *attr)"),
    sigfillset: libc.func("int sigfillset(void *set)"),
    sigemptyset: libc.func("int sigemptyset(void *set)"),
    waitpid: libc.func("int waitpid(int pid, _Out_ int *status, int options)"),
    dupAbove: libc.func("int fcntl(int fd, int cmd, int arg)"),
  };
  return calls;
}

/** Starts `command`; returns its PID. Throws when it cannot (not found, no fds, no memory). */
export function posixSpawn(command: CommandLine, options: NativeSpawnOptions): number {
  const [file, ...args] = command;
  if (!file) throw new Error("empty command");
  const path = findExecutable(file, options.env.PATH);
  const c = bind();
  const actions = Buffer.alloc(ACTIONS_BYTES);
  const attr = Buffer.alloc(ATTR_BYTES);
  const lifted: number[] = [];
  c.actionsInit(actions);
  c.attrInit(attr);
  try {
    options.fds.forEach((fd, target) => {
      if (fd === undefined) return;
      if (fd === null) {
        if (c.actionsOpen(actions, target, "/dev/null", O_RDWR, 0) !== 0) throw new Error("out of memory");
        return;
      }
      // A source below the targets would be overwritten by an earlier dup2: lift it first.
      let source = fd;
      if (source < options.fds.length) {
        source = Number(c.dupAbove(fd, F_DUPFD_CLOEXEC, options.fds.length));
        if (source < 0) throw new Error(`cannot duplicate fd ${fd}: ${describeErrno(loadLibc())}`);
        lifted.push(source);
      }
      if (c.actionsDup2(actions, source, target) !== 0) throw new Error("out of memory");
    });
    const all = Buffer.alloc(SIGSET_BYTES);
    const none = Buffer.alloc(SIGSET_BYTES);
    c.sigfillset(all);
    c.sigemptyset(none);
    const flags =
      POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | (options.isSessionLeader ? POSIX_SPAWN_SETSID : 0);
    c.attrFlags(attr, flags);
    c.attrDefault(attr, all);
    c.attrMask(attr, none);
    const env = Object.entries(options.env)
      .filter(([, value]) => value !== undefined)
      .map(([name, value]) => `${name}=${value}`);
    const pid = [0];
    const errno = Number(c.spawn(pid, path, actions, attr, [file, ...args, null], [...env, null]));
    if (errno !== 0) throw new Error(`cannot start ${file}: ${loadLibc().strerror(errno)} (errno ${errno})`);
    return pid[0] ?? -1;
  } finally {
    c.actionsDestroy(actions);
    c.attrDestroy(attr);
    for (const fd of lifted) closeQuietly(fd);
  }
}

/** The child's exit status if it has exited (and reaps it), undefined while it runs. */
export function tryReap(pid: number): ProcessStatus | undefined {
  const status = [0];
  const reaped = Number(bind().waitpid(pid, status, WNOHANG));
  if (reaped === 0) return undefined;
  // -1: not our child any more (reaped elsewhere): nothing to report but that it is gone.
  if (reaped < 0) return { code: null, signal: null };
  const raw = status[0] ?? 0;
  const termSignal = raw & 0x7f;
  if (termSignal === 0) return { code: (raw >> 8) & 0xff, signal: null };
  return { code: null, signal: signalName(termSignal) };
}

function signalName(number: number): NodeJS.Signals | null {
  const entry = Object.entries(osConstants.signals).find(([, value]) => value === number);
  return (entry?.[0] as NodeJS.Signals | undefined) ?? null;
}

/** What execvp would run for `file`, with the launch's PATH (not warmstart's own). */
function findExecutable(file: string, pathVariable: string | undefined): string {
  if (file.includes("/")) return file;
  for (const dir of (pathVariable ?? "/usr/local/bin:/usr/bin:/bin").split(delimiter)) {
    const candidate = join(dir || ".", file);
    if (isExecutableFile(candidate)) return candidate;
  }
  throw new Error(`cannot start ${file}: not found in PATH`);
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // Nothing to do.
  }
}
