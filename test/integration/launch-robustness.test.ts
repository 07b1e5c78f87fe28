// "warmstart never stops an app from starting", and leaves nothing behind: the launch's
// failure paths, with real CRIU on real processes.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statfsSync,
  statSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { GENERAL_MEMO_FILE } from "../../src/cache/file-hash.js";
import { currentOwner, formatOwnerTag } from "../../src/cache/owner-stamp.js";
import { RESTORE_CHAIN_PROGRAM } from "../../src/exec/restore-chain.js";
import {
  fixture,
  freePort,
  getJson,
  isAlive,
  listEntries,
  makeTempDir,
  newCache,
  type Report,
  ROOT,
  readReports,
  runArgs,
  STORE_DIR,
  signalProcess,
  useIntegrationRig,
  WarmstartRun,
  waitUntil,
} from "./rig.js";

useIntegrationRig();

const TICKER = ["node", fixture("ticker-server.cjs")];

function lastReport(reportFile: string): Report {
  const report = readReports(reportFile).at(-1);
  assert.ok(report, `no report in ${reportFile}`);
  return report;
}

/** A cold launch that saves a snapshot, then stops. */
async function snapshot(args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  const cold = new WarmstartRun(args, env);
  await cold.waitFor(/snapshot saved/, "stderr", 60_000);
  await cold.stop();
  return listEntries(args[args.indexOf("--cache-dir") + 1] ?? "")[0] ?? "";
}

function processes(): string {
  return execFileSync("ps", ["-eo", "pid,args"], { encoding: "utf8" });
}

/** A criu that fails or hangs at one command and is the real one for the others: what a
 * restore that breaks looks like, on demand. */
function criuThat(behaviour: "hangs" | "fails slowly", command: "restore" | "lazy-pages"): string {
  const path = join(makeTempDir("warmstart-fake-criu-"), "criu");
  const real = execFileSync("sh", ["-c", "command -v criu"], {
    encoding: "utf8",
    env: { ...process.env, PATH: `/usr/local/sbin:${process.env.PATH}` },
  }).trim();
  const act =
    behaviour === "hangs" ? "exec sleep 1000" : 'sleep 2; echo "Error (fake): restore refused" >&2; exit 1';
  writeFileSync(path, `#!/bin/sh\nif [ "$1" = ${command} ]; then ${act}; fi\nexec ${real} "$@"\n`);
  chmodSync(path, 0o755);
  return path;
}

describe("warmstart run: the launch never stops the app", () => {
  test("a cache whose store cannot be written: the app serves, the failed checkpoint is said", async () => {
    const { cacheDir, reportFile } = newCache();
    writeFileSync(join(cacheDir, STORE_DIR), "a file where the store's directory goes");
    const port = await freePort();
    const run = new WarmstartRun(runArgs(cacheDir, reportFile, [`tcp:${port}`], TICKER), {
      PORT: String(port),
    });
    await run.waitFor(
      new RegExp(
        `warning: snapshot failed, the next launch will be cold too: .*${STORE_DIR}.* is not a directory`,
      ),
      "stderr",
    );
    const answer = await getJson(`http://127.0.0.1:${port}/`);
    assert.equal(typeof answer.bootId, "string", "the app still serves after the failed checkpoint");
    assert.equal(run.child.exitCode, null, "warmstart still supervises it");
    await getJson(`http://127.0.0.1:${port}/exit/5`).catch(() => undefined);
    assert.deepEqual(await run.exited, { code: 5, signal: null });
  });

  test("the app's exit code before ready is warmstart's, 0 included", async () => {
    const { cacheDir, reportFile } = newCache();
    const run = new WarmstartRun(
      runArgs(cacheDir, reportFile, ["tcp:1"], ["node", fixture("dies-early.cjs")]),
      {
        EXIT_CODE: "0",
      },
    );
    assert.deepEqual(await run.exited, { code: 0, signal: null });
    assert.match(run.stderr, /error: The app exited with code 0 before it was ready\./);
  });

  test("a signal that ended the app gives 128+n, whichever the signal (SIGBUS: 135)", async () => {
    const { cacheDir, reportFile } = newCache();
    const port = await freePort();
    const run = new WarmstartRun(runArgs(cacheDir, reportFile, [`tcp:${port}`], TICKER, ["--no-snapshot"]), {
      PORT: String(port),
    });
    await run.waitFor(/ready, cold/, "stderr");
    await getJson(`http://127.0.0.1:${port}/signal/SIGBUS`).catch(() => undefined);
    assert.deepEqual(await run.exited, { code: 135, signal: null });
    assert.equal(lastReport(reportFile).exitCode, 135);
  });

  test("--cache-dir where no directory can be made: the app starts at once, the reason is said", async () => {
    const { reportFile } = newCache();
    const port = await freePort();
    const run = new WarmstartRun(runArgs("/proc/warmstart-cache", reportFile, [`tcp:${port}`], TICKER), {
      PORT: String(port),
    });
    await run.waitFor(/ready, cold/, "stderr", 15_000);
    assert.match(
      run.stderr,
      /warning: cache directory refused: cannot create \/proc\/warmstart-cache: mkdir \/proc\/warmstart-cache: .*; starting without snapshots/,
    );
    assert.equal((await run.stop()).code, 143);
  });

  test("a cache on a read-only filesystem is named as such", async () => {
    const mountPoint = makeTempDir("warmstart-ro-");
    execFileSync("mount", ["-t", "tmpfs", "-o", "ro,size=1m", "warmstart-ro", mountPoint]);
    try {
      const { reportFile } = newCache();
      const port = await freePort();
      const run = new WarmstartRun(runArgs(join(mountPoint, "cache"), reportFile, [`tcp:${port}`], TICKER), {
        PORT: String(port),
      });
      await run.waitFor(/ready, cold/, "stderr", 15_000);
      assert.match(
        run.stderr,
        /cache directory refused: cannot create .*: the filesystem is read-only \(EROFS\)/,
      );
      await run.stop();
    } finally {
      execFileSync("umount", [mountPoint]);
    }
  });

  test("a hash memo that cannot be written does not turn restores off", async () => {
    const { cacheDir, reportFile } = newCache();
    const port = await freePort();
    const input = join(makeTempDir(), "config.json");
    writeFileSync(input, "{}");
    const args = runArgs(cacheDir, reportFile, [`tcp:${port}`], TICKER, ["--input", input]);
    await snapshot(args, { PORT: String(port) });
    // The memo cannot be replaced (as on a full or read-only disk), and the input was
    // touched, so its hash is computed again and the memo written again.
    rmSync(join(cacheDir, GENERAL_MEMO_FILE));
    mkdirSync(join(cacheDir, GENERAL_MEMO_FILE));
    execFileSync("touch", ["-d", new Date(Date.now() + 5000).toISOString(), input]);
    const warm = new WarmstartRun(args, { PORT: String(port) });
    await warm.waitFor(/ready, (cold|warm)/, "stderr");
    await warm.stop();
    assert.doesNotMatch(warm.stderr, /warning/);
    assert.equal(lastReport(reportFile).mode, "warm");
  });

  test("a restore that a low `ulimit -n` keeps from starting: the app starts cold, the snapshot is kept", async () => {
    const { cacheDir, reportFile } = newCache();
    const port = await freePort();
    const args = runArgs(cacheDir, reportFile, [`tcp:${port}`], TICKER, ["--no-lazy"]);
    const env = { PORT: String(port) };
    const key = await snapshot(args, env);
    // Enough fds for Node and a cold start, too few for the restore's pipes, its spawn or CRIU.
    const starved = new WarmstartRun(args, env, ["prlimit", "--nofile=32", "--"]);
    await starved.waitFor(/ready, cold/, "stderr", 60_000);
    assert.ok(await getJson(`http://127.0.0.1:${port}/`), "the app does not answer");
    await starved.stop();
    assert.match(starved.stderr, /kept the snapshot, starting cold/);
    assert.doesNotMatch(starved.stderr, /evicted|internal error/);
    assert.deepEqual(listEntries(cacheDir), [key]);
    const warm = new WarmstartRun(args, env);
    await warm.waitFor(/ready, warm/, "stderr", 60_000);
    await warm.stop();
    assert.equal(lastReport(reportFile).mode, "warm");
  });
});

describe("warmstart run: signals at every step", () => {
  test("SIGTERM during a restore that hangs: warmstart exits at once with 143, the app never starts", async () => {
    const { cacheDir, reportFile } = newCache();
    const port = await freePort();
    const args = runArgs(cacheDir, reportFile, [`tcp:${port}`], TICKER, ["--no-lazy"]);
    const key = await snapshot(args, { PORT: String(port) });
    const run = new WarmstartRun(args, { PORT: String(port), WARMSTART_CRIU: criuThat("hangs", "restore") });
    await run.waitFor(/restoring the snapshot/, "stderr");
    await new Promise((resolve) => setTimeout(resolve, 300));
    run.child.kill("SIGTERM");
    const exited = await Promise.race([
      run.exited,
      new Promise((resolve) => setTimeout(resolve, 10_000, "stuck")),
    ]);
    assert.notEqual(exited, "stuck", `warmstart did not exit:\n${run.stderr}`);
    assert.deepEqual(exited, { code: 143, signal: null });
    assert.doesNotMatch(run.stdout, /ready pid=/, "the app was started cold anyway");
    assert.deepEqual(listEntries(cacheDir), [key], "the snapshot was kept");
    assert.ok(await waitUntil(() => !processes().includes("sleep 1000"), 5000), "the hung criu was left");
  });

  test("SIGTERM while a restore fails: the cold start that would follow never begins", async () => {
    const { cacheDir, reportFile } = newCache();
    const port = await freePort();
    const args = runArgs(cacheDir, reportFile, [`tcp:${port}`], TICKER, ["--no-lazy"]);
    const env = { PORT: String(port), STARTUP_MS: "3000" };
    await snapshot(args, env);
    const run = new WarmstartRun(args, { ...env, WARMSTART_CRIU: criuThat("fails slowly", "restore") });
    await run.waitFor(/restoring the snapshot/, "stderr", 30_000);
    run.child.kill("SIGTERM");
    assert.deepEqual(await run.exited, { code: 143, signal: null });
    assert.doesNotMatch(run.stderr, /starting cold|checkpointing/);
    assert.doesNotMatch(run.stdout, /ready pid=/);
  });

  test("a restore that hangs times out: the snapshot fails over to a cold start", async () => {
    const { launch } = await import("../../src/launch/launch.js");
    const { cacheDir, reportFile } = newCache();
    const port = await freePort();
    const args = runArgs(cacheDir, reportFile, [`tcp:${port}`], TICKER, ["--lazy"]);
    const warnings: string[] = [];
    for (const command of ["restore", "lazy-pages"] as const) {
      // A restore that fails evicts the snapshot: each attempt gets a fresh one.
      await snapshot(args, { PORT: String(port) });
      const launched = await launch({
        command: TICKER,
        ready: [`tcp:${port}`],
        cacheDir,
        isLazy: true,
        isSnapshotDisabled: true,
        restoreTimeoutMs: 2000,
        env: { ...process.env, PORT: String(port), WARMSTART_CRIU: criuThat("hangs", command) },
        onEvent: (event) => {
          if (event.type === "fallback") warnings.push(event.message);
        },
        sinks: { stdout: process.stderr, stderr: process.stderr },
      });
      assert.equal(launched.mode, "cold");
      launched.kill("SIGTERM");
      await launched.exited;
    }
    assert.match(
      warnings[0] ?? "",
      /restore failed: criu restore did not finish within 2 s; evicted the snapshot/,
    );
    assert.match(
      warnings[1] ?? "",
      /restore failed: criu lazy-pages was not ready within 2 s; evicted the snapshot/,
    );
    assert.ok(await waitUntil(() => !processes().includes("sleep 1000"), 5000), "a hung criu was left");
  });

  test("SIGTERM during the checkpoint: the app stops, the snapshot is abandoned and says so, nothing is left", async () => {
    const { cacheDir, reportFile } = newCache();
    const port = await freePort();
    const run = new WarmstartRun(runArgs(cacheDir, reportFile, [`tcp:${port}`], TICKER), {
      PORT: String(port),
      NODE_OPTIONS: "--max-old-space-size=1024",
      BALLAST_MB: "200",
    });
    await run.waitFor(/checkpointing/, "stderr");
    await new Promise((resolve) => setTimeout(resolve, 200));
    run.child.kill("SIGTERM");
    const exit = await run.exited;
    assert.equal(exit.code, 143);
    assert.match(run.stderr, /snapshot abandoned: warmstart was stopped while it was taken/);
    assert.deepEqual(readdirSync(join(cacheDir, STORE_DIR)), [], "a pending dump or a lock was left");
    assert.deepEqual(readdirSync(join(cacheDir, "run")), [], "a runtime directory was left");
    assert.equal(lastReport(reportFile).checkpoint, "abandoned");
  });

  test("kill -9 during the dump: CRIU goes too, and prune leaves nothing behind", async () => {
    const { cacheDir, reportFile } = newCache();
    const port = await freePort();
    const run = new WarmstartRun(runArgs(cacheDir, reportFile, [`tcp:${port}`], TICKER), {
      PORT: String(port),
      NODE_OPTIONS: "--max-old-space-size=1024",
      BALLAST_MB: "200",
    });
    await run.waitFor(/checkpointing/, "stderr");
    await new Promise((resolve) => setTimeout(resolve, 300));
    run.child.kill("SIGKILL");
    await run.exited;
    assert.ok(
      await waitUntil(() => !processes().includes(join(cacheDir, STORE_DIR)), 5000),
      `criu dump outlived warmstart:\n${processes()}`,
    );
    const pruned = new WarmstartRun(["prune", "--cache-dir", cacheDir]);
    assert.equal((await pruned.exited).code, 0, pruned.stderr);
    assert.match(pruned.stdout, new RegExp(`removed ${STORE_DIR}/\\.pending-`));
    assert.deepEqual(readdirSync(join(cacheDir, STORE_DIR)), [], "a pending dump or a lock was left");
    assert.deepEqual(readdirSync(join(cacheDir, "run")), [], "a runtime directory was left");
  });
});

describe("warmstart run: state that PIDs cannot fool", () => {
  test("as PID 1 of a container, what an earlier PID 1 left neither breaks a restore nor blocks a snapshot", async () => {
    const { cacheDir, reportFile } = newCache();
    const port = await freePort();
    const container = ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc", "--"];
    const args = (extra: string[] = []) => runArgs(cacheDir, reportFile, [`tcp:${port}`], TICKER, extra);
    // unshare ignores SIGTERM: it goes to warmstart, PID 1 inside.
    const stop = async (run: WarmstartRun) => {
      const [inner] = readFileSync(`/proc/${run.child.pid}/task/${run.child.pid}/children`, "utf8").split(
        " ",
      );
      signalProcess(Number(inner), "SIGTERM");
      return run.exited;
    };
    // What a killed PID 1 of an earlier container (an older warmstart) left: its restore staging.
    mkdirSync(join(cacheDir, "run", "1", "images"), { recursive: true });
    writeFileSync(join(cacheDir, "run", "1", "images", "core-1.img"), "left over");
    const first = new WarmstartRun(args(), { PORT: String(port) }, container);
    await first.waitFor(/snapshot saved/, "stderr");
    await stop(first);
    const key = listEntries(cacheDir)[0] ?? "";
    // A lock of an earlier container's PID 1, killed mid-dump a minute ago.
    const lock = join(cacheDir, STORE_DIR, `.lock-${key}`);
    writeFileSync(
      lock,
      formatOwnerTag({ ...currentOwner(), pidNamespace: 4026530000, pid: 1, startTicks: 1 }),
    );
    const aMinuteAgo = new Date(Date.now() - 60_000);
    utimesSync(lock, aMinuteAgo, aMinuteAgo);
    const second = new WarmstartRun(args(), { PORT: String(port) }, container);
    await second.waitFor(/ready, warm, pid/, "stderr");
    await stop(second);
    const refreshed = new WarmstartRun(args(["--refresh"]), { PORT: String(port) }, container);
    await refreshed.waitFor(/snapshot saved/, "stderr");
    await stop(refreshed);
    assert.deepEqual(
      readReports(reportFile).map((r) => [r.mode, r.fallbackReason, r.checkpoint]),
      [
        ["cold", null, "saved"],
        ["warm", null, null],
        ["cold", null, "saved"],
      ],
    );
  });

  test("a lock held by a live launch: the snapshot is skipped and -v says who holds it", async () => {
    const { cacheDir, reportFile } = newCache();
    const port = await freePort();
    const args = runArgs(cacheDir, reportFile, [`tcp:${port}`], TICKER);
    const key = await snapshot(args, { PORT: String(port) });
    // A live holder (this test process) of the key's lock, then a refresh.
    writeFileSync(join(cacheDir, STORE_DIR, `.lock-${key}`), formatOwnerTag(currentOwner()));
    const refresh = new WarmstartRun([...args.slice(0, 2), "--refresh", ...args.slice(2)], {
      PORT: String(port),
    });
    await refresh.waitFor(new RegExp(`snapshot skipped: pid ${process.pid} is taking it`), "stderr");
    await refresh.stop();
    assert.equal(lastReport(reportFile).checkpoint, "lost-race");
  });
});

describe("warmstart run: what a restored copy finds", () => {
  test("CRIU's kernel-feature cache: kept per boot by warmstart where /run is no tmpfs, seen by CRIU only in the restore's namespace", async () => {
    const { cacheDir, reportFile } = newCache();
    const port = await freePort();
    const seen = join(makeTempDir(), "kdat-seen");
    // The real CRIU, which first records what /run/criu.kdat holds where it restores.
    const criu = join(makeTempDir("warmstart-kdat-criu-"), "criu");
    const real = execFileSync("sh", ["-c", "command -v criu"], {
      encoding: "utf8",
      env: { ...process.env, PATH: `/usr/local/sbin:${process.env.PATH}` },
    }).trim();
    writeFileSync(
      criu,
      `#!/bin/sh\ncase "$1" in restore|lazy-pages) sha256sum < /run/criu.kdat > ${seen}-$1 ;; esac\nexec ${real} "$@"\n`,
    );
    chmodSync(criu, 0o755);
    const args = runArgs(cacheDir, reportFile, [`tcp:${port}`], TICKER);
    const env = { PORT: String(port), WARMSTART_CRIU: criu };
    const cold = new WarmstartRun(args, env);
    await cold.waitFor(/snapshot saved/, "stderr", 60_000);
    const kerndatDir = join(cacheDir, "kerndat");
    if (statfsSync("/run").type === 0x01021994) {
      // CRIU keeps its own cache on a tmpfs /run: nothing for warmstart to keep.
      await cold.stop();
      assert.equal(existsSync(kerndatDir), false);
      return;
    }
    assert.ok(
      await waitUntil(
        () => existsSync(kerndatDir) && readdirSync(kerndatDir).some((name) => name.endsWith(".kdat")),
        30_000,
      ),
      "no copy of CRIU's cache was made after the snapshot",
    );
    await cold.stop();
    const [copy = ""] = readdirSync(kerndatDir).filter((name) => name.endsWith(".kdat"));
    const copyBytes = readFileSync(join(kerndatDir, copy));
    assert.ok(copyBytes.length > 0);
    // Eager, then lazy: the lazy-pages daemon probes the kernel too.
    for (const mode of ["--no-lazy", "--lazy"]) {
      const warm = new WarmstartRun(runArgs(cacheDir, reportFile, [`tcp:${port}`], TICKER, [mode]), env);
      await warm.waitFor(/ready, warm/, "stderr", 60_000);
      await warm.stop();
    }
    const expected = createHash("sha256").update(copyBytes).digest("hex");
    for (const command of ["restore", "lazy-pages"])
      assert.equal(
        readFileSync(`${seen}-${command}`, "utf8").split(" ")[0],
        expected,
        `criu ${command} did not find the copy at /run/criu.kdat`,
      );
    // Outside the restore's namespace the path is an empty file (any other CRIU removes it).
    assert.equal(existsSync("/run/criu.kdat") ? statSync("/run/criu.kdat").size : 0, 0);
  });

  test("a second warm launch on a port the first holds: not restored beside it; the holder is named", async () => {
    const { cacheDir, reportFile } = newCache();
    const port = await freePort();
    const args = runArgs(cacheDir, reportFile, [`tcp:${port}`], TICKER);
    const env = { PORT: String(port) };
    const key = await snapshot(args, env);
    const first = new WarmstartRun(args, env);
    const [, firstPid] = await first.waitFor(/ready, warm, pid (\d+)/, "stderr");
    const second = new WarmstartRun(args, env);
    const exit = await second.exited;
    assert.notEqual(exit.code, 0, "like a second cold start, it cannot listen");
    assert.match(
      second.stderr,
      new RegExp(
        `warning: port ${port} is held by pid ${firstPid} \\(node\\), where the snapshot listens: kept the snapshot, starting cold`,
      ),
    );
    assert.doesNotMatch(second.stderr, /ready, warm/);
    assert.deepEqual(listEntries(cacheDir), [key]);
    // An entry that does not say where it listens (taken by an older warmstart) is caught
    // after the restore: the copy is stopped.
    const manifestPath = join(cacheDir, STORE_DIR, key, "manifest.json");
    const { listen: _listen, ...manifest } = JSON.parse(readFileSync(manifestPath, "utf8"));
    writeFileSync(manifestPath, JSON.stringify(manifest), { mode: 0o600 });
    const third = new WarmstartRun(args, env);
    await third.exited;
    assert.match(
      third.stderr,
      new RegExp(
        `the restored app would share its port with another listener \\(port ${port} is held by pid ${firstPid} \\(node\\)\\); stopped it`,
      ),
    );
    const listeners = readFileSync("/proc/net/tcp", "utf8")
      .split("\n")
      .filter((line) =>
        line.includes(`:${port.toString(16).toUpperCase().padStart(4, "0")} 00000000:0000 0A`),
      );
    assert.equal(listeners.length, 1, "one listener on the port: the first copy's");
    assert.equal(isAlive(Number(firstPid)), true);
    await first.stop();
  });

  test("a restored app's NOTIFY_SOCKET reaches the launch that restored it", async () => {
    const { cacheDir, reportFile } = newCache();
    const port = await freePort();
    const args = runArgs(cacheDir, reportFile, ["notify", `tcp:${port}`], TICKER);
    const env = { PORT: String(port), NOTIFY_READY: "1" };
    await snapshot(args, env);
    const warm = new WarmstartRun(args, env);
    await warm.waitFor(/ready, warm/, "stderr");
    const seen = (await getJson(`http://127.0.0.1:${port}/notify-socket`)) as {
      path: string;
      target: { isSocket: boolean; ino: number } | null;
    };
    const [runtimeDir] = readdirSync(join(cacheDir, "run"));
    const socket = statSync(join(cacheDir, "run", runtimeDir ?? "", "notify.sock"));
    assert.deepEqual(seen.target, { isSocket: true, ino: socket.ino }, `NOTIFY_SOCKET ${seen.path}`);
    await warm.stop();
  });

  test("a file: flag left over from an earlier run does not count until the app writes it again", async () => {
    const { cacheDir, reportFile } = newCache();
    const port = await freePort();
    const flag = join(makeTempDir(), "ready.flag");
    writeFileSync(flag, "left over\n");
    const run = new WarmstartRun(runArgs(cacheDir, reportFile, [`file:${flag}`], TICKER), {
      PORT: String(port),
      READY_FILE: flag,
      STARTUP_MS: "1500",
    });
    await run.waitFor(/snapshot saved/, "stderr");
    await run.stop();
    assert.ok(lastReport(reportFile).readyMs >= 1500, `ready after ${lastReport(reportFile).readyMs} ms`);
    assert.equal(readFileSync(flag, "utf8"), "ready\n", "the app wrote the flag");
  });
});

describe("warmstart run: under systemd (Type=notify)", () => {
  test("READY=1 from warmstart once the launch is ready, cold and warm; the app's own messages passed on", async () => {
    const { createNotifyListener } = await import("../../src/readiness/notify.js");
    const systemd = await createNotifyListener(makeTempDir("warmstart-systemd-"));
    const messages: Record<string, string>[] = [];
    // systemd-notify (which the app uses) also sends BARRIER=1 with a pipe to sync on: the
    // helper does not pass descriptors, so neither does it pass that on.
    systemd.onMessage((fields) => messages.push(fields));
    try {
      const { cacheDir, reportFile } = newCache();
      const port = await freePort();
      const args = runArgs(cacheDir, reportFile, [`tcp:${port}`], TICKER);
      // NOTIFY_READY: the app says READY=1 itself too; systemd must hear it from warmstart only.
      const env = { PORT: String(port), NOTIFY_SOCKET: systemd.path, NOTIFY_READY: "1" };
      for (const mode of ["cold", "warm"]) {
        const run = new WarmstartRun(args, env);
        await run.waitFor(new RegExp(`ready, ${mode}`), "stderr");
        assert.ok(await waitUntil(() => messages.some((m) => m.READY === "1"), 5000), `${mode}: no READY=1`);
        if (mode === "cold") await run.waitFor(/snapshot saved/, "stderr");
        // Sent until it arrives: after the dump, the relay is back a moment later.
        const isRelayed = () => messages.some((m) => m.STATUS === mode);
        for (let attempt = 0; attempt < 50 && !isRelayed(); attempt++) {
          await getJson(`http://127.0.0.1:${port}/sd-notify?WATCHDOG=1&STATUS=${mode}`).catch(
            () => undefined,
          );
          await waitUntil(isRelayed, 200);
        }
        assert.ok(
          isRelayed(),
          `${mode}: the app's message did not reach systemd: ${JSON.stringify(messages)}`,
        );
        await run.stop();
        assert.deepEqual(
          [...new Set(messages.map((m) => Object.keys(m).sort().join(",")))],
          ["READY", "STATUS,WATCHDOG"],
          `${mode}: ${JSON.stringify(messages)}`,
        );
        assert.equal(messages.filter((m) => m.READY === "1").length, 1, "READY=1 once, from warmstart");
        messages.length = 0;
      }
    } finally {
      await systemd.close();
    }
  });
});

describe("warmstart run: as a container's PID 1", () => {
  test("orphans handed to it are reaped, and SIGTERM reaches the app", async () => {
    const { cacheDir, reportFile } = newCache();
    const port = await freePort();
    const run = new WarmstartRun(
      runArgs(cacheDir, reportFile, [`tcp:${port}`], TICKER, ["--no-snapshot"]),
      { PORT: String(port) },
      [...["unshare", "--pid", "--fork", "--kill-child", "--mount-proc", "--"]],
    );
    await run.waitFor(/ready, cold/, "stderr");
    const [init] = readFileSync(`/proc/${run.child.pid}/task/${run.child.pid}/children`, "utf8").split(" ");
    await getJson(`http://127.0.0.1:${port}/orphan`).catch(() => undefined);
    // Zombies handed to PID 1 (the bash wrapper's own exited subshells are the app's
    // children, not orphans: the app is alive to reap them, or not).
    const zombies = () =>
      listTree(Number(init)).filter((pid) => stateOf(pid) === "Z" && parentOf(pid) === Number(init));
    // The orphan sleeps 0.3 s, then exits: it must not stay a zombie.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.deepEqual(zombies(), [], "an orphan was left unreaped");
    signalProcess(Number(init), "SIGTERM");
    assert.deepEqual(await run.exited, { code: 143, signal: null });
    assert.equal(lastReport(reportFile).exitCode, 143, "the app got SIGTERM and died of it");
  });
});

function listTree(pid: number): number[] {
  const pids = [pid];
  for (let i = 0; i < pids.length; i++) {
    const current = pids[i] ?? pid;
    try {
      pids.push(
        ...readFileSync(`/proc/${current}/task/${current}/children`, "utf8")
          .split(" ")
          .filter(Boolean)
          .map(Number),
      );
    } catch {
      // Gone meanwhile.
    }
  }
  return pids;
}

function parentOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return -1;
  }
}

function stateOf(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
  } catch {
    return "";
  }
}

describe("warmstart run: pre-flight before the dump", () => {
  test("a unix socket to an outside process is named before the dump, and the failed dump is explained by it", async () => {
    const { createServer } = await import("node:net");
    const socketPath = join(makeTempDir("warmstart-outside-"), "db.sock");
    const accepted: import("node:net").Socket[] = [];
    const outside = createServer((socket) => accepted.push(socket.on("error", () => {})));
    await new Promise<void>((resolve) => outside.listen(socketPath, resolve));
    try {
      const { cacheDir, reportFile } = newCache();
      const run = new WarmstartRun(
        runArgs(
          cacheDir,
          reportFile,
          ["log:^holding"],
          ["node", fixture("preflight-holder.cjs"), "unix", socketPath],
        ),
      );
      await run.waitFor(/warning: snapshot failed/, "stderr", 60_000);
      assert.match(run.stderr, new RegExp(`warning: pre-flight: .*${socketPath}.*`));
      assert.match(
        run.stderr,
        new RegExp(
          `warning: snapshot failed, the next launch will be cold too: .*${socketPath}.*\\(CRIU: .*\\)`,
        ),
      );
      await run.stop();
    } finally {
      for (const socket of accepted) socket.destroy();
      outside.close();
    }
  });
});

describe("warmstart run: the launch's environment, warm as cold", () => {
  test("without the restore chain's program, a library caller's PATH finds the restore's tools as it finds the cold start's", async () => {
    // The program execs CRIU and itself by absolute paths; the util-linux chain it replaces
    // (a build without a C compiler) looks each tool up in the launch's PATH.
    const { launch } = await import("../../src/launch/launch.js");
    const program = join(ROOT, "dist", RESTORE_CHAIN_PROGRAM);
    assert.ok(existsSync(program), `${program} was not built (npm run build needs a C compiler)`);
    const shims = makeTempDir("warmstart-shims-");
    const log = join(shims, "used.log");
    const realSetpriv = execFileSync("sh", ["-c", "command -v setpriv"], { encoding: "utf8" }).trim();
    writeFileSync(join(shims, "setpriv"), `#!/bin/sh\necho "$*" >> ${log}\nexec ${realSetpriv} "$@"\n`);
    chmodSync(join(shims, "setpriv"), 0o755);
    const { cacheDir } = newCache();
    const port = await freePort();
    const env = { ...process.env, PATH: `${shims}:${process.env.PATH}`, PORT: String(port) };
    renameSync(program, `${program}.aside`);
    try {
      for (const mode of ["cold", "warm"]) {
        const launched = await launch({
          command: TICKER,
          ready: [`tcp:${port}`],
          cacheDir,
          env,
          sinks: { stdout: process.stderr, stderr: process.stderr },
        });
        assert.equal(launched.mode, mode);
        await launched.checkpoint;
        launched.kill("SIGTERM");
        await launched.exited;
      }
    } finally {
      renameSync(`${program}.aside`, program);
    }
    const used = readFileSync(log, "utf8");
    assert.match(used, /unshare --pid/, `the restore did not use the launch's PATH:\n${used}`);
  });

  test("--refresh killed in its dump: the old snapshot is still there, and still restores", async () => {
    const { cacheDir, reportFile } = newCache();
    const port = await freePort();
    const env = { PORT: String(port), NODE_OPTIONS: "--max-old-space-size=1024", BALLAST_MB: "150" };
    const args = runArgs(cacheDir, reportFile, [`tcp:${port}`], TICKER);
    const key = await snapshot(args, env);
    const refresh = new WarmstartRun(
      runArgs(cacheDir, reportFile, [`tcp:${port}`], TICKER, ["--refresh"]),
      env,
    );
    await refresh.waitFor(/\] checkpointing$/m, "stderr");
    await new Promise((resolve) => setTimeout(resolve, 300));
    refresh.child.kill("SIGKILL");
    await refresh.exited;
    assert.deepEqual(
      listEntries(cacheDir),
      [key],
      "the refresh took the old snapshot away before its own was in",
    );
    const warm = new WarmstartRun(args, env);
    await warm.waitFor(/ready, warm/, "stderr");
    await warm.stop();
  });
});

describe("warmstart run: the filesystem the app sees", () => {
  test("a mount the host makes after the app started reaches it, cold and warm", async () => {
    const { cacheDir, reportFile } = newCache();
    const port = await freePort();
    const args = runArgs(cacheDir, reportFile, [`tcp:${port}`], TICKER);
    // Mounts propagate from mounts the host shares (systemd makes / shared; this machine's /
    // is private): a shared one of the test's own, where the new mount goes.
    const shared = join(makeTempDir("warmstart-shared-"), "shared");
    mkdirSync(shared);
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=1m", "warmstart-shared", shared]);
    execFileSync("mount", ["--make-shared", shared]);
    try {
      for (const mode of ["cold", "warm"]) {
        const mountPoint = join(shared, mode);
        mkdirSync(mountPoint);
        const run = new WarmstartRun(args, { PORT: String(port) });
        await run.waitFor(new RegExp(`ready, ${mode}`), "stderr");
        if (mode === "cold") await run.waitFor(/snapshot saved/, "stderr");
        execFileSync("mount", ["-t", "tmpfs", "-o", "size=1m", "warmstart-later", mountPoint]);
        try {
          writeFileSync(join(mountPoint, "flag"), "on the new mount");
          const seen = await getJson(
            `http://127.0.0.1:${port}/exists?${encodeURIComponent(join(mountPoint, "flag"))}`,
          );
          assert.equal(seen.exists, true, `${mode}: the app does not see the host's new mount`);
        } finally {
          execFileSync("umount", ["-l", mountPoint]);
        }
        await run.stop();
      }
    } finally {
      execFileSync("umount", ["-l", shared]);
    }
  });
});
