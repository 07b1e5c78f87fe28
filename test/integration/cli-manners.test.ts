// Issue 12 (and 9's help finding): the CLI as a new user meets it. Each message is asserted
// whole, as the user reads it.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";
import { describe, test } from "node:test";
import { CLI, fixture, freePort, makeTempDir, useIntegrationRig, WarmstartRun } from "./rig.js";

useIntegrationRig();

function warmstart(args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) {
  const result = spawnSync(process.execPath, [CLI, ...args], {
    encoding: "utf8",
    cwd: options.cwd ?? makeTempDir("warmstart-cli-cwd-"),
    env: { ...process.env, ...options.env },
    timeout: 60_000,
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

const COMMANDS = [
  ...["run", "prewarm", "bench", "setup", "doctor", "ls", "rm", "prune", "verify"],
  ...["export", "import", "push", "pull", "keygen"],
];

describe("help", () => {
  for (const command of COMMANDS) {
    test(`'help ${command}' and '${command} --help' print its usage and exit 0`, () => {
      const viaHelp = warmstart(["help", command]);
      assert.equal(viaHelp.code, 0, viaHelp.stderr);
      assert.match(viaHelp.stdout, new RegExp(`^usage: warmstart ${command}\\b`, "i"));
      assert.equal(viaHelp.stderr, "");
      const viaFlag = warmstart([command, "--help"]);
      assert.equal(viaFlag.code, 0, viaFlag.stderr);
      assert.equal(viaFlag.stdout, viaHelp.stdout);
    });
  }

  test("'help foo' is an error naming the commands, exit 2", () => {
    const result = warmstart(["help", "foo"]);
    assert.equal(result.code, 2);
    assert.equal(result.stdout, "");
    assert.equal(
      result.stderr,
      'warmstart: error: Unknown command "foo".\n' +
        "  hint: commands: run, serve, prewarm, bench, setup, doctor, ls, rm, prune, verify, export, import, push, pull, keygen, help\n",
    );
  });
});

describe("options", () => {
  test("a typo names the option it resembles, and points at help instead of printing it", () => {
    const result = warmstart(["run", "--redy", "tcp:3000", "--", "node", "app.js"]);
    assert.equal(result.code, 2);
    assert.equal(
      result.stderr,
      "warmstart: error: Unknown option --redy (did you mean --ready?).\n" +
        "  hint: 'warmstart help run' lists its options\n",
    );
  });

  test("an empty --cache-dir is an error naming the option, for run and for ls", () => {
    const message = 'warmstart: error: Expected --cache-dir to be a non-empty value, got "".\n';
    const run = warmstart(["run", "--cache-dir", "", "--ready", "tcp:3000", "--", "node", "app.js"]);
    assert.equal(run.code, 2);
    assert.equal(run.stderr, message);
    const ls = warmstart(["ls", "--cache-dir", ""]);
    assert.equal(ls.code, 2);
    assert.equal(ls.stderr, message);
  });

  test("--ready tcp://localhost:4101 is refused before anything starts", () => {
    const result = warmstart([
      "run",
      "--ready",
      "tcp://localhost:4101",
      "--",
      "node",
      fixture("never-ready.cjs"),
    ]);
    assert.equal(result.code, 2);
    assert.equal(
      result.stderr,
      'warmstart: error: Expected --ready to be tcp:<host>:<port> without "//", as in tcp:localhost:4101, got "tcp://localhost:4101".\n',
    );
    assert.equal(result.stdout, "");
  });

  test("a config file's bad probe is blamed on its field, not on --ready", () => {
    const cwd = makeTempDir("warmstart-cli-config-");
    writeFileSync(join(cwd, "warmstart.config.json"), '{"ready": ["tcp://localhost:4101"]}');
    const result = warmstart(["run", "--", "node", fixture("never-ready.cjs")], { cwd });
    assert.equal(result.code, 2);
    assert.equal(
      result.stderr,
      `warmstart: error: Expected "ready" in ${join(cwd, "warmstart.config.json")} to be tcp:<host>:<port> without "//", as in tcp:localhost:4101, got "tcp://localhost:4101".\n`,
    );
  });
});

describe("readiness timeout", () => {
  test("says what each probe saw last: refused, HTTP 404", async (t) => {
    const server = createServer((_, response) => response.writeHead(404).end());
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    t.after(() => server.close());
    const address = server.address();
    const httpPort = typeof address === "object" && address ? address.port : 0;
    const closedPort = await freePort();
    // Not spawnSync: the HTTP server above runs on this process's event loop.
    const run = new WarmstartRun([
      "run",
      "--cache-dir",
      makeTempDir(),
      "--ready",
      `tcp:${closedPort}`,
      "--ready",
      `http://127.0.0.1:${httpPort}/health`,
      "--ready-timeout",
      "1",
      "--",
      "node",
      fixture("never-ready.cjs"),
    ]);
    const { code } = await run.exited;
    assert.equal(code, 1);
    assert.equal(
      run.stderr,
      `warmstart: error: The app was not ready after 1 s: tcp:localhost:${closedPort} (last try: connection refused), http://127.0.0.1:${httpPort}/health (last try: HTTP 404) never passed. It was stopped; no snapshot was taken.\n` +
        "  hint: check the probe (port, URL, log pattern) or raise --ready-timeout\n",
    );
  });
});

describe("cache directory", () => {
  test("ls, rm, prune and verify on a missing --cache-dir say so and do not create it", () => {
    const missing = join(makeTempDir(), "not-there");
    for (const args of [["ls"], ["rm", "--all"], ["prune"], ["verify"]]) {
      const result = warmstart([...args, "--cache-dir", missing]);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout, `No snapshots in ${missing} (no such directory).\n`, args[0]);
      assert.equal(existsSync(missing), false, `${args[0]} created ${missing}`);
    }
  });

  test("a cache path that is a file is reported as a file, for ls and for run", () => {
    const file = join(makeTempDir(), "a-file");
    writeFileSync(file, "");
    const ls = warmstart(["ls", "--cache-dir", file]);
    assert.equal(ls.code, 1);
    assert.equal(
      ls.stderr,
      `warmstart: error: Cache directory refused: ${file} is a file, not a directory.\n` +
        "  hint: it must be yours, not a symlink, and writable only by you (chmod 700); or pass another --cache-dir\n",
    );
    const run = warmstart(["run", "--cache-dir", file, "--ready", "file:/", "--", "node", "-e", "0"]);
    assert.match(
      run.stderr,
      new RegExp(
        `^warmstart: warning: cache directory refused: ${file} is a file, not a directory; starting without snapshots$`,
        "m",
      ),
    );
  });
});
