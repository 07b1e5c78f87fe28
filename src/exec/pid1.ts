import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";
import { loadLibc } from "./libc.js";

/**
 * As a container's entrypoint warmstart is PID 1: orphans of the app are handed to it, and
 * Node reaps only the children it spawned itself (a waitpid(-1) of ours would steal the exit
 * statuses libuv waits for), so they would pile up as zombies. So PID 1 becomes a small perl
 * init instead (execve through koffi: Node 20 cannot exec in place), which runs warmstart as
 * its child, passes it the signals a container gets, reaps whatever is handed to it, and
 * exits as warmstart does. perl-base is Essential on Debian and starts in ~2 ms.
 */
const INIT_SCRIPT = [
  "my $child = fork;",
  'die "warmstart init: fork: $!\\n" unless defined $child;',
  'if (!$child) { exec { $ARGV[0] } @ARGV or die "warmstart init: exec $ARGV[0]: $!\\n"; }',
  "$SIG{$_} = sub { kill $_[0], $child } for qw(TERM INT HUP QUIT USR1 USR2 WINCH CONT);",
  "while (1) {",
  "  my $pid = wait;",
  "  next if $pid == -1;",
  "  exit(($? & 127) ? 128 + ($? & 127) : $? >> 8) if $pid == $child;",
  "}",
].join(" ");

// fcntl(2) commands and flags, the same on every Linux architecture Node runs on.
const F_SETFD = 2;
const F_GETFL = 3;
const F_SETFL = 4;
const O_NONBLOCK = 0o4000;

/** Set in the init's child, so that warmstart under its own init does not start another. */
const UNDER_INIT = "WARMSTART_UNDER_INIT";

/**
 * When this process is PID 1, replaces it with the init (and never returns); otherwise does
 * nothing. Returns a reason when it is PID 1 and could not become the init, for a warning.
 */
export function becomeInitIfPid1(): string | undefined {
  if (process.pid !== 1 || process.env[UNDER_INIT] === "1") return undefined;
  const perl = findInPath("perl");
  if (!perl) return "warmstart is PID 1 and cannot reap orphaned processes: perl was not found";
  try {
    const libc = loadLibc();
    const execve = libc.func("int execve(const char *path, const char **argv, const char **envp)");
    const fcntl = libc.func("int fcntl(int fd, int cmd, int arg)");
    // Node's stdio handles mark fds 0-2 close-on-exec and non-blocking: the init and
    // warmstart after it must get them as warmstart did.
    for (const fd of [0, 1, 2]) {
      fcntl(fd, F_SETFD, 0);
      const flags = fcntl(fd, F_GETFL, 0) as number;
      if (flags >= 0) fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    }
    const argv = ["perl", "-e", INIT_SCRIPT, process.execPath, ...process.argv.slice(1), null];
    const env = Object.entries({ ...process.env, [UNDER_INIT]: "1" }).map(
      ([name, value]) => `${name}=${value}`,
    );
    execve(perl, argv, [...env, null]);
    return "warmstart is PID 1 and cannot reap orphaned processes: execve of its init failed";
  } catch (error) {
    return `warmstart is PID 1 and cannot reap orphaned processes: ${(error as Error).message}`;
  }
}

function findInPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? "/usr/bin:/bin").split(delimiter).filter(Boolean)) {
    try {
      accessSync(join(dir, name), constants.X_OK);
      return join(dir, name);
    } catch {
      // Keep looking.
    }
  }
  return undefined;
}
