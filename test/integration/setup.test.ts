// Issue 12's acceptance for installing: from a packed tarball installed globally into a
// temporary prefix, with no file of the repository in reach, `warmstart setup --prefix`
// builds CRIU from Debian's source package and installs it, `warmstart doctor` passes with
// that criu, and `warmstart run` is warm on the second launch. Slow: it builds CRIU once
// (about a minute or two); the other setups of this file reuse that build, as setup does.
import assert from "node:assert/strict";
import { type SpawnSyncReturns, spawn, spawnSync } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { before, describe, test } from "node:test";
import { TESTED_CRIU_TEXT } from "../../src/criu/find-criu.js";
import { selectCriuRelease } from "../../src/setup/criu-release.js";
import { findArchiveUri, PrivateSourceIndex, readAptSources } from "../../src/setup/debian-archive.js";
import {
  escapeRegExp,
  freePort,
  isAlive,
  makeTempDir,
  type Report,
  ROOT,
  readReports,
  signalProcess,
  useIntegrationRig,
  waitUntil,
} from "./rig.js";

useIntegrationRig();

/** The environment of a user's shell: no npm_* of the test run, no repository on PATH. */
function userEnv(extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !/^npm_|^WARMSTART_|^XDG_/i.test(name)),
  );
  return { ...env, ...extra };
}

function check(result: SpawnSyncReturns<string>, what: string): string {
  assert.equal(result.status, 0, `${what} failed (${result.status}):\n${result.stdout}\n${result.stderr}`);
  return result.stdout;
}

describe("warmstart setup, from a packed tarball installed globally", () => {
  const dir = makeTempDir("warmstart-setup-");
  const globalPrefix = join(dir, "global");
  const warmstartBin = join(globalPrefix, "bin", "warmstart");
  const home = join(dir, "home");
  // One build cache for the file: the second and third setups find the first one's build.
  const env = userEnv({
    PATH: [
      join(globalPrefix, "bin"),
      dirname(process.execPath),
      "/usr/sbin",
      "/usr/bin",
      "/sbin",
      "/bin",
    ].join(":"),
    XDG_CONFIG_HOME: join(home, "config"),
    XDG_CACHE_HOME: join(home, "cache"),
  });
  const warmstart = (args: string[], timeoutMs = 120_000) =>
    spawnSync(warmstartBin, args, { cwd: dir, env, encoding: "utf8", timeout: timeoutMs });

  before(() => {
    mkdirSync(home);
    // Packs the build this test run is made of (npm ci built it): no second build.
    const packed = check(
      spawnSync("npm", ["pack", "--ignore-scripts", "--pack-destination", dir], {
        cwd: ROOT,
        env: userEnv({}),
        encoding: "utf8",
      }),
      "npm pack",
    );
    const tarball = join(dir, packed.trim().split("\n").at(-1) ?? "");
    check(
      spawnSync(
        "npm",
        [
          "install",
          "--global",
          "--prefix",
          globalPrefix,
          "--no-audit",
          "--no-fund",
          "--prefer-offline",
          tarball,
        ],
        { cwd: dir, env: userEnv({}), encoding: "utf8", timeout: 300_000 },
      ),
      "npm install --global",
    );
    const installed = join(globalPrefix, "lib", "node_modules", "warmstart");
    assert.ok(existsSync(join(installed, "dist", "bundle", "cli.cjs")));
    assert.equal(existsSync(join(installed, "scripts")), false, "the package ships no scripts/");
  });

  test("setup --prefix builds and installs CRIU; doctor passes with it; run is warm on the second launch", async () => {
    const criuPrefix = join(dir, "criu");
    const setup = warmstart(["setup", "--prefix", criuPrefix], 1_800_000);
    const criuPath = join(criuPrefix, "sbin", "criu");
    const recordPath = join(home, "config", "warmstart", "criu.json");
    const tested = escapeRegExp(TESTED_CRIU_TEXT);
    assert.match(
      check(setup, "warmstart setup"),
      new RegExp(
        `^Installed CRIU ${tested.replace("x", "\\d+")} at ${escapeRegExp(criuPath)} \\(tested with warmstart \\(${tested}\\)\\); recorded in ${escapeRegExp(recordPath)}, warmstart uses it first\\.\n$`,
      ),
    );
    assert.match(
      setup.stderr,
      /^warmstart setup: building CRIU \d+\.\d+\.\d+ \(make -j\d+ criu; a minute or two\)$/m,
    );
    assert.deepEqual(JSON.parse(readFileSync(recordPath, "utf8")).path, criuPath);

    const doctor = warmstart(["doctor"]);
    assert.equal(doctor.status, 0, doctor.stdout + doctor.stderr);
    assert.match(
      doctor.stdout,
      new RegExp(
        `^ok {6}criu {2,}${tested.replace("x", "\\d+")} at ${escapeRegExp(criuPath)} \\(tested: ${tested}, installed by warmstart setup --prefix\\)$`,
        "m",
      ),
    );
    assert.match(doctor.stdout, /warmstart can checkpoint and restore on this machine\./);

    // An app of the user's, outside the repository.
    const app = join(dir, "app.js");
    writeFileSync(
      app,
      'require("node:net").createServer((s) => s.end("hi\\n")).listen(Number(process.env.PORT), "127.0.0.1");\n',
    );
    const port = await freePort();
    const reportFile = join(dir, "reports.jsonl");
    const launch = async (): Promise<Report> => {
      const out = openSync(join(dir, "app.out"), "a");
      const child = spawn(
        warmstartBin,
        [
          "run",
          "--detach",
          "--cache-dir",
          join(dir, "cache"),
          "--report",
          reportFile,
          "--ready",
          `tcp:${port}`,
          "--",
          "node",
          app,
        ],
        { cwd: dir, env: { ...env, PORT: String(port) }, stdio: ["ignore", out, out] },
      );
      const code = await new Promise((resolve) => child.once("exit", resolve));
      closeSync(out);
      assert.equal(code, 0, readFileSync(join(dir, "app.out"), "utf8"));
      const report = readReports(reportFile).at(-1);
      assert.ok(report);
      return report;
    };
    const cold = await launch();
    assert.equal(cold.mode, "cold");
    assert.equal(cold.checkpoint, "saved");
    signalProcess(cold.pid, "SIGKILL");
    await waitUntil(() => !isAlive(cold.pid), 5000);
    const warm = await launch();
    try {
      assert.equal(warm.mode, "warm", JSON.stringify(warm));
    } finally {
      signalProcess(warm.pid, "SIGKILL");
      await waitUntil(() => !isAlive(warm.pid), 5000);
    }
  });

  test("--criu-source: a tarball of the tested series installs, reusing the build of the same source", async () => {
    const source = await fetchOrigTarball(join(dir, "apt"));
    const criuPrefix = join(dir, "criu-from-tarball");
    const setup = warmstart(["setup", "--prefix", criuPrefix, "--criu-source", source], 1_800_000);
    check(setup, "warmstart setup --criu-source");
    assert.match(setup.stderr, /^warmstart setup: reusing the build of [0-9a-f]{12} in /m);
    assert.match(setup.stdout, new RegExp(`^Installed CRIU \\S+ at ${join(criuPrefix, "sbin", "criu")} `));
  });

  test("--criu-source of a release outside the tested series is refused, unless --allow-untested", () => {
    const untested = join(dir, "criu-9.1.0.tar.gz");
    const tree = join(dir, "criu-9.1.0");
    mkdirSync(tree);
    writeFileSync(
      join(tree, "Makefile.versions"),
      "CRIU_VERSION_MAJOR := 9\nCRIU_VERSION_MINOR := 1\nCRIU_VERSION_SUBLEVEL := 0\n",
    );
    check(spawnSync("tar", ["-czf", untested, "-C", dir, "criu-9.1.0"], { encoding: "utf8" }), "tar");
    const refused = warmstart(["setup", "--prefix", join(dir, "never"), "--criu-source", untested]);
    assert.equal(refused.status, 1);
    assert.equal(
      refused.stderr,
      `warmstart: error: ${untested} holds CRIU 9.1.0, which warmstart was not tested with (tested: ${TESTED_CRIU_TEXT}).\n` +
        "  hint: give a tarball of the tested series, or add --allow-untested to build it anyway\n",
    );
    assert.equal(existsSync(join(dir, "never")), false);
  });
});

/** CRIU's upstream tarball of the tested series, from the Debian archive this machine uses. */
async function fetchOrigTarball(work: string): Promise<string> {
  const uri = findArchiveUri(readAptSources());
  assert.ok(uri, "no Debian archive in apt's sources");
  const index = new PrivateSourceIndex(work, uri);
  await index.update();
  const choice = selectCriuRelease(await index.listCriuReleases(), false);
  assert.ok(choice.found, "the archive carries no release of the tested series");
  return index.downloadOrigTarball(choice.release);
}
