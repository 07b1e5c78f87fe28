import { bashScript, type CommandLine, perlScript } from "../exec/command-lines.js";
import { CONTROL_FDS } from "../runtime/protocol.js";

/**
 * Why a bash wrapper: CRIU can checkpoint an app whose stdio are pipes (pipe(2)) and hand
 * a restored app fresh ones with --inherit-fd, but Node's `stdio: "pipe"` makes Unix
 * socketpairs, whose peer in the launcher makes the dump fail ("External socket is used").
 * Bash process substitution is the cheapest way to get real pipes (~3 ms): each `>(cat &)`
 * is a pipe whose far end a backgrounded `cat` relays to our socketpair. The cats are
 * backgrounded so that they are not children of the app: CRIU dumps the app's whole
 * process tree and would find our socketpair in them.
 *
 * The loop closes every other inherited fd, so nothing of the launcher leaks into the app
 * (and into its image). `exec` keeps the PID: the app is our direct child.
 *
 * Restores do without it unless detached: the launcher makes their pipes itself
 * (src/exec/pipes.ts), since five relay processes started while CRIU restores cost ~20 ms
 * of a warm launch.
 */
const RELAY_AND_CLOSE = (keep: string) =>
  `for f in /proc/$$/fd/*; do n=\${f##*/}; case $n in ${keep}) ;; *) eval "exec $n>&-" ;; esac; done`;

const SAVED_BASH_ENV = "WARMSTART_SAVED_BASH_ENV";
const SHLVL_UNSET = "WARMSTART_SHLVL_UNSET";

/** Every wrapper's last step: BASH_ENV and SHLVL back as they were, then exec. */
const EXEC_WITH_ENV_RESTORED = [
  `if [ -n "\${${SAVED_BASH_ENV}+x}" ]; then export BASH_ENV="$${SAVED_BASH_ENV}"; unset ${SAVED_BASH_ENV}; fi`,
  `if [ -n "\${${SHLVL_UNSET}+x}" ]; then unset ${SHLVL_UNSET}; exec env -u SHLVL -- "$@"; fi`,
  'exec "$@"',
].join("\n");

/**
 * How to spawn bash running `setup`, then exec'ing `command` with `env` exactly as given.
 * The wrapper's bash must run nothing of the user's shell setup: it would cost time on every
 * launch and could write into the app's output.
 * - Debian's bash reads ~/.bashrc when its stdin is a socket and SHLVL is unset or 0 (its
 *   guess that rshd started it): with Node's stdio pipes, under systemd or in a backgrounded
 *   `warmstart run &`. That took 150-180 ms here (pyenv's setup). --norc stops it.
 * - Every non-interactive bash sources $BASH_ENV: it is moved aside and put back at the exec.
 * - bash exports SHLVL to what it execs (0 when it was unset): the command gets its own back.
 */
export function bashWrapper(
  setup: string,
  command: CommandLine,
  env: NodeJS.ProcessEnv,
): { command: CommandLine; env: NodeJS.ProcessEnv } {
  const { BASH_ENV, ...wrapperEnv } = env;
  if (BASH_ENV !== undefined) wrapperEnv[SAVED_BASH_ENV] = BASH_ENV;
  if (env.SHLVL === undefined) wrapperEnv[SHLVL_UNSET] = "1";
  return { command: bashScript(`${setup}\n${EXEC_WITH_ENV_RESTORED}`, command), env: wrapperEnv };
}

/**
 * Cold start: fd 0-2 of the app become pipes relayed to fd 0-2 of the wrapper. With a
 * private network, the wrapper runs under `unshare --net` and brings loopback up first.
 * A gated start keeps the gate's channel, `gateFd` (see GATE_SCRIPT).
 */
export function coldWrapper(isNetworkIsolated: boolean, hasControl: boolean, gateFd?: number): string {
  const redirections = [
    `0< <(${relay("<&0")})`,
    `1> >(${relay("<&0")})`,
    `2> >(${relay("<&0 >&2")})`,
    ...(hasControl ? controlPipes(CONTROL_FDS.down, CONTROL_FDS.up, 3, 4) : []),
  ];
  const kept = [
    ...(hasControl ? [CONTROL_FDS.down, CONTROL_FDS.up] : []),
    ...(gateFd === undefined ? [] : [gateFd]),
  ];
  return [
    ...(isNetworkIsolated ? ["ip link set lo up || exit 1"] : []),
    ...redirections.map(reaped),
    RELAY_AND_CLOSE(["0", "1", "2", ...kept].join("|")),
  ].join("\n");
}

/**
 * One process substitution, its subshell reaped before the next: the subshell exits as
 * soon as it has backgrounded its relay, and one bash has not reaped by the time it execs
 * stays a zombie child of the app, in every snapshot. CRIU restores a zombie as a process
 * forked from the app's restorer, whose exit tears down a copy of the app's page tables:
 * 3-7 ms of CPU each, on both cores, before the restore returns (tiny server, two zombies).
 */
function reaped(redirection: string): string {
  return `exec ${redirection}; wait $! 2>/dev/null`;
}

/**
 * The runtime's control channel (src/runtime/protocol.ts), pipes like stdio: `down` is read
 * by the app from what the launcher writes on fd `fromLauncher`, `up` is relayed to fd
 * `toLauncher`.
 */
function controlPipes(down: number, up: number, fromLauncher: number, toLauncher: number): string[] {
  return [`${down}< <(${relay(`<&${fromLauncher}`)})`, `${up}> >(${relay(`<&0 >&${toLauncher}`)})`];
}

/**
 * A relay: a backgrounded cat (not the app's child: CRIU would dump it) that ignores the
 * signals warmstart forwards to the app's process group, so that it relays the app's last
 * lines (what it prints while shutting down) instead of dying first.
 */
function relay(redirections: string): string {
  return `trap '' TERM HUP; cat ${redirections} &`;
}

/**
 * The gate of a recorded cold start (src/inputs/). It moves itself into a copy of the mount
 * namespace (unshare(2) with CLONE_NEWNS, then / made a slave of the host's, MS_REC|MS_SLAVE,
 * so that mounts the host makes later still reach the app, while its accesses go through
 * mounts of its own that warmstart can watch; by syscall number:
 * perl-base has no headers), says "r" on its channel (the fd given as its first argument),
 * or "n" when the kernel refused, waits for warmstart to watch that namespace's mounts and
 * answer, closes the channel and execs the app: nothing the app opens is missed, and a
 * refusal costs the recording, never the start. perl, not bash: it sources no BASH_ENV and
 * leaves SHLVL alone, so the app's environment passes through untouched; and one exec, where
 * unshare(1) and a waiting program would be two. The relays above stay in warmstart's
 * namespace: their opens are not the app's.
 */
const GATE_SCRIPT = [
  "my ($fd, $unshare, $mount) = splice(@ARGV, 0, 3);",
  'open(my $gate, "+<&=", $fd) or exit 127;',
  'my ($source, $target) = ("none", "/");',
  "my $isPrivate = $unshare > 0 && syscall($unshare, 0x20000) == 0;",
  "syscall($mount, $source, $target, 0, 0x84000, 0) if $isPrivate;",
  'syswrite($gate, $isPrivate ? "r" : "n");',
  "sysread($gate, my $go, 1);",
  "close($gate);",
  "exec { $ARGV[0] } @ARGV;",
  "exit 127;",
].join(" ");

/** unshare(2) and mount(2) by architecture; elsewhere the gate says "n" and the recording
 * falls back to /proc. */
const NAMESPACE_SYSCALLS: Readonly<Partial<Record<string, { unshare: number; mount: number }>>> = {
  x64: { unshare: 272, mount: 165 },
  arm64: { unshare: 97, mount: 40 },
};

/** `command` behind the gate on `gateFd`. */
export function gatedCommand(command: CommandLine, gateFd: number): CommandLine {
  const syscalls = NAMESPACE_SYSCALLS[process.arch] ?? { unshare: 0, mount: 0 };
  return [
    ...perlScript(GATE_SCRIPT, [String(gateFd), String(syscalls.unshare), String(syscalls.mount)]),
    ...command,
  ];
}

/**
 * A detached restore: the app outlives warmstart and writes where warmstart's stdout and
 * stderr go, but not through those fds themselves: CRIU reopens an inherited pipe through
 * /proc/self/fd, and a file reopened so loses O_APPEND and starts at offset 0 (the app
 * would write over what is there). So fd 5 and 6 are pipes relayed to fd 1 and 2 by cats
 * that outlive warmstart; fd 4 (stdin) is /dev/null; CRIU's output goes to fd 3, the channel
 * where the reaper announces the resume. fd 7 and 8, the runtime's control pipes, come made.
 */
export function detachedRestoreWrapper(): string {
  return [
    `exec 4</dev/null 5> >(${relay("<&0")}) 6> >(${relay("<&0 >&2")}) 0</dev/null 1>&3 2>&3`,
    RELAY_AND_CLOSE("0|1|2|4|5|6|7|8"),
  ].join("\n");
}

/** The fds of the restoring process that replace the app's stdin, stdout, stderr (--inherit-fd). */
export const RESTORE_STDIO_FDS = [4, 5, 6] as const;

/** The fds of the restoring process that replace the app's control pipes (down, up). */
export const RESTORE_CONTROL_FDS = { down: 7, up: 8 } as const;

export const RESUMED_MARKER = "warmstart:resumed";

/**
 * CRIU execs this in its own place once the restored tree runs (--exec-cmd), so it is PID 1
 * of the new namespace and the app's parent. CRIU itself would reap the app and exit 0,
 * losing its exit status; this waits for the app (its PID inside the namespace is the first
 * argument), exits with the app's code (128+n for a signal), and announces the resume on
 * stdout. Exiting as PID 1 ends whatever else still runs in the namespace. The restore
 * chain's program (src/exec/native/restore-chain.c) does the same in C where it was built;
 * this one, in perl-base (Essential on Debian), is for builds without a C compiler.
 *
 * With a second argument "1" it also exits when its stdout, warmstart's channel, reads EOF:
 * warmstart is gone. The parent-death signals of the chain cannot promise that: killed just
 * after unshare forks and before the child sets its own, the namespace would outlive
 * warmstart, its app running (or stopped, never resumed) with its ports taken. A SIGCHLD
 * wakes the wait through a pipe of its own.
 */
export const REAPER_SCRIPT = [
  "$| = 1;",
  "my ($app, $watch) = @ARGV;",
  `print "${RESUMED_MARKER}\\n";`,
  "sub code { ($? & 127) ? 128 + ($? & 127) : $? >> 8 }",
  'open(my $launcher, "<&=", 1) or $watch = 0;',
  "if (!$watch) { while ((my $pid = wait) > 0) { exit(code()) if $pid == $app } exit 0 }",
  "pipe(my $wake, my $waker);",
  '$SIG{CHLD} = sub { syswrite($waker, "c") };',
  "while (1) {",
  "  while ((my $pid = waitpid(-1, 1)) > 0) { exit(code()) if $pid == $app }",
  "  my $in = ''; vec($in, fileno($launcher), 1) = 1; vec($in, fileno($wake), 1) = 1;",
  "  next if select(my $ready = $in, undef, undef, undef) <= 0;",
  "  sysread($wake, my $woken, 64) if vec($ready, fileno($wake), 1);",
  "  if (vec($ready, fileno($launcher), 1)) { my $n = sysread($launcher, my $sent, 64); exit 137 if defined $n && $n == 0 }",
  "}",
].join(" ");
