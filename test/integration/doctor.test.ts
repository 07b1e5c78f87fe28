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
    assert.match(stdout, /^ok {6}criu {2,}4\.\d+\.\d+ at \S+criu$/m);
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
    assert.match(stdout, /^missing criu {2,}not found\n {2,}fix: run: sudo scripts\/install-criu\.sh/m);
    assert.match(stdout, /^missing checkpoint\/restore probe +skipped: a required check above failed/m);
    assert.match(stdout, /Launches will start cold until the problems above are fixed\./);
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
      /^broken {2}criu {2,}(3\.17|4\.[01])\.\d+ at \S+\/root\/usr\/sbin\/criu: warmstart needs CRIU >= 4\.2 .*\n {2,}fix: run: sudo scripts\/install-criu\.sh/m,
    );
  });
});
