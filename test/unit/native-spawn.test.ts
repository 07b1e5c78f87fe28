// posix_spawn through koffi (src/exec/native-spawn.ts), owned (spawnOwnedNative): real
// short-lived processes, no root, no CRIU.
import assert from "node:assert/strict";
import { chmodSync, closeSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { spawnOwnedNative } from "../../src/exec/owned-process.js";
import { makeSocketPair } from "../../src/exec/pipes.js";

/** Runs `script` under sh with stdout and stderr on a socketpair; its output and exit. */
async function run(script: string, env: NodeJS.ProcessEnv = { PATH: "/usr/bin:/bin" }, file = "sh") {
  const [ours, theirs] = makeSocketPair();
  const channel = new Socket({ fd: ours, readable: true, writable: false });
  let output = "";
  channel.on("data", (chunk) => {
    output += chunk;
  });
  const owned = spawnOwnedNative([file, "-c", script], {
    env,
    fds: [null, theirs, theirs],
    isSessionLeader: true,
    isKilledAtExit: true,
    endOfChild: channel,
  });
  closeSync(theirs);
  const exit = await owned.exited;
  return { output, exit, pid: owned.pid };
}

describe("spawnOwnedNative", () => {
  test("the child's output arrives and its exit code is reaped once its end closes", async () => {
    const { output, exit } = await run("echo hello; echo oops >&2; exit 3");
    assert.equal(output, "hello\noops\n");
    assert.deepEqual([exit.code, exit.signal, exit.reason], [3, null, "exited"]);
  });

  test("a child ended by a signal reports it", async () => {
    const { exit } = await run("kill -TERM $$; sleep 5");
    assert.deepEqual([exit.code, exit.signal], [null, "SIGTERM"]);
  });

  test("the child leads a session of its own and ignores no signal Node ignores (SIGPIPE)", async () => {
    const { output, pid } = await run("ps -o sid= -p $$; grep SigIgn /proc/self/status");
    const [sid, ignored] = output.trim().split("\n");
    assert.equal(Number(sid), pid);
    const mask = BigInt(`0x${ignored?.split(/\s+/)[1] ?? "ff"}`);
    assert.equal(mask & (1n << 12n), 0n, `SIGPIPE ignored in the child: SigIgn ${ignored}`);
  });

  test("the command is found on the launch's PATH, not warmstart's own", async () => {
    const dir = mkdtempSync(join(tmpdir(), "warmstart-native-spawn-"));
    try {
      writeFileSync(join(dir, "warmstart-test-tool"), "#!/bin/sh\necho found $1\n");
      chmodSync(join(dir, "warmstart-test-tool"), 0o755);
      const { output, exit } = await run("x", { PATH: `${dir}:/usr/bin:/bin` }, "warmstart-test-tool");
      assert.deepEqual([output, exit.code], ["found -c\n", 0]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a command that does not exist is a spawn failure on `exited`, not an exception", async () => {
    const [ours, theirs] = makeSocketPair();
    const channel = new Socket({ fd: ours, readable: true, writable: false });
    const owned = spawnOwnedNative(["warmstart-no-such-tool"], {
      env: { PATH: "/usr/bin:/bin" },
      fds: [null, theirs, theirs],
      isSessionLeader: false,
      endOfChild: channel,
    });
    const exit = await owned.exited;
    channel.destroy();
    closeSync(theirs);
    assert.equal(exit.reason, "spawn-failed");
    assert.match(exit.error?.message ?? "", /warmstart-no-such-tool: not found in PATH/);
    assert.equal(owned.pid, -1);
  });
});
