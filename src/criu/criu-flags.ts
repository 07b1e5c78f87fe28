/**
 * warmstart's CRIU options, one field per CRIU feature, and the one place they become flags
 * (the runc pattern: a reader can see every flag CRIU gets and why).
 */

export interface DumpOptions {
  readonly pid: number;
  readonly imagesDir: string;
  /** File name inside imagesDir. */
  readonly logFile: string;
  /** 0-4; 4 gives the context lines that make a failed dump debuggable. */
  readonly logLevel: number;
  /** Keep the app serving after the checkpoint: the user never waits on the dump. */
  readonly leaveRunning: boolean;
}

export interface RestoreOptions {
  readonly imagesDir: string;
  readonly logFile: string;
  readonly logLevel: number;
  /** The app's stdio pipes at dump time ("pipe:[INODE]"), index = fd, and the fd of the
   * restoring process that replaces each one. */
  readonly inheritFds: readonly { readonly fd: number; readonly resource: string }[];
  /** Command CRIU execs in its own place once the tree runs; it becomes the app's parent. */
  readonly execCommand: readonly string[];
  /** Memory comes from a lazy-pages daemon on first touch (userfaultfd) instead of being
   * read in full before the app resumes: restore time stops growing with the image. */
  readonly isLazy: boolean;
}

export interface LazyPagesOptions {
  readonly imagesDir: string;
  readonly logFile: string;
  readonly logLevel: number;
  /** The daemon writes \0 here once it listens, so the restore never races it. */
  readonly statusFd: number;
}

export function toDumpFlags(options: DumpOptions): string[] {
  return [
    "dump",
    ...["--tree", String(options.pid)],
    ...["--images-dir", options.imagesDir],
    ...["--log-file", options.logFile],
    `-v${options.logLevel}`,
    ...(options.leaveRunning ? ["--leave-running"] : []),
    // A readiness probe or an early client may leave a connection open at dump time. Restores
    // bring such connections back closed (their clients belong to the first launch), so their
    // TCP state is not dumped and they are not blocked: without this the dump fails
    // ("Connected TCP socket").
    "--tcp-close",
    // Nothing to lock then. The default (iptables) needs a binary Debian does not ship, and
    // nftables costs ~18 ms on every restore, where CRIU deletes a table it never made.
    ...["--network-lock", "skip"],
    // Apps holding flock/fcntl locks (pid files, sqlite) are otherwise refused.
    "--file-locks",
  ];
}

export function toRestoreFlags(options: RestoreOptions): string[] {
  return [
    "restore",
    ...["--images-dir", options.imagesDir],
    ...["--log-file", options.logFile],
    `-v${options.logLevel}`,
    // Connections that were open at dump time belong to clients of the first launch.
    // (The network-lock method is the dump's, read from the images.)
    "--tcp-close",
    "--file-locks",
    ...(options.isLazy ? ["--lazy-pages"] : []),
    ...options.inheritFds.flatMap(({ fd, resource }) => ["--inherit-fd", `fd[${fd}]:${resource}`]),
    // Needs a non-detached restore (CRIU refuses --exec-cmd with --restore-detached).
    ...(options.execCommand.length > 0 ? ["--exec-cmd", "--", ...options.execCommand] : []),
  ];
}

export function toLazyPagesFlags(options: LazyPagesOptions): string[] {
  return [
    "lazy-pages",
    ...["--images-dir", options.imagesDir],
    ...["--log-file", options.logFile],
    `-v${options.logLevel}`,
    ...["--status-fd", String(options.statusFd)],
  ];
}
