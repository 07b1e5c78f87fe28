import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { readCriuErrors, summarizeCriuErrors } from "../../src/criu/criu-log.js";
import { isCriuVersionSupported, listCriuCandidates, parseCriuVersion } from "../../src/criu/find-criu.js";
import { checkKerndatCache } from "../../src/doctor/doctor-checks.js";
import {
  criuDump,
  criuRestore,
  dieWithParentUnless,
  guardedWithKerndat,
  inNetworkOf,
  inNewPidNamespace,
  inRestoreNamespace,
  restoreChainReaper,
  withNotifySocketAt,
} from "../../src/exec/command-lines.js";

describe("criu", () => {
  test("versions: parsed from --version, 4.2 and later supported", () => {
    assert.deepEqual(parseCriuVersion("Version: 4.2.1\nGitID: v4.2.1\n"), {
      major: 4,
      minor: 2,
      patch: 1,
      text: "4.2.1",
    });
    assert.deepEqual(parseCriuVersion("Version: 3.17\n"), { major: 3, minor: 17, patch: 0, text: "3.17.0" });
    assert.equal(parseCriuVersion("criu: command not found"), undefined);
    assert.equal(isCriuVersionSupported({ major: 4, minor: 1, patch: 1, text: "4.1.1" }), false);
    assert.equal(isCriuVersionSupported({ major: 4, minor: 2, patch: 0, text: "4.2.0" }), true);
    assert.equal(isCriuVersionSupported({ major: 5, minor: 0, patch: 0, text: "5.0.0" }), true);
  });

  test("candidates: $WARMSTART_CRIU alone, else PATH in order, then the sbin directories", () => {
    assert.deepEqual(listCriuCandidates({ WARMSTART_CRIU: "/opt/criu", PATH: "/bin" }), ["/opt/criu"]);
    assert.deepEqual(listCriuCandidates({ PATH: "/opt/bin:/usr/sbin" }), [
      "/opt/bin/criu",
      "/usr/sbin/criu",
      "/usr/local/sbin/criu",
      "/sbin/criu",
    ]);
  });

  test("flags: one per option, lazy and exec-cmd only when asked", () => {
    assert.deepEqual(
      criuDump("/usr/local/sbin/criu", {
        pid: 42,
        imagesDir: "/i",
        logFile: "/l",
        logLevel: 4,
        leaveRunning: true,
      }),
      [
        "/usr/local/sbin/criu",
        "dump",
        "--tree",
        "42",
        "--images-dir",
        "/i",
        "--log-file",
        "/l",
        "-v4",
        "--leave-running",
        "--tcp-close",
        "--skip-in-flight",
        "--network-lock",
        "skip",
        "--file-locks",
      ],
    );
    const restore = criuRestore("criu", {
      imagesDir: "/i",
      logFile: "/l",
      logLevel: 2,
      inheritFds: [{ fd: 4, resource: "pipe:[7]" }],
      execCommand: ["perl", "-e", "1"],
      isLazy: true,
    });
    assert.deepEqual(restore.slice(-9), [
      "--file-locks",
      "--lazy-pages",
      "--inherit-fd",
      "fd[4]:pipe:[7]",
      "--exec-cmd",
      "--",
      "perl",
      "-e",
      "1",
    ]);
    const eager = criuRestore("criu", {
      imagesDir: "/i",
      logFile: "/l",
      logLevel: 2,
      inheritFds: [],
      execCommand: [],
      isLazy: false,
    });
    assert.equal(eager.includes("--lazy-pages") || eager.includes("--exec-cmd"), false);
  });

  test("wrappers: the parent-death guard unless detached, the namespaces, the notify redirect", () => {
    const app = ["node", "app.js"] as const;
    assert.deepEqual(dieWithParentUnless(false, app), [
      ...[
        "setpriv",
        "--pdeathsig",
        "KILL",
        "--",
        "sh",
        "-c",
        '[ "$PPID" = "$1" ] || exit 125; shift; exec "$@"',
      ],
      ...["warmstart-guard", String(process.pid), "node", "app.js"],
    ]);
    assert.deepEqual(dieWithParentUnless(true, app), ["node", "app.js"]);
    assert.deepEqual(inNewPidNamespace(true, app), [
      ...[
        "unshare",
        "--pid",
        "--fork",
        "--mount",
        "--propagation",
        "slave",
        "--mount-proc",
        "--kill-child",
        "--",
      ],
      ...app,
    ]);
    assert.deepEqual(inNetworkOf(7, app), ["nsenter", "--net=/proc/7/ns/net", "--", "node", "app.js"]);
    const redirect = withNotifySocketAt(
      { dir: "/c/notify", oldPath: "/c/notify/a.sock", newPath: "/c/run/b/notify.sock" },
      app,
    );
    assert.deepEqual(redirect.slice(3), [
      "warmstart-notify",
      "/c/notify",
      "/c/notify/a.sock",
      "/c/run/b/notify.sock",
      "node",
      "app.js",
    ]);
  });

  test("the restore's namespace: one exec of the native program, or the util-linux chain without it", () => {
    const criu = ["criu", "restore"] as const;
    const kerndat = { file: "/c/kerndat/k.kdat", target: "/run/criu.kdat" };
    const notifyRedirect = { dir: "/c/notify", oldPath: "/c/notify/a.sock", newPath: "/c/run/b/notify.sock" };
    assert.deepEqual(
      inRestoreNamespace("/w/restore-chain", { isGuarded: true, kerndat, notifyRedirect }, criu),
      [
        ...["/w/restore-chain", "enter", "--guard", String(process.pid), "--kill-child"],
        ...["--notify", "/c/notify", "/c/notify/a.sock", "/c/run/b/notify.sock"],
        ...["--kerndat", "/c/kerndat/k.kdat", "/run/criu.kdat", "--", "criu", "restore"],
      ],
    );
    // Detached: nothing ties the namespace to warmstart.
    assert.deepEqual(inRestoreNamespace("/w/restore-chain", { isGuarded: false }, criu), [
      ...["/w/restore-chain", "enter", "--", "criu", "restore"],
    ]);
    const fallback = inRestoreNamespace(undefined, { isGuarded: true, kerndat, notifyRedirect }, criu);
    assert.deepEqual(fallback.slice(0, 3), ["setpriv", "--pdeathsig", "KILL"]);
    assert.deepEqual(fallback.slice(9, 18), inNewPidNamespace(true, criu).slice(0, 9));
    assert.ok(fallback.includes("warmstart-notify") && fallback.includes("warmstart-kerndat"));
    assert.deepEqual(fallback.slice(-2), ["criu", "restore"]);
    assert.deepEqual(inRestoreNamespace(undefined, { isGuarded: false }, criu).slice(0, 1), ["unshare"]);
    assert.deepEqual(guardedWithKerndat("/w/restore-chain", kerndat, ["criu", "lazy-pages"]), [
      ...["/w/restore-chain", "enter", "--guard", String(process.pid), "--mount-only"],
      ...["--kerndat", "/c/kerndat/k.kdat", "/run/criu.kdat", "--", "criu", "lazy-pages"],
    ]);
    assert.deepEqual(guardedWithKerndat(undefined, kerndat, ["criu", "lazy-pages"]).slice(0, 1), ["setpriv"]);
    assert.deepEqual(restoreChainReaper("/w/restore-chain", 42, true), [
      "/w/restore-chain",
      "reap",
      "42",
      "1",
    ]);
    assert.deepEqual(restoreChainReaper("/w/restore-chain", 42, false), [
      "/w/restore-chain",
      "reap",
      "42",
      "0",
    ]);
  });

  test("log: error lines with the line before them, benign ones skipped, the first real one summarized", async () => {
    const dir = mkdtempSync(join(tmpdir(), "warmstart-criu-log-"));
    try {
      const log = join(dir, "restore.log");
      writeFileSync(
        log,
        [
          "(00.001) Error (criu/util.c:1534): rlimit: Can't setup RLIMIT_NOFILE for self: Operation not permitted",
          "(00.002) inet: Restoring socket 27",
          "(00.003) Error (criu/sk-inet.c:1059): inet: Can't bind inet socket (id 27): Address already in use",
          "(00.004) Error (criu/cr-restore.c:2331): Restoring FAILED.",
          "",
        ].join("\n"),
      );
      const errors = await readCriuErrors(log);
      assert.deepEqual(errors, [
        "(00.002) inet: Restoring socket 27",
        "(00.003) Error (criu/sk-inet.c:1059): inet: Can't bind inet socket (id 27): Address already in use",
        "(00.004) Error (criu/cr-restore.c:2331): Restoring FAILED.",
      ]);
      assert.equal(
        summarizeCriuErrors(errors),
        "Error (criu/sk-inet.c:1059): inet: Can't bind inet socket (id 27): Address already in use",
      );
      assert.deepEqual(await readCriuErrors(join(dir, "missing.log")), []);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("doctor says whether restores find CRIU's kernel-feature cache, and never fails on it", () => {
    const tmpfs = checkKerndatCache("/c", { isCopyWanted: false, copy: undefined });
    assert.match(tmpfs.detail, /\/run is a tmpfs: CRIU keeps its own/);
    const copied = checkKerndatCache("/c", { isCopyWanted: true, copy: "/c/kerndat/criu-ab.kdat" });
    assert.equal(copied.status, "ok");
    assert.match(copied.detail, /at \/c\/kerndat\/criu-ab\.kdat: restores skip/);
    const none = checkKerndatCache("/c", { isCopyWanted: true, copy: undefined });
    assert.equal(none.status, "info");
    assert.match(
      none.detail,
      /no copy for this boot and this CRIU in \/c yet: the first launch that is ready makes one/,
    );
    assert.equal(
      [tmpfs, copied, none].some((check) => check.isRequired),
      false,
    );
  });
});
