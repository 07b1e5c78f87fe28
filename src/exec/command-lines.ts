/**
 * Every external command warmstart runs is built here, and nowhere else: the util-linux
 * wrappers (setpriv, unshare, nsenter), every CRIU command with one line per flag (the runc
 * pattern: a reader sees every flag CRIU gets and why), and the helpers. The benchmark's
 * raw-CRIU baseline is built here too, so the overhead it reports cannot drift from what
 * `run` does.
 */

/** argv of an external command: the program (looked up in the launch's PATH), then its arguments. */
export type CommandLine = readonly [string, ...string[]];

// ── util-linux wrappers ────────────────────────────────────────────────────────────────────

/**
 * `setpriv --pdeathsig KILL`: the command dies with warmstart, even when warmstart is killed
 * with SIGKILL, instead of lingering as an orphan nobody supervises. The signal is tied to
 * the parent of the moment it is set: if warmstart died before that (killed while the
 * process was being spawned), the process has already been handed to init and would never
 * get it. So a shell checks, after the signal is set and before the command runs, that its
 * parent is still this warmstart (execs keep both the PID and the signal).
 */
export function dieWithParent(command: CommandLine): CommandLine {
  const check = '[ "$PPID" = "$1" ] || exit 125; shift; exec "$@"';
  return [
    "setpriv",
    "--pdeathsig",
    "KILL",
    "--",
    "sh",
    "-c",
    check,
    "warmstart-guard",
    String(process.pid),
    ...command,
  ];
}

/**
 * dieWithParent for a command that forks helpers of its own. The parent-death signal reaches
 * the command only, never what it forked: CRIU's dump probes the kernel in a dozen short-lived
 * children, one of which stops itself (SIGSTOP) for a ptrace test, and a warmstart killed at
 * that moment left CRIU's helpers behind for good, one of them stopped. So a shell stays in
 * between, spawned as a session leader: the command and its helpers are in its process group.
 * The parent-death signal reaches the shell as SIGTERM, and the shell kills its whole group
 * (`-$$` names a group only when the shell leads one: never warmstart's). SIGTERM to the shell
 * does the same, so that is how it is stopped; the command also dies if the shell is killed.
 */
export function dieWithParentAsGroup(command: CommandLine): CommandLine {
  const guard =
    '[ "$PPID" = "$1" ] || exit 125; shift; trap \'kill -KILL -$$\' TERM; setpriv --pdeathsig KILL -- "$@" & wait $!';
  return [
    "setpriv",
    "--pdeathsig",
    "TERM",
    "--",
    "sh",
    "-c",
    guard,
    "warmstart-group-guard",
    String(process.pid),
    ...command,
  ];
}

/** The guard unless the process must outlive warmstart (`--detach`). */
export function dieWithParentUnless(isDetached: boolean, command: CommandLine): CommandLine {
  return isDetached ? command : dieWithParent(command);
}

/**
 * A new PID and mount namespace, with a /proc of its own (what criu-ns does): the restored
 * app gets its old PID inside it, whatever is using that PID on the host. `--kill-child`:
 * unshare's death takes the namespace down (its PID 1 gets SIGKILL).
 */
export function inNewPidNamespace(isKilledWithUnshare: boolean, command: CommandLine): CommandLine {
  return [
    "unshare",
    "--pid",
    "--fork",
    "--mount",
    // Mounts the host makes later still reach the restored app, as they reach any process;
    // the namespace's own (its /proc, a notify redirect) stay in it. unshare's default,
    // private, would freeze the app's view of the filesystem at restore time.
    ...["--propagation", "slave"],
    "--mount-proc",
    ...(isKilledWithUnshare ? ["--kill-child"] : []),
    "--",
    ...command,
  ];
}

/** A network namespace of its own (prewarm): unshare execs the command without forking, so
 * the PID stays the caller's. */
export function inPrivateNetwork(command: CommandLine): CommandLine {
  return ["unshare", "--net", "--", ...command];
}

/**
 * Runs the command inside the PID and mount namespaces of `pid` (what criu-ns does for a
 * dump): a restored app lives in a PID namespace of its own, where CRIU must see it with the
 * PIDs its image will hold, and with that namespace's /proc.
 */
export function inPidNamespaceOf(pid: number, command: CommandLine): CommandLine {
  return ["nsenter", `--target=${pid}`, "--pid", "--mount", "--", ...command];
}

/** Runs the command inside the network namespace of `pid` (probes and the dump of a prewarm). */
export function inNetworkOf(pid: number, command: CommandLine): CommandLine {
  return ["nsenter", `--net=/proc/${pid}/ns/net`, "--", ...command];
}

/** `command` in the app's mount namespace: a recorded cold start's private copy (src/inputs/),
 * where CRIU must dump it from so that the app's files resolve on the mounts it uses. */
export function inMountNamespaceOf(pid: number, command: CommandLine): CommandLine {
  return ["nsenter", `--mount=/proc/${pid}/ns/mnt`, "--", ...command];
}

/**
 * Inside a restore's private mount namespace, before CRIU runs: warmstart's copy of CRIU's
 * kernel-feature cache over /run/criu.kdat (src/criu/kerndat-cache.ts says why). A bind
 * mount that fails costs the probe CRIU would have made anyway, never the restore.
 */
export function withKerndatCache(kerndatFile: string, target: string, command: CommandLine): CommandLine {
  const script = 'mount --bind -- "$1" "$2" 2>/dev/null; shift 2; exec "$@"';
  return ["sh", "-c", script, "warmstart-kerndat", kerndatFile, target, ...command];
}

/** A mount namespace of its own for `command` (mounts from the host still reach it). */
export function inNewMountNamespace(command: CommandLine): CommandLine {
  return ["unshare", "--mount", ...["--propagation", "slave"], "--", ...command];
}

/**
 * CRIU run once in a mount namespace of its own with a tmpfs on /run, where it saves its
 * kernel-feature cache; the cache is copied to `destination` (src/criu/kerndat-cache.ts).
 */
export function kerndatProbe(criuPath: string, target: string, destination: string): CommandLine {
  const script =
    'mount -t tmpfs -o mode=0700,size=1m warmstart-kerndat "$(dirname "$2")" && { "$1" check >/dev/null 2>&1; cp -- "$2" "$3"; }';
  return [
    "unshare",
    "--mount",
    ...["--propagation", "private"],
    "--",
    "sh",
    "-c",
    script,
    "warmstart-kerndat",
    criuPath,
    target,
    destination,
  ];
}

/**
 * Inside a restore's private mount namespace, before CRIU runs: a restored app keeps the
 * NOTIFY_SOCKET path of the launch that was checkpointed, whose socket is gone. A tmpfs over
 * the directory of those paths, holding a symlink from the old path to this launch's socket,
 * makes the old path reach this launch, in this namespace only: concurrent restores of one
 * snapshot each see their own.
 */
export function withNotifySocketAt(
  redirect: { readonly dir: string; readonly oldPath: string; readonly newPath: string },
  command: CommandLine,
): CommandLine {
  const script = 'mount -t tmpfs -o mode=0700 warmstart "$1" && ln -s "$3" "$2" && shift 3 && exec "$@"';
  return [
    "sh",
    "-c",
    script,
    "warmstart-notify",
    redirect.dir,
    redirect.oldPath,
    redirect.newPath,
    ...command,
  ];
}

// ── warmstart's restore chain (native/restore-chain.c) ─────────────────────────────────────

/** What a restore's namespace gets before CRIU runs in it. */
export interface RestoreNamespace {
  /** Dies with warmstart (dieWithParent) and takes the namespace with it (--kill-child):
   * every restore but a detached one. */
  readonly isGuarded: boolean;
  /** warmstart's copy of CRIU's kernel-feature cache, bound over `target` (withKerndatCache). */
  readonly kerndat?: { readonly file: string; readonly target: string };
  /** The old NOTIFY_SOCKET path made to reach this launch's socket (withNotifySocketAt). */
  readonly notifyRedirect?: { readonly dir: string; readonly oldPath: string; readonly newPath: string };
}

/**
 * The command in a new PID and mount namespace set up as `namespace` says: through the
 * restore chain's program when it was built (`program`: one exec, where the util-linux chain
 * takes five: setpriv, sh, unshare, sh, mount, at 2-5 ms each on a small VM), otherwise
 * through the util-linux chain, which does the same.
 */
export function inRestoreNamespace(
  program: string | undefined,
  namespace: RestoreNamespace,
  command: CommandLine,
): CommandLine {
  const { isGuarded, kerndat, notifyRedirect } = namespace;
  if (program === undefined) {
    const withKerndat = kerndat ? withKerndatCache(kerndat.file, kerndat.target, command) : command;
    const inNamespace = notifyRedirect ? withNotifySocketAt(notifyRedirect, withKerndat) : withKerndat;
    return dieWithParentUnless(!isGuarded, inNewPidNamespace(isGuarded, inNamespace));
  }
  return [
    program,
    "enter",
    ...(isGuarded ? ["--guard", String(process.pid), "--kill-child"] : []),
    ...(notifyRedirect
      ? ["--notify", notifyRedirect.dir, notifyRedirect.oldPath, notifyRedirect.newPath]
      : []),
    ...(kerndat ? ["--kerndat", kerndat.file, kerndat.target] : []),
    "--",
    ...command,
  ];
}

/**
 * CRIU's lazy-pages daemon in a mount namespace of its own with the kernel-feature cache
 * bound in, dying with warmstart: `dieWithParent(inNewMountNamespace(withKerndatCache(...)))`,
 * in one exec when the restore chain's program was built.
 */
export function guardedWithKerndat(
  program: string | undefined,
  kerndat: { readonly file: string; readonly target: string },
  command: CommandLine,
): CommandLine {
  if (program === undefined)
    return dieWithParent(inNewMountNamespace(withKerndatCache(kerndat.file, kerndat.target, command)));
  return [
    program,
    "enter",
    ...["--guard", String(process.pid), "--mount-only"],
    ...["--kerndat", kerndat.file, kerndat.target],
    "--",
    ...command,
  ];
}

/** The restore chain's reaper (CRIU's --exec-cmd), in place of the perl one (pipe-wrapper.ts). */
export function restoreChainReaper(
  program: string,
  appPid: number,
  isWatchingLauncher: boolean,
): CommandLine {
  return [program, "reap", String(appPid), isWatchingLauncher ? "1" : "0"];
}

// ── CRIU ────────────────────────────────────────────────────────────────────────────────────

export interface DumpOptions {
  readonly pid: number;
  readonly imagesDir: string;
  /** Absolute, or a file name inside imagesDir. */
  readonly logFile: string;
  /** 0-4; 4 gives the context lines that make a failed dump debuggable. */
  readonly logLevel: number;
  /** Keep the app serving after the checkpoint: the user never waits on the dump. */
  readonly leaveRunning: boolean;
  /** Leave the dumped tree stopped instead of killed (serve --keep-state kills it itself: a
   * tree CRIU kills from inside its PID namespace takes that namespace, and CRIU, down). */
  readonly isLeftStopped?: boolean;
}

export interface RestoreOptions {
  readonly imagesDir: string;
  readonly logFile: string;
  readonly logLevel: number;
  /** The app's pipes at dump time ("pipe:[INODE]") and the fd of the restoring process that
   * replaces each one. */
  readonly inheritFds: readonly { readonly fd: number; readonly resource: string }[];
  /** Command CRIU execs in its own place once the tree runs; it becomes the app's parent. */
  readonly execCommand: readonly string[];
  /** Memory comes from a lazy-pages daemon on first touch (userfaultfd) instead of being
   * read in full before the app resumes: restore time stops growing with the image. */
  readonly isLazy: boolean;
  /** The restored tree stays stopped (SIGSTOP) until warmstart sends SIGCONT: serve's
   * spare, whose listening sockets already hold connections while it waits. */
  readonly isLeftStopped?: boolean;
}

export interface LazyPagesOptions {
  readonly imagesDir: string;
  readonly logFile: string;
  readonly logLevel: number;
  /** The daemon writes \0 here once it listens, so the restore never races it. */
  readonly statusFd: number;
}

export function criuDump(criuPath: string, options: DumpOptions): CommandLine {
  return [
    criuPath,
    "dump",
    ...["--tree", String(options.pid)],
    ...["--images-dir", options.imagesDir],
    ...["--log-file", options.logFile],
    `-v${options.logLevel}`,
    ...(options.leaveRunning ? ["--leave-running"] : []),
    ...(options.isLeftStopped ? ["--leave-stopped"] : []),
    // A readiness probe or an early client may leave a connection open at dump time. Restores
    // bring such connections back closed (their clients belong to the first launch), so their
    // TCP state is not dumped and they are not blocked: without this the dump fails
    // ("Connected TCP socket").
    "--tcp-close",
    // Connections a client made while the app was blocked for the dump (warmstart's runtime
    // holds its event loop: src/runtime/app/inject.ts) wait in the listening socket's queue.
    // Without this CRIU refuses the dump ("In-flight connection"); with it they stay the
    // original's, which serves them once it goes on, and copies start with an empty queue.
    "--skip-in-flight",
    // Nothing to lock then. The default (iptables) needs a binary Debian does not ship, and
    // nftables costs ~18 ms on every restore, where CRIU deletes a table it never made.
    ...["--network-lock", "skip"],
    // Apps holding flock/fcntl locks (pid files, sqlite) are otherwise refused.
    "--file-locks",
  ];
}

export function criuRestore(criuPath: string, options: RestoreOptions): CommandLine {
  return [
    criuPath,
    "restore",
    ...["--images-dir", options.imagesDir],
    ...["--log-file", options.logFile],
    `-v${options.logLevel}`,
    // Connections that were open at dump time belong to clients of the first launch.
    // (The network-lock method is the dump's, read from the images.)
    "--tcp-close",
    "--file-locks",
    ...(options.isLazy ? ["--lazy-pages"] : []),
    ...(options.isLeftStopped ? ["--leave-stopped"] : []),
    ...options.inheritFds.flatMap(({ fd, resource }) => ["--inherit-fd", `fd[${fd}]:${resource}`]),
    // Needs a non-detached restore (CRIU refuses --exec-cmd with --restore-detached).
    ...(options.execCommand.length > 0 ? ["--exec-cmd", "--", ...options.execCommand] : []),
  ];
}

export function criuLazyPages(criuPath: string, options: LazyPagesOptions): CommandLine {
  return [
    criuPath,
    "lazy-pages",
    ...["--images-dir", options.imagesDir],
    ...["--log-file", options.logFile],
    `-v${options.logLevel}`,
    ...["--status-fd", String(options.statusFd)],
  ];
}

/** `criu check`, or the check of one feature (`--feature ns_pid`). */
export function criuCheck(criuPath: string, feature?: string): CommandLine {
  return [criuPath, "check", ...(feature ? ["--feature", feature] : [])];
}

/** `criu cpuinfo dump`: CRIU's description of this CPU, for another host to check against. */
export function criuCpuinfoDump(criuPath: string, imagesDir: string): CommandLine {
  return [criuPath, "cpuinfo", "dump", "--images-dir", imagesDir];
}

/** `criu cpuinfo check`: whether this CPU can run what the dump host's image describes. */
export function criuCpuinfoCheck(criuPath: string, imagesDir: string, logFile: string): CommandLine {
  return [criuPath, "cpuinfo", "check", "--images-dir", imagesDir, "--log-file", logFile];
}

export function criuVersion(criuPath: string): CommandLine {
  return [criuPath, "--version"];
}

// ── helpers warmstart runs ─────────────────────────────────────────────────────────────────

/** A bash script with positional arguments. --norc: see pipe-wrapper.ts for why. */
export function bashScript(script: string, args: readonly string[]): CommandLine {
  return ["bash", "--norc", "-c", script, "warmstart", ...args];
}

/** The perl reaper CRIU execs in its own place after a restore (see pipe-wrapper.ts). */
export function perlScript(script: string, args: readonly string[]): CommandLine {
  return ["perl", "-e", script, ...args];
}

/** The sd_notify receiver. -I -S: the app's PYTHONPATH and site packages are not the
 * helper's business, and skipping them shortens a start-up the cold launch waits for. */
export function pythonScript(python: string, script: string, args: readonly string[]): CommandLine {
  return [python, "-I", "-S", "-u", "-c", script, ...args];
}

/** Every unix socket of the network namespace with its peer (pre-flight: who the app talks to). */
export function ssUnixSockets(): CommandLine {
  return ["ss", "-x", "-a", "-n", "-H"];
}

/** The in-namespace readiness probe of a prewarm: this Node running one of warmstart's files. */
export function nodeScript(file: string, args: readonly string[]): CommandLine {
  return [process.execPath, file, ...args];
}
