// Issue 3's acceptance, with real CRIU on real processes.
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { describe, test } from "node:test";
import { RESTORE_CHAIN_PROGRAM } from "../../src/exec/restore-chain.js";
import {
  CLI,
  fixture,
  freePort,
  getJson,
  isAlive,
  listEntries,
  newCache,
  type Report,
  ROOT,
  readReports,
  runArgs,
  STORE_DIR,
  signalProcess,
  useIntegrationRig,
  WarmstartRun,
  waitForEntry,
  waitUntil,
} from "./rig.js";

useIntegrationRig();

function lastReport(reportFile: string): Report {
  const report = readReports(reportFile).at(-1);
  assert.ok(report, `no report in ${reportFile}`);
  return report;
}

describe("warmstart run", () => {
  test("second launch restores the state built by the first, from a new host PID, and its output flows", async () => {
    const { cacheDir, reportFile } = newCache();
    const port = await freePort();
    const args = runArgs(cacheDir, reportFile, [`tcp:${port}`], ["node", fixture("ticker-server.cjs")]);
    const env = { PORT: String(port) };

    const cold = new WarmstartRun(args, env);
    await cold.waitFor(/ready pid=/);
    const coldAnswer = await getJson(`http://127.0.0.1:${port}/`);
    await waitForEntry(cacheDir);
    await cold.stop();
    assert.equal(lastReport(reportFile).mode, "cold");

    const warm = new WarmstartRun(args, env);
    await warm.waitFor(/ready, warm, pid (\d+)/, "stderr");
    const warmAnswer = await getJson(`http://127.0.0.1:${port}/`);
    // Same process state: the boot id was drawn at random during the cold start.
    assert.equal(warmAnswer.bootId, coldAnswer.bootId);
    assert.equal(warmAnswer.pid, coldAnswer.pid, "inside its namespace the app keeps its PID");
    // Lines printed after the restore reach warmstart's stdout and stderr.
    const ticksAtDump = Number(warmAnswer.ticks);
    await warm.waitFor(new RegExp(`^tick ${ticksAtDump + 2}$`, "m"));
    await warm.waitFor(new RegExp(`^etick ${ticksAtDump + 2}$`, "m"), "stderr");
    assert.doesNotMatch(warm.stdout, /ready pid=/, "a restored app does not start again");
    await warm.stop();
    const report = lastReport(reportFile);
    assert.equal(report.mode, "warm");
    assert.equal(report.fallbackReason, null);
    assert.notEqual(report.pid, coldAnswer.pid, "the restored app has a new host PID");
    assert.ok(report.imageBytes && report.imageBytes > 0);
  });

  test("restores while the snapshotted PID is taken, twice, all instances alive together", async () => {
    const { cacheDir, reportFile } = newCache();
    const args = runArgs(cacheDir, reportFile, ["log:^ready pid="], ["node", fixture("ticker-server.cjs")]);
    const first = new WarmstartRun(args, { PORT: "0" });
    const [, pidText] = await first.waitFor(/ready pid=(\d+)/);
    const originalPid = Number(pidText);
    await waitForEntry(cacheDir);
    assert.ok(isAlive(originalPid), "the first instance holds the snapshotted PID");

    const second = new WarmstartRun(args, { PORT: "0" });
    const [, secondPid] = await second.waitFor(/ready, warm, pid (\d+)/, "stderr");
    const third = new WarmstartRun(args, { PORT: "0" });
    const [, thirdPid] = await third.waitFor(/ready, warm, pid (\d+)/, "stderr");
    const pids = [originalPid, Number(secondPid), Number(thirdPid)];
    assert.equal(new Set(pids).size, 3);
    // Each restored instance keeps running and printing.
    await second.waitFor(/tick \d+\n(?:.*\n)*tick \d+/);
    for (const run of [second, third]) {
      const before = run.stdout.length;
      assert.ok(
        await waitUntil(() => /tick \d+/.test(run.stdout.slice(before)), 5000),
        "restored instance prints",
      );
    }
    assert.ok(pids.every(isAlive), `all three alive: ${pids}`);
    for (const run of [first, second, third]) await run.stop();
    assert.deepEqual(
      readReports(reportFile)
        .map((r) => r.mode)
        .sort(),
      ["cold", "warm", "warm"],
    );
    assert.ok(
      pids.every((pid) => !isAlive(pid)),
      "SIGTERM to warmstart stopped every instance",
    );
  });

  test("exit codes propagate, cold and warm; SIGTERM stops the app", async () => {
    const { cacheDir, reportFile } = newCache();
    const port = await freePort();
    const args = runArgs(
      cacheDir,
      reportFile,
      [`http://127.0.0.1:${port}/`],
      ["node", fixture("ticker-server.cjs")],
    );
    const env = { PORT: String(port) };

    const cold = new WarmstartRun(args, env);
    await cold.waitFor(/ready pid=/);
    await waitForEntry(cacheDir);
    await getJson(`http://127.0.0.1:${port}/exit/3`).catch(() => undefined);
    assert.deepEqual(await cold.exited, { code: 3, signal: null });

    const warm = new WarmstartRun(args, env);
    await warm.waitFor(/ready, warm/, "stderr");
    await getJson(`http://127.0.0.1:${port}/exit/3`).catch(() => undefined);
    assert.deepEqual(await warm.exited, { code: 3, signal: null });

    const warmAgain = new WarmstartRun(args, env);
    await warmAgain.waitFor(/ready, warm, pid (\d+)/, "stderr");
    const pid = lastPid(warmAgain);
    // The fixture has no SIGTERM handler: it dies of the signal, so 128 + 15.
    assert.deepEqual(await warmAgain.stop("SIGTERM"), { code: 143, signal: null });
    assert.equal(isAlive(pid), false);
    assert.deepEqual(
      readReports(reportFile).map((r) => [r.mode, r.exitCode]),
      [
        ["cold", 3],
        ["warm", 3],
        ["warm", 143],
      ],
    );
  });

  test("a port taken by another process: the snapshot is kept, the false readiness is named, no snapshot of the cold start", async () => {
    const { cacheDir, reportFile } = newCache();
    const port = await freePort();
    const args = runArgs(cacheDir, reportFile, [`tcp:${port}`], ["node", fixture("ticker-server.cjs")]);
    const first = new WarmstartRun(args, { PORT: String(port) });
    const key = await waitForEntry(cacheDir);
    await first.stop();

    const holder = spawn(process.execPath, [
      "-e",
      `require("node:net").createServer().listen(${port}, "127.0.0.1")`,
    ]);
    try {
      assert.ok(
        await waitUntil(
          () =>
            readFileSync("/proc/net/tcp", "utf8").includes(
              `:${port.toString(16).toUpperCase().padStart(4, "0")} 00000000:0000 0A`,
            ),
          5000,
        ),
      );
      const blocked = new WarmstartRun(args, { PORT: String(port) });
      const exit = await blocked.exited;
      assert.notEqual(exit.code, 0, "the app cannot listen, so it fails");
      assert.match(
        blocked.stderr,
        new RegExp(
          `warning: port ${port} is held by pid ${holder.pid} \\(node\\), where the snapshot listens: kept the snapshot, starting cold`,
        ),
      );
      assert.match(
        blocked.stderr,
        new RegExp(
          `warning: port ${port} answered the readiness probe, but the app does not listen on it: another process holds it, so the app may not be ready; no snapshot taken`,
        ),
      );
      assert.deepEqual(listEntries(cacheDir), [key]);
    } finally {
      holder.kill("SIGKILL");
    }
    await new Promise((resolve) => holder.once("exit", resolve));
    const next = new WarmstartRun(args, { PORT: String(port) });
    await next.waitFor(/ready, warm, pid/, "stderr");
    await next.stop();
  });

  test("a truncated or corrupted image: warning, cold start, new snapshot, request answered", async () => {
    for (const damage of ["truncate pages", "corrupt metadata"] as const) {
      const { cacheDir, reportFile } = newCache();
      const port = await freePort();
      const args = runArgs(cacheDir, reportFile, [`tcp:${port}`], ["node", fixture("ticker-server.cjs")]);
      const env = { PORT: String(port) };
      const cold = new WarmstartRun(args, env);
      await cold.waitFor(/ready pid=/);
      const key = await waitForEntry(cacheDir);
      await cold.stop();
      const images = join(cacheDir, STORE_DIR, key, "images");
      const files = readdirSync(images);
      if (damage === "truncate pages") {
        const pages = files.find((name) => /^pages-\d+\.img$/.test(name));
        assert.ok(pages);
        truncateSync(join(images, pages), 4096);
      } else {
        const core = files.find((name) => /^core-\d+\.img$/.test(name));
        assert.ok(core);
        writeFileSync(join(images, core), "garbage", { flag: "r+" });
      }
      const next = new WarmstartRun(args, env);
      await next.waitFor(/ready pid=/);
      const answer = await getJson(`http://127.0.0.1:${port}/`);
      assert.equal(typeof answer.bootId, "string");
      assert.match(
        next.stderr,
        /warning: cache entry is damaged: .*images.*(has \d+ bytes|does not match its sha256)/,
      );
      await waitForEntry(cacheDir);
      await waitUntil(() => /snapshot saved/.test(next.stderr), 30_000);
      await next.stop();
      const report = lastReport(reportFile);
      assert.equal(report.mode, "cold");
      assert.equal(report.fallbackReason, "entry-corrupt");
      assert.equal(report.checkpoint, "saved");
      // Under the same base key (the second half of an entry's key); its first half names the
      // inputs this start was seen reading, which need not be the very same set.
      assert.deepEqual(
        listEntries(cacheDir).map((name) => name.slice(32)),
        [key.slice(32)],
        "a fresh snapshot replaced the damaged one",
      );
    }
  });

  test("readiness timeout: the app is stopped, no entry, the message names the probe", async () => {
    const { cacheDir, reportFile } = newCache();
    const port = await freePort();
    const run = new WarmstartRun(
      runArgs(
        cacheDir,
        reportFile,
        [`tcp:${port}`],
        ["node", fixture("never-ready.cjs")],
        ["--ready-timeout", "1.5"],
      ),
    );
    const [, pid] = await run.waitFor(/waiting for readiness \(pid (\d+)\)/, "stderr");
    const exit = await run.exited;
    assert.equal(exit.code, 1);
    assert.match(
      run.stderr,
      new RegExp(
        `error: The app was not ready after 1.5 s: tcp:localhost:${port} \\(last try: connection refused\\) never passed`,
      ),
    );
    assert.equal(isAlive(Number(pid)), false);
    assert.deepEqual(listEntries(cacheDir), []);
  });

  test("an app that dies before it is ready: its exit code, its last lines, no entry", async () => {
    const { cacheDir, reportFile } = newCache();
    const run = new WarmstartRun(
      runArgs(cacheDir, reportFile, ["tcp:1"], ["node", fixture("dies-early.cjs")]),
    );
    const exit = await run.exited;
    assert.equal(exit.code, 4);
    assert.match(run.stderr, /error: The app exited with code 4 before it was ready\./);
    // Said once, as the app said it: the error does not repeat the app's output.
    assert.equal(run.stderr.match(/fatal: config key 'db.url' is missing/g)?.length, 1);
    assert.deepEqual(listEntries(cacheDir), []);
  });

  test("kill -9 of warmstart during the dump leaves no entry a later launch would restore", async () => {
    const { cacheDir, reportFile } = newCache();
    const port = await freePort();
    // A big heap makes the dump take long enough to be killed in the middle of it.
    const args = runArgs(cacheDir, reportFile, [`tcp:${port}`], ["node", fixture("ticker-server.cjs")]);
    const env = { PORT: String(port), NODE_OPTIONS: "--max-old-space-size=1024", BALLAST_MB: "150" };
    const run = new WarmstartRun(args, env);
    await run.waitFor(/checkpointing/, "stderr");
    run.child.kill("SIGKILL");
    await run.exited;
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.deepEqual(listEntries(cacheDir), []);
    const next = new WarmstartRun(args, { PORT: String(port) });
    // warmstart's own "ready", not the app's line: a SIGTERM before warmstart's probe has seen
    // the port ends the launch before it is ready, and such a launch writes no report.
    await next.waitFor(/ready, (cold|warm)/, "stderr");
    await next.stop();
    const report = lastReport(reportFile);
    assert.equal(report.mode, "cold");
    assert.equal(report.fallbackReason, null);
  });
});

/** The ticker fixture with `ballastMb` of ballast, snapshotted by a cold `run --lazy`. */
async function snapshotForLazyRestores(ballastMb: number) {
  const { cacheDir, reportFile } = newCache();
  const port = await freePort();
  const args = runArgs(
    cacheDir,
    reportFile,
    [`tcp:${port}`],
    ["node", fixture("ticker-server.cjs")],
    ["--lazy"],
  );
  const env = { PORT: String(port), BALLAST_MB: String(ballastMb) };
  const cold = new WarmstartRun(args, env);
  await cold.waitFor(/snapshot saved/, "stderr");
  const coldAnswer = await getJson(`http://127.0.0.1:${port}/`);
  await cold.stop();
  return { cacheDir, port, args, env, coldAnswer };
}

describe("warmstart run: lazy restore", () => {
  test("--lazy restores the state, output flows, the exit code propagates, no daemon is left", async () => {
    const { cacheDir, port, args, env, coldAnswer } = await snapshotForLazyRestores(32);

    const warm = new WarmstartRun(args, env);
    await warm.waitFor(/ready, warm, pid/, "stderr");
    const warmAnswer = await getJson(`http://127.0.0.1:${port}/`);
    assert.equal(warmAnswer.bootId, coldAnswer.bootId);
    await warm.waitFor(new RegExp(`^tick ${Number(warmAnswer.ticks) + 2}$`, "m"));
    await getJson(`http://127.0.0.1:${port}/exit/3`).catch(() => undefined);
    assert.deepEqual(await warm.exited, { code: 3, signal: null });
    const isDaemonGone = () => !execFileSync("ps", ["-eo", "args"], { encoding: "utf8" }).includes(cacheDir);
    assert.ok(await waitUntil(isDaemonGone, 5000), "criu lazy-pages exited with the app");
  });

  test("a lazy restore learns the pages the app touches first; the next one reads them up front, intact", async () => {
    const { cacheDir, port, args, env, coldAnswer } = await snapshotForLazyRestores(16);
    const [key = ""] = listEntries(cacheDir);
    const entryDir = join(cacheDir, STORE_DIR, key);
    const dumpedPid = (JSON.parse(readFileSync(join(entryDir, "manifest.json"), "utf8")) as { pid: number })
      .pid;

    // The first lazy restore: its daemon logs the faults, warmstart keeps them once it is done
    // (the pages the app touched before the daemon's background copy reached them).
    const learning = new WarmstartRun(args, env);
    await learning.waitFor(/ready, warm, pid/, "stderr");
    assert.match(learning.stderr, /lazily, learning which pages the app touches first/);
    const hotPagesFile = join(entryDir, "hot-pages.json");
    assert.ok(await waitUntil(() => existsSync(hotPagesFile), 15_000), "no hot pages were kept");
    await learning.stop();
    const learned = JSON.parse(readFileSync(hotPagesFile, "utf8")) as {
      processes: Record<string, { eagerPages: number }>;
    };
    const learnedPages = learned.processes[String(dumpedPid)]?.eagerPages ?? 0;
    assert.ok(learnedPages > 0, "no page of the app's was learned");
    const hotPagemap = join(entryDir, `hot-pagemap-${dumpedPid}.img`);
    assert.equal(statSync(hotPagemap).mode & 0o777, 0o600);
    assert.equal(statSync(hotPagesFile).mode & 0o777, 0o600);

    // The next lazy restore has CRIU read them into place first (a pagemap of its own, the
    // entry's pages image): the same app, every page of its memory as it was.
    const warm = new WarmstartRun(args, env);
    await warm.waitFor(/ready, warm, pid/, "stderr");
    const eagerPages = Number(/lazily, (\d+) pages read up front/.exec(warm.stderr)?.[1]);
    assert.equal(eagerPages, learnedPages, "the restore did not stage the hot pagemap");
    assert.equal((await getJson(`http://127.0.0.1:${port}/`)).bootId, coldAnswer.bootId);
    assert.deepEqual(await getJson(`http://127.0.0.1:${port}/ballast`), { pages: 16 * 256, isIntact: true });
    await warm.stop();
    assert.deepEqual(listEntries(cacheDir), [key], "the entry was not kept as it was");
  });
});

describe("warmstart run: never slower than cold", () => {
  test("an entry whose warm start was not faster launches cold, says so once, keeps the entry", async () => {
    const { cacheDir, reportFile } = newCache();
    const args = runArgs(cacheDir, reportFile, ["log:^ready pid="], ["node", fixture("ticker-server.cjs")]);
    const first = new WarmstartRun(args, { PORT: "0" });
    const key = await waitForEntry(cacheDir);
    await first.stop();
    // As recordHit writes it after a warm launch that took longer than the cold one.
    writeFileSync(
      join(cacheDir, STORE_DIR, key, "stats.json"),
      JSON.stringify({
        lastUsedAt: new Date().toISOString(),
        hits: 2,
        warmReadyMs: 3000,
        bestWarmReadyMs: 2000,
        coldReadyMs: 400,
        // Far slower than any cold launch of the fixture: the cold launches the rule makes
        // are cold samples too, and must not outweigh these.
        warmSamplesMs: [3000, 2000, 2500],
      }),
      { mode: 0o600 },
    );
    const second = new WarmstartRun(args, { PORT: "0" });
    await second.waitFor(/ready, cold, pid/, "stderr");
    await second.stop();
    assert.match(
      second.stderr,
      /warning: a warm start of this app was not faster \(median warm 2500 ms, cold 400 ms\): starting it cold/,
    );
    const third = new WarmstartRun(args, { PORT: "0" });
    await third.waitFor(/ready, cold, pid/, "stderr");
    await third.stop();
    assert.doesNotMatch(third.stderr, /warning/, "said once");
    assert.deepEqual(listEntries(cacheDir), [key], "the entry stays; no new dump replaced it");
    assert.deepEqual(
      readReports(reportFile).map((r) => [r.mode, r.fallbackReason, r.checkpoint]),
      [
        ["cold", null, "saved"],
        ["cold", "warm-not-faster", "skipped"],
        ["cold", "warm-not-faster", "skipped"],
      ],
    );
  });
});

describe("warmstart run: connections open at dump time", () => {
  test("a client connected through the dump keeps its connection to the cold app; the restore serves", async () => {
    const { cacheDir, reportFile } = newCache();
    const port = await freePort();
    const args = runArgs(cacheDir, reportFile, [`tcp:${port}`], ["node", fixture("ticker-server.cjs")]);
    const env = { PORT: String(port) };
    const cold = new WarmstartRun(args, env);
    await cold.waitFor(/ready, cold, pid/, "stderr");
    // A keep-alive client, connected before the dump and through it.
    const client = connect({ host: "127.0.0.1", port });
    const answers: string[] = [];
    client.on("data", (chunk) => answers.push(chunk.toString()));
    const ask = () => client.write(`GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n`);
    await new Promise((resolve) => client.once("connect", resolve));
    ask();
    assert.ok(await waitUntil(() => answers.length === 1, 5000), "no answer before the dump");
    await cold.waitFor(/snapshot saved/, "stderr", 60_000);
    ask();
    assert.ok(
      await waitUntil(() => answers.length === 2, 5000),
      "the connection made before the dump stopped working",
    );
    client.destroy();
    await cold.stop();

    const warm = new WarmstartRun(args, env);
    await warm.waitFor(/ready, warm, pid/, "stderr");
    const answer = await getJson(`http://127.0.0.1:${port}/`);
    assert.equal(typeof answer.bootId, "string");
    await warm.stop();
    assert.equal(lastReport(reportFile).mode, "warm");
  });
});

describe("warmstart run: the shell in between", () => {
  test("runs none of the user's shell setup, cold or warm, and the app gets BASH_ENV and SHLVL as given", async () => {
    const { cacheDir, reportFile } = newCache();
    const port = await freePort();
    // Debian's bash reads ~/.bashrc when its stdin is a socket and SHLVL is unset (as under
    // systemd), and every non-interactive bash reads $BASH_ENV.
    const home = join(cacheDir, "home");
    const sourced = join(cacheDir, "sourced.log");
    mkdirSync(home);
    writeFileSync(join(home, ".bashrc"), `echo bashrc >> ${sourced}; echo from-bashrc\n`);
    writeFileSync(join(cacheDir, "bash-env.sh"), `echo BASH_ENV >> ${sourced}; echo from-bash-env\n`);
    const env = { PORT: String(port), HOME: home, SHLVL: undefined, BASH_ENV: join(cacheDir, "bash-env.sh") };
    const args = runArgs(cacheDir, reportFile, [`tcp:${port}`], ["node", fixture("ticker-server.cjs")]);

    for (const mode of ["cold", "warm"]) {
      const run = new WarmstartRun(args, env);
      await run.waitFor(new RegExp(`ready, ${mode}, pid`), "stderr");
      const answer = await getJson(`http://127.0.0.1:${port}/`);
      assert.deepEqual(answer.shellEnv, { BASH_ENV: join(cacheDir, "bash-env.sh"), SHLVL: null });
      if (mode === "cold") await waitForEntry(cacheDir);
      await run.stop();
      assert.doesNotMatch(run.stdout, /from-/, `${mode}: shell setup wrote into the app's output`);
      assert.equal(
        existsSync(sourced),
        false,
        `${mode}: ${existsSync(sourced) ? readFileSync(sourced, "utf8") : ""}`,
      );
    }
  });

  test("leaves nothing of its own in the app's tree, cold or warm: the snapshot holds the app alone", async () => {
    // The wrapper's process substitutions exit at once: one that bash had not reaped when it
    // exec'd the app would stay a zombie child of the app, in the snapshot, and CRIU restores
    // a zombie as a process (3-7 ms of CPU each before the restore returns).
    const { cacheDir, reportFile } = newCache();
    const port = await freePort();
    const args = runArgs(cacheDir, reportFile, [`tcp:${port}`], ["node", fixture("ticker-server.cjs")]);
    for (const mode of ["cold", "warm"]) {
      const run = new WarmstartRun(args, { PORT: String(port) });
      const [, pid] = await run.waitFor(new RegExp(`ready, ${mode}, pid (\\d+)`), "stderr");
      if (mode === "cold") await waitForEntry(cacheDir);
      const children = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim();
      const described = children
        .split(" ")
        .filter(Boolean)
        .map((child) => readFileSync(`/proc/${child}/stat`, "utf8").trim());
      await run.stop();
      assert.deepEqual(described, [], `${mode}: the app has children it never made`);
    }
  });
});

describe("warmstart run: the restore chain", () => {
  /** The command names of the restored app's parent (the namespace's reaper) and grandparent. */
  function ancestorsOf(pid: number): string[] {
    const parentOf = (child: number) =>
      Number(/^PPid:\s*(\d+)$/m.exec(readFileSync(`/proc/${child}/status`, "utf8"))?.[1]);
    const commOf = (of: number) => readFileSync(`/proc/${of}/comm`, "utf8").trim();
    const parent = parentOf(pid);
    return [commOf(parent), commOf(parentOf(parent))];
  }

  test("restores through the native program when it was built, through util-linux and perl when not", async () => {
    const program = join(ROOT, "dist", RESTORE_CHAIN_PROGRAM);
    assert.ok(existsSync(program), `${program} was not built (npm run build needs a C compiler)`);
    const { cacheDir, reportFile } = newCache();
    const port = await freePort();
    const args = runArgs(cacheDir, reportFile, [`tcp:${port}`], ["node", fixture("ticker-server.cjs")]);
    const cold = new WarmstartRun(args, { PORT: String(port) });
    await cold.waitFor(/snapshot saved/, "stderr");
    await cold.stop();
    const aside = `${program}.aside`;
    for (const chain of ["native", "util-linux"]) {
      if (chain === "util-linux") renameSync(program, aside);
      try {
        const warm = new WarmstartRun(args, { PORT: String(port) });
        const [, pid] = await warm.waitFor(/ready, warm, pid (\d+)/, "stderr");
        const ancestors = ancestorsOf(Number(pid));
        const answer = await getJson(`http://127.0.0.1:${port}/`);
        await warm.stop();
        assert.deepEqual(
          ancestors,
          chain === "native" ? ["restore-chain", "restore-chain"] : ["perl", "unshare"],
          `${chain}: the reaper and the namespace's parent`,
        );
        assert.equal(typeof answer, "object", `${chain}: the restored app answers`);
      } finally {
        if (chain === "util-linux") renameSync(aside, program);
      }
    }
    assert.deepEqual(
      readReports(reportFile).map((report) => report.mode),
      ["cold", "warm", "warm"],
    );
  });
});

describe("warmstart run: lifetime", () => {
  test("kill -9 of warmstart takes the app with it, cold and warm", async () => {
    const { cacheDir, reportFile } = newCache();
    const args = runArgs(cacheDir, reportFile, ["log:^ready pid="], ["node", fixture("ticker-server.cjs")]);
    const cold = new WarmstartRun(args, { PORT: "0" });
    const [, coldPid] = await cold.waitFor(/ready, cold, pid (\d+)/, "stderr");
    await waitForEntry(cacheDir);
    cold.child.kill("SIGKILL");
    await cold.exited;
    assert.ok(
      await waitUntil(() => !isAlive(Number(coldPid)), 5000),
      "the cold app did not outlive warmstart",
    );

    const warm = new WarmstartRun(args, { PORT: "0" });
    const [, warmPid] = await warm.waitFor(/ready, warm, pid (\d+)/, "stderr");
    warm.child.kill("SIGKILL");
    await warm.exited;
    assert.ok(
      await waitUntil(() => !isAlive(Number(warmPid)), 5000),
      "the restored app did not outlive warmstart",
    );
  });

  test("SIGTERM while a snapshot is being restored stops warmstart and the restored app", async () => {
    const { cacheDir, reportFile } = newCache();
    const port = await freePort();
    const args = runArgs(cacheDir, reportFile, [`tcp:${port}`], ["node", fixture("ticker-server.cjs")]);
    const cold = new WarmstartRun(args, { PORT: String(port), BALLAST_MB: "64" });
    await cold.waitFor(/snapshot saved/, "stderr");
    await cold.stop();
    for (let attempt = 0; attempt < 3; attempt++) {
      const warm = new WarmstartRun(args, { PORT: String(port), BALLAST_MB: "64" });
      await warm.waitFor(/restoring the snapshot/, "stderr");
      warm.child.kill("SIGTERM");
      const exited = await Promise.race([
        warm.exited,
        new Promise((resolve) => setTimeout(resolve, 15_000, "stuck")),
      ]);
      assert.notEqual(exited, "stuck", `warmstart did not exit after SIGTERM:\n${warm.stderr}`);
      assert.equal((exited as { code: number }).code, 143);
      const isAppGone = await waitUntil(
        () =>
          !execFileSync("ps", ["-eo", "args"], { encoding: "utf8" }).includes(fixture("ticker-server.cjs")),
        5000,
      );
      assert.ok(isAppGone, `the restored app went with it: ${warm.stderr}`);
    }
  });

  test("SIGKILL of warmstart as the restore starts leaves no restored app behind", async () => {
    // The parent-death signals of the restore chain leave gaps (the chain killed between its
    // fork and its child's own prctl, which the restore chain's program checks for and
    // unshare does not); the reaper closes them all by watching warmstart's channel.
    const { cacheDir, reportFile } = newCache();
    const port = await freePort();
    const marker = `ticker-server.cjs ${port}`;
    const args = runArgs(
      cacheDir,
      reportFile,
      [`tcp:${port}`],
      ["node", fixture("ticker-server.cjs"), String(port)],
    );
    const cold = new WarmstartRun(args, { PORT: String(port) });
    await cold.waitFor(/snapshot saved/, "stderr");
    await cold.stop();
    const isAppRunning = () => execFileSync("ps", ["-eo", "args"], { encoding: "utf8" }).includes(marker);
    for (const delayMs of [0, 1, 2, 3, 5, 8, 12, 16, 20, 25]) {
      const warm = new WarmstartRun(args, { PORT: String(port) });
      await warm.waitFor(/restoring the snapshot/, "stderr");
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      warm.child.kill("SIGKILL");
      await warm.exited;
      assert.ok(
        await waitUntil(() => !isAppRunning(), 5000),
        `a restored app outlived warmstart killed ${delayMs} ms into the restore:\n${warm.stderr}`,
      );
    }
  });

  test("--detach returns once ready and snapshotted; the app keeps running and printing", async () => {
    const { cacheDir, reportFile } = newCache();
    const port = await freePort();
    const outFile = join(cacheDir, "detached.out");
    const detached = async () => {
      const out = openSync(outFile, "a");
      const child = spawn(
        process.execPath,
        [
          CLI,
          ...runArgs(
            cacheDir,
            reportFile,
            [`tcp:${port}`],
            ["node", fixture("ticker-server.cjs")],
            ["--detach"],
          ),
        ],
        {
          env: { ...process.env, PORT: String(port) },
          stdio: ["ignore", out, out],
        },
      );
      const code = await new Promise((resolve) => child.once("exit", resolve));
      closeSync(out);
      assert.equal(code, 0);
      return lastReport(reportFile);
    };
    const cold = await detached();
    assert.equal(cold.mode, "cold");
    assert.equal(cold.checkpoint, "saved", "a detached cold launch waits for its snapshot");
    assert.ok(isAlive(cold.pid));
    const ticksBefore = (readFileSync(outFile, "utf8").match(/^tick/gm) ?? []).length;
    assert.ok(
      await waitUntil(
        () => (readFileSync(outFile, "utf8").match(/^tick/gm) ?? []).length > ticksBefore + 2,
        5000,
      ),
    );
    signalProcess(cold.pid, "SIGKILL");
    await waitUntil(() => !isAlive(cold.pid), 5000);

    const printedBefore = readFileSync(outFile, "utf8");
    const warm = await detached();
    assert.equal(warm.mode, "warm");
    assert.ok(isAlive(warm.pid));
    // The restored copy prints on, after what is there: appended, not written over it.
    assert.ok(
      await waitUntil(
        () => (readFileSync(outFile, "utf8").slice(printedBefore.length).match(/^tick/gm) ?? []).length > 2,
        5000,
      ),
      "the restored copy's output goes on after the file's end",
    );
    assert.ok(
      readFileSync(outFile, "utf8").startsWith(printedBefore),
      "the restored copy wrote over the file",
    );
    const answer = await getJson(`http://127.0.0.1:${port}/`);
    assert.equal(typeof answer.bootId, "string");
    signalProcess(warm.pid, "SIGKILL");
    await waitUntil(() => !isAlive(warm.pid), 5000);
  });
});

function lastPid(run: WarmstartRun): number {
  const matches = [...run.stderr.matchAll(/ready, warm, pid (\d+)/g)];
  return Number(matches.at(-1)?.[1]);
}
