/*
 * The restore chain's two processes in one small program, in place of five execs of
 * setpriv, sh, unshare, sh and mount before CRIU and a perl after it: each exec of a dynamic
 * program cost 2-5 ms on the paravirtualized 2-core machines this was measured on, and all of
 * them sit between a connection and its first answer. Built by scripts/build-native.sh;
 * src/exec/command-lines.ts builds its command lines, and without it warmstart runs the
 * util-linux chain, which does the same.
 *
 *   restore-chain enter [--guard PPID] [--kill-child] [--notify DIR OLD NEW]
 *                       [--kerndat FILE TARGET] -- COMMAND...
 *     (--guard) dies with its parent, and exits 125 if that parent is not PPID any more;
 *     unshares a PID and a mount namespace (mounts propagate from the host, not back); forks
 *     the namespace's PID 1, which (--kill-child) dies with this process, mounts its own
 *     /proc, (--notify) a tmpfs on DIR with a symlink OLD -> NEW, (--kerndat) FILE bound over
 *     TARGET if it can, and execs COMMAND. This process waits for it and ends as it ended.
 *
 *   restore-chain enter [--guard PPID] --mount-only [--kerndat FILE TARGET] -- COMMAND...
 *     The mount namespace alone, without a fork (CRIU's lazy-pages daemon): COMMAND keeps
 *     this PID.
 *
 *   restore-chain reap APP WATCH
 *     CRIU's --exec-cmd: the namespace's PID 1 once the tree is restored, the app's parent.
 *     Writes the resume marker on stdout, waits for APP (a PID in the namespace) and exits
 *     with its code (128+n for a signal). With WATCH "1" it also exits (137) when stdout,
 *     the launcher's end of a socket, reads EOF: the launcher is gone.
 *
 * Every failure says what failed on stderr and exits 1 (126/127 for an exec), as the shell
 * chain did.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#define MARKER "warmstart:resumed\n"

static int fail(const char *what) {
  fprintf(stderr, "restore-chain: %s: %s\n", what, strerror(errno));
  return 1;
}

/** The exit code of a waited-for child, as a shell reports it. */
static int code_of(int status) {
  return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

/** Execs the command (a PATH lookup); returns the shell's code for what went wrong. */
static int exec_command(char **argv) {
  execvp(argv[0], argv);
  int code = errno == ENOENT ? 127 : 126;
  fprintf(stderr, "restore-chain: %s: %s\n", argv[0], strerror(errno));
  return code;
}

/** The namespace's PID 1, before it execs the command. */
static int set_up_namespace(char **argv, const char *notify[3], const char *kerndat[2], int kill_child,
                            int parent_alive) {
  if (kill_child) {
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) return fail("PR_SET_PDEATHSIG");
    // The parent died before the signal was tied to it (getppid says 0 in a new namespace
    // either way): its end of the pipe is closed, and nobody would take the namespace down.
    struct pollfd alive = {.fd = parent_alive, .events = POLLIN};
    if (poll(&alive, 1, 0) != 0) return 1;
  }
  close(parent_alive);
  if (mount("none", "/", NULL, MS_REC | MS_SLAVE, NULL) != 0) return fail("making / a slave mount");
  if (mount("none", "/proc", NULL, MS_REC | MS_PRIVATE, NULL) != 0) return fail("making /proc private");
  if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NOEXEC | MS_NODEV, NULL) != 0)
    return fail("mounting /proc");
  if (notify[0]) {
    if (mount("warmstart", notify[0], "tmpfs", 0, "mode=0700") != 0) return fail("mounting the notify tmpfs");
    if (symlink(notify[2], notify[1]) != 0) return fail("linking the notify socket");
  }
  // A bind that fails costs the kernel probe CRIU would have made anyway, never the restore.
  if (kerndat[0]) (void)mount(kerndat[0], kerndat[1], NULL, MS_BIND, NULL);
  return exec_command(argv);
}

static int enter(int argc, char **argv) {
  const char *notify[3] = {NULL, NULL, NULL};
  const char *kerndat[2] = {NULL, NULL};
  long guard = 0;
  int kill_child = 0;
  int mount_only = 0;
  int i = 0;
  for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
    if (strcmp(argv[i], "--guard") == 0 && i + 1 < argc) {
      guard = strtol(argv[++i], NULL, 10);
    } else if (strcmp(argv[i], "--kill-child") == 0) {
      kill_child = 1;
    } else if (strcmp(argv[i], "--mount-only") == 0) {
      mount_only = 1;
    } else if (strcmp(argv[i], "--notify") == 0 && i + 3 < argc) {
      notify[0] = argv[++i];
      notify[1] = argv[++i];
      notify[2] = argv[++i];
    } else if (strcmp(argv[i], "--kerndat") == 0 && i + 2 < argc) {
      kerndat[0] = argv[++i];
      kerndat[1] = argv[++i];
    } else {
      fprintf(stderr, "restore-chain: unknown argument %s\n", argv[i]);
      return 2;
    }
  }
  if (i + 1 >= argc) {
    fprintf(stderr, "restore-chain: no command after --\n");
    return 2;
  }
  if (guard > 0) {
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) return fail("PR_SET_PDEATHSIG");
    // Tied to the parent of the moment: one that died before is not the launcher any more.
    if (getppid() != (pid_t)guard) return 125;
  }
  if (mount_only) {
    if (unshare(CLONE_NEWNS) != 0) return fail("unshare");
    if (mount("none", "/", NULL, MS_REC | MS_SLAVE, NULL) != 0) return fail("making / a slave mount");
    if (kerndat[0]) (void)mount(kerndat[0], kerndat[1], NULL, MS_BIND, NULL);
    return exec_command(argv + i + 1);
  }
  if (unshare(CLONE_NEWPID | CLONE_NEWNS) != 0) return fail("unshare");
  // As unshare(1) does: a SIGINT or SIGTERM meant for the chain reaches PID 1, not this wait.
  sigset_t blocked, previous;
  sigemptyset(&blocked);
  sigaddset(&blocked, SIGINT);
  sigaddset(&blocked, SIGTERM);
  sigprocmask(SIG_BLOCK, &blocked, &previous);
  // Held open by this process only: the child reads EOF on it once this process is gone.
  int alive[2];
  if (pipe2(alive, O_CLOEXEC) != 0) return fail("pipe");
  pid_t child = fork();
  if (child < 0) return fail("fork");
  if (child == 0) {
    sigprocmask(SIG_SETMASK, &previous, NULL);
    close(alive[1]);
    _exit(set_up_namespace(argv + i + 1, notify, kerndat, kill_child, alive[0]));
  }
  close(alive[0]);
  int status;
  while (waitpid(child, &status, 0) < 0) {
    if (errno != EINTR) return fail("waitpid");
  }
  return code_of(status);
}

static int reap(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "restore-chain: reap needs APP and WATCH\n");
    return 2;
  }
  pid_t app = (pid_t)strtol(argv[0], NULL, 10);
  int watch = strcmp(argv[1], "1") == 0;
  // Told of exits only: a SIGCHLD for each stop and continue of the app (serve's spare is
  // sent SIGCONT as its connection arrives) woke this process for nothing, as the app's
  // threads woke too (1.5 ms of CPU in one trace; no gain measurable in 20 resumes).
  struct sigaction quiet = {.sa_handler = SIG_DFL, .sa_flags = SA_NOCLDSTOP};
  sigemptyset(&quiet.sa_mask);
  if (sigaction(SIGCHLD, &quiet, NULL) != 0) return fail("sigaction");
  // SIGCHLD through a signalfd, blocked before the marker: no exit is missed between the two.
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, NULL);
  int wake = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  if (wake < 0) return fail("signalfd");
  // A launcher already gone makes this write fail; the wait then notices the EOF.
  (void)!write(1, MARKER, sizeof MARKER - 1);
  struct pollfd fds[2] = {{.fd = wake, .events = POLLIN}, {.fd = 1, .events = POLLIN}};
  for (;;) {
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
      if (pid == app) return code_of(status);
    }
    if (pid < 0 && errno == ECHILD) return 0;
    if (poll(fds, watch ? 2 : 1, -1) < 0) {
      if (errno == EINTR) continue;
      return fail("poll");
    }
    if (fds[0].revents & POLLIN) {
      struct signalfd_siginfo info;
      while (read(wake, &info, sizeof info) == sizeof info) {
      }
    }
    if (watch && fds[1].revents) {
      char byte[64];
      ssize_t n = read(1, byte, sizeof byte);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return 137;
      // POLLHUP/POLLERR with nothing read: the peer is gone.
      if (n < 0 && (fds[1].revents & (POLLHUP | POLLERR))) return 137;
    }
  }
}

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "enter") == 0) return enter(argc - 2, argv + 2);
  if (argc >= 2 && strcmp(argv[1], "reap") == 0) return reap(argc - 2, argv + 2);
  fprintf(stderr, "usage: restore-chain enter [options] -- COMMAND... | restore-chain reap APP WATCH\n");
  return 2;
}
