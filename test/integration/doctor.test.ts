// Issue 2: `warmstart doctor` against real CRIU, a missing CRIU, and Debian's own 3.17.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { CLI, makeTempDir, useIntegrationRig } from "./rig.js";

useIntegrationRig();

function doctor(env: NodeJS.ProcessEnv, args: string[] = []) {
  const result = spawnSync(process.execPath, [CLI, "doctor", ...args], {
    env: { ...process.env, ...env },
    encoding: "utf8",
    timeout: 120_000,
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe("warmstart doctor", () => {
  test("with a working CRIU: every required check is ok, the real dump/restore probe passes, exit 0", () => {
    const { code, stdout } = doctor({});
    assert.equal(code, 0, stdout);
    assert.match(stdout, /^ok {6}criu {2,}4\.\d+\.\d+ at \S+criu \(tested: 4\.2\.x\)$/m);
    assert.match(
      stdout,
      /^ok {6}capabilities {2,}root with CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_SYS_CHROOT, CAP_SYS_TIME, CAP_SETPCAP$/m,
    );
    assert.match(stdout, /^ok {6}seccomp {2,}no filter$/m);
    assert.match(stdout, /^ok {6}restore namespace {2,}\/\S+\/native\/restore-chain enter -- true works$/m);
    assert.match(stdout, /^ok {6}restore chain {2,}native \(\/\S+\/native\/restore-chain\): /m);
    assert.match(stdout, /^ok {6}feature ns_pid /m);
    assert.match(
      stdout,
      /^ok {6}checkpoint\/restore probe +dump \d+ ms, restore to ready \d+ ms, answers on its port, output flows$/m,
    );
    assert.match(stdout, /warmstart can checkpoint and restore on this machine\./);
    const report = JSON.parse(doctor({}, ["--json"]).stdout) as {
      canBeWarm: boolean;
      checks: { status: string }[];
    };
    assert.equal(report.canBeWarm, true);
  });

  test("without CRIU: missing, with the fix, exit 1", () => {
    const { code, stdout } = doctor({ WARMSTART_CRIU: "/nonexistent/criu" });
    assert.equal(code, 1);
    assert.match(stdout, /^missing criu {2,}not found\n {2,}fix: run: sudo warmstart setup$/m);
    assert.match(stdout, /^missing checkpoint\/restore probe +skipped: a required check above failed/m);
    assert.match(stdout, /Launches will start cold until the problems above are fixed\./);
  });

  test("without a capability CRIU needs (dropped from the bounding set, as a container would): names it and what fails, exit 1", () => {
    // setpriv as a container runtime would: the capability is gone from the bounding set.
    const result = spawnSync(
      "setpriv",
      ["--bounding-set=-net_admin", "--", process.execPath, CLI, "doctor"],
      {
        encoding: "utf8",
        timeout: 120_000,
      },
    );
    assert.equal(result.status, 1, result.stdout);
    assert.match(
      result.stdout,
      /^missing capabilities {2,}root lacks CAP_NET_ADMIN \(restores fail \(netlink: Operation not permitted\)\)\n {2,}fix: the container or service withholds them \(not in the bounding set\): e\.g\. docker run --cap-add NET_ADMIN, or run warmstart as root outside it$/m,
    );
    assert.match(
      result.stdout,
      /^missing checkpoint\/restore probe +skipped: a required check above failed/m,
    );
  });

  test("under a seccomp filter, even one allowing everything: broken, since CRIU cannot dump then; names the flag", () => {
    // An allow-all filter, installed the way a container runtime installs its profile, then
    // warmstart exec'd under it.
    const allowAll = [
      "import ctypes, os, struct, sys",
      "prog = struct.pack('HBBI', 0x06, 0, 0, 0x7fff0000)",
      "buf = ctypes.create_string_buffer(prog)",
      "fprog = struct.pack('HxxxxxxQ', 1, ctypes.addressof(buf))",
      "libc = ctypes.CDLL(None, use_errno=True)",
      "assert libc.prctl(22, 2, ctypes.c_char_p(fprog)) == 0, ctypes.get_errno()",
      "os.execv(sys.argv[1], sys.argv[1:])",
    ].join("\n");
    const result = spawnSync("/usr/bin/python3", ["-c", allowAll, process.execPath, CLI, "doctor"], {
      encoding: "utf8",
      timeout: 120_000,
    });
    assert.match(
      result.stdout,
      /^broken {2}seccomp {2,}1 filter active: the app inherits it, and CRIU cannot dump a process under a filter while itself under one \(suspending seccomp failed: Operation not permitted\)\n {2,}fix: run warmstart without a seccomp filter: --security-opt seccomp=unconfined \(Docker, Podman\), SystemCallFilter= unset \(systemd\)$/m,
    );
    assert.equal(result.status, 1, result.stdout);
    assert.match(
      result.stdout,
      /^missing checkpoint\/restore probe +skipped: a required check above failed/m,
    );
  });

  test("with Debian's own criu first in PATH: broken, names the version and the fix, exit 1", () => {
    // The distribution's package, as `apt-get install criu` would put it in /usr/sbin.
    const dir = makeTempDir("warmstart-distro-criu-");
    execFileSync("apt-get", ["download", "-qq", "criu"], { cwd: dir, stdio: "ignore" });
    const deb = readdirSync(dir).find((name) => name.endsWith(".deb"));
    assert.ok(deb, "apt-get download criu gave no package");
    execFileSync("dpkg-deb", ["-x", join(dir, deb), join(dir, "root")]);
    const { code, stdout } = doctor({ PATH: `${join(dir, "root/usr/sbin")}:${process.env.PATH}` });
    assert.equal(code, 1, stdout);
    assert.match(
      stdout,
      /^broken {2}criu {2,}(3\.17|4\.[01])\.\d+ at \S+\/root\/usr\/sbin\/criu: warmstart needs CRIU >= 4\.2 .*\n {2,}fix: run: sudo warmstart setup$/m,
    );
  });
});
