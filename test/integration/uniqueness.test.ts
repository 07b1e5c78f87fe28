// Issue 11's acceptance for Node: every restored copy draws its own random values, with no
// change to the app, in every Node process and worker thread, before it serves anything.
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { PROTOCOL_VERSION } from "../../src/runtime/protocol.js";
import {
  fixture,
  freePort,
  getJson,
  newCache,
  readReports,
  runArgs,
  useIntegrationRig,
  WarmstartRun,
  waitForEntry,
} from "./rig.js";

useIntegrationRig();

type Answer = Record<string, unknown>;

/** Every random value of an answer (main thread and worker), by name. */
function randomValues(answer: Answer): Map<string, string> {
  const values = new Map<string, string>();
  for (const [name, value] of Object.entries(answer)) {
    if (name === "pid") continue;
    if (name === "worker" && value && typeof value === "object") {
      for (const [inner, innerValue] of Object.entries(value))
        values.set(`worker.${inner}`, String(innerValue));
    } else {
      values.set(name, String(value));
    }
  }
  return values;
}

/**
 * GETs the URL over and over (a new connection each time) while a launch restores the app,
 * and a few times after it is ready: whatever the restored copy serves first is in here.
 */
async function hammer(url: string, run: WarmstartRun, ready = /ready, warm, pid/): Promise<Answer[]> {
  const answers: Answer[] = [];
  let isReady = false;
  void run.waitFor(ready, "stderr", 60_000).then(
    () => {
      isReady = true;
    },
    () => {
      isReady = true;
    },
  );
  const deadline = Date.now() + 60_000;
  let afterReady = 0;
  while (Date.now() < deadline && afterReady < 5) {
    if (isReady) afterReady++;
    try {
      answers.push(await getJson(url));
    } catch {
      // Not listening yet (CRIU is restoring): try again at once.
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
  }
  return answers;
}

/**
 * The acceptance: a cold launch snapshots the app; the original, which goes on after the dump
 * with the state the snapshot holds, shows what an unreseeded copy would answer first. Then
 * two copies are restored one after the other with a client hammering the port throughout.
 * No value any copy served may equal another copy's or the original's.
 */
async function assertCopiesUnique(
  command: readonly string[],
  extraEnv: NodeJS.ProcessEnv = {},
): Promise<void> {
  const { cacheDir, reportFile } = newCache();
  const port = await freePort();
  const url = `http://127.0.0.1:${port}/`;
  const args = runArgs(cacheDir, reportFile, [`tcp:${port}`], command);
  // A slow start, so that the never-slower rule never starts a copy cold on a busy machine
  // (the hammering client competes with the restore for the CPU).
  const env = { ...extraEnv, PORT: String(port), STARTUP_MS: "3000" };

  const original = new WarmstartRun(args, env);
  await original.waitFor(/ready pid=/);
  await waitForEntry(cacheDir);
  const stale = randomValues(await getJson(url));
  await original.stop();

  const seen = new Map<string, string>();
  for (const copy of ["first copy", "second copy"]) {
    const run = new WarmstartRun(args, env);
    const answers = await hammer(url, run);
    await run.stop();
    assert.ok(answers.length >= 5, `${copy}: answered ${answers.length} times\n${run.stderr}`);
    assert.match(run.stderr, /ready, warm/, `${copy} was not restored:\n${run.stderr}`);
    for (const answer of answers) {
      for (const [name, value] of randomValues(answer)) {
        assert.notEqual(value, stale.get(name), `${copy} served the snapshot's ${name} (${value})`);
        const owner = seen.get(value);
        assert.equal(owner, undefined, `${copy} served ${name} ${value}, already served by the ${owner}`);
        seen.set(value, `${copy}'s ${name}`);
      }
    }
  }
  assert.deepEqual(
    readReports(reportFile).map((report) => report.mode),
    ["cold", "warm", "warm"],
  );
}

describe("restored copies are unique", () => {
  test("two copies of a plain Node server: random bytes, UUIDs, randomInt, Math.random, X25519 keys, in the main thread and a worker", async () => {
    await assertCopiesUnique(["node", fixture("random-server.cjs")]);
  });

  test("the same app started through npm start (npm -> sh -> node)", async () => {
    await assertCopiesUnique(["npm", "--prefix", fixture("npm-app"), "start"]);
  });

  test("the same app started through a shell script", async () => {
    await assertCopiesUnique(["sh", fixture("random-server.sh")]);
  });

  test("the runtime is injected from a copy no other user can change (readable by all as root), is not part of the key, and --no-runtime opts out", async () => {
    const { cacheDir, reportFile } = newCache();
    const env = { PORT: "0", STARTUP_MS: "0" };
    const environOf = async (extra: string[]) => {
      const run = new WarmstartRun(
        runArgs(cacheDir, reportFile, ["log:^ready pid="], ["node", fixture("ticker-server.cjs")], extra),
        env,
      );
      const [, pid] = await run.waitFor(/ready pid=(\d+)/);
      const environ = readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");
      await waitForEntry(cacheDir);
      await run.stop();
      return environ;
    };
    const plain = await environOf(["--no-runtime"]);
    assert.ok(!plain.some((line) => /^(NODE_OPTIONS|WARMSTART_CONTROL)=/.test(line)), plain.join("\n"));
    const injected = await environOf(["--refresh"]);
    const nodeOptions = injected.find((line) => line.startsWith("NODE_OPTIONS="));
    const match = /^NODE_OPTIONS=--require (.*\/runtime\/[0-9a-f]+)\/inject\.cjs$/.exec(nodeOptions ?? "");
    const dir = match?.[1] ?? "";
    // As root: shared, so that an app that drops to another user can still read its preload;
    // otherwise in the cache, private.
    const isRoot = process.getuid?.() === 0;
    assert.ok(
      dir.startsWith(isRoot ? "/var/lib/warmstart/runtime/" : cacheDir),
      `NODE_OPTIONS: ${nodeOptions}`,
    );
    assert.equal(statSync(dir).mode & 0o777, isRoot ? 0o755 : 0o700);
    assert.equal(statSync(dir).uid, process.getuid?.());
    for (const name of readdirSync(dir)) {
      assert.equal(statSync(join(dir, name)).mode & 0o777, isRoot ? 0o644 : 0o600, name);
    }
    assert.ok(injected.includes(`WARMSTART_CONTROL=${PROTOCOL_VERSION}:40:41`));
    // The base keys: one launch saved no snapshot, the other did (its entry key names its inputs).
    const keys = readReports(reportFile).map((report) => report.baseKey);
    assert.equal(keys.length, 2);
    assert.equal(keys[0], keys[1], "the injection is not part of the key");
  });
});

describe("snapshots taken without the runtime", () => {
  test("are not restored by a launch that injects it, which starts cold, says why and snapshots anew", async () => {
    const { cacheDir, reportFile } = newCache();
    const port = await freePort();
    const launch = async (extra: string[]) => {
      const run = new WarmstartRun(
        runArgs(cacheDir, reportFile, [`tcp:${port}`], ["node", fixture("ticker-server.cjs")], extra),
        { PORT: String(port) },
      );
      const [, mode] = await run.waitFor(/ready, (cold|warm)/, "stderr", 60_000);
      if (mode === "cold") await run.waitFor(/snapshot saved/, "stderr", 60_000);
      await run.stop();
      return { mode, stderr: run.stderr };
    };
    assert.equal((await launch(["--no-runtime"])).mode, "cold");
    assert.equal((await launch(["--no-runtime"])).mode, "warm", "--no-runtime restores its own snapshot");
    const wanting = await launch([]);
    assert.equal(wanting.mode, "cold", wanting.stderr);
    assert.match(wanting.stderr, /miss: the snapshot was taken without warmstart's runtime \(--no-runtime\)/);
    const next = await launch([]);
    assert.equal(next.mode, "warm", next.stderr);
    assert.match(next.stderr, /the app's runtime resumed in/, "the copy restored did not reseed");
  });
});

describe("a restored copy's way to its reseed", () => {
  test("runs no function of the runtime for the first time: the dump came after a rehearsal", async () => {
    // V8 compiles a function at its first call: each first call after the verdict would be
    // parsed and compiled in the copy, before it serves (4-5 ms of a tiny server's restore).
    const { cacheDir, reportFile } = newCache();
    const port = await freePort();
    const traced = ["node", "--log-function-events", "--logfile=-", "--no-logfile-per-isolate"];
    const args = runArgs(cacheDir, reportFile, [`tcp:${port}`], [...traced, fixture("ticker-server.cjs")]);
    // V8 writes its log through a buffer: the app exits normally, so that it is flushed.
    const launch = async (mode: "cold" | "warm") => {
      const run = new WarmstartRun(args, { PORT: String(port) });
      await run.waitFor(new RegExp(`ready, ${mode}`), "stderr", 60_000);
      if (mode === "cold") await waitForEntry(cacheDir);
      await getJson(`http://127.0.0.1:${port}/exit/0`).catch(() => undefined);
      assert.deepEqual(await run.exited, { code: 0, signal: null }, run.stderr);
      return run;
    };
    const cold = await launch("cold");
    const warm = await launch("warm");
    assert.match(warm.stderr, /the app's runtime resumed in/);
    const [, scriptId] =
      /^script-details,(\d+),[^,\n]*\/runtime\/[0-9a-f]+\/inject\.cjs,/m.exec(cold.stdout) ?? [];
    assert.ok(scriptId, "V8 logged no script of the runtime: is the trace on?");
    const firstRuns = (run: WarmstartRun) =>
      run.stdout.split("\n").filter((line) => line.startsWith(`function,first-execution,${scriptId},`));
    // What the copy's buffer held at the dump, the original printed too.
    const beforeDump = new Set(firstRuns(cold));
    assert.ok(beforeDump.size > 0, "V8 logged no first call of the runtime's functions in the original");
    const inCopy = firstRuns(warm).filter((line) => !beforeDump.has(line));
    assert.deepEqual(inCopy, [], "functions of the runtime ran for the first time in the copy");
  });
});

describe("a restored copy that cannot reseed", () => {
  for (const where of ["main", "worker"] as const) {
    test(`never serves, and the launch starts cold (the ${where} thread could not reseed)`, async () => {
      const { cacheDir, reportFile } = newCache();
      const port = await freePort();
      const url = `http://127.0.0.1:${port}/`;
      const args = runArgs(
        cacheDir,
        reportFile,
        [`tcp:${port}`],
        ["node", fixture("unreseedable-server.cjs")],
      );
      const env = { PORT: String(port), UNRESEEDABLE: where };
      const original = new WarmstartRun(args, env);
      await original.waitFor(/ready pid=/);
      await waitForEntry(cacheDir);
      // What an unreseeded copy would hand out first: the next UUID of the snapshot's batch.
      const stale = String((await getJson(url)).uuid);
      await original.stop();

      const run = new WarmstartRun(args, env);
      const answers = await hammer(url, run, /ready, (warm|cold), pid/);
      await run.stop();
      assert.match(run.stderr, /could not reseed: .*taken away by the app/, run.stderr);
      for (const answer of answers) assert.notEqual(String(answer.uuid), stale, "an unreseeded copy served");
      assert.deepEqual(
        readReports(reportFile).map((report) => [report.mode, report.fallbackReason]),
        [
          ["cold", null],
          ["cold", "reseed-failed"],
        ],
      );
    });
  }
});

describe("the runtime and apps that switch users", () => {
  test("an app whose start runs Node as another user starts, with the runtime loaded", async () => {
    const { cacheDir, reportFile } = newCache();
    const app =
      "console.log('ready pid=' + process.pid + ' runtime=' + (process.env.NODE_OPTIONS ? 'on' : 'off')); setInterval(() => {}, 1000);";
    const run = new WarmstartRun(
      runArgs(
        cacheDir,
        reportFile,
        ["log:^ready pid="],
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", "node", "-e", app],
      ),
    );
    const [, runtime] = await run.waitFor(/ready pid=\d+ runtime=(\w+)/);
    assert.equal(runtime, "on");
    await run.stop();
  });
});
