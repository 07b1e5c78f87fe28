// Issue 13's acceptance: `warmstart serve` with real CRIU, through the real CLI.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { once } from "node:events";
import { chmodSync, existsSync, readdirSync, readFileSync, truncateSync, writeFileSync } from "node:fs";
import { Agent, request } from "node:http";
import { createServer } from "node:net";
import { join } from "node:path";
import { describe, test } from "node:test";
import {
  CLI,
  fixture,
  freePort,
  isAlive,
  listEntries,
  makeTempDir,
  newCache,
  STORE_DIR,
  signalProcess,
  useIntegrationRig,
  WarmstartRun,
  waitUntil,
} from "./rig.js";

useIntegrationRig();

const APP = ["node", fixture("serve-app.cjs")];

interface Answer {
  readonly bootId: string;
  readonly copy: string;
  readonly random: number;
  /** When the app's restore hook last ran (Date.now()), null before any restore. */
  readonly restoredAt: number | null;
  /** How many requests the app's handler has seen, this one included. */
  readonly requests: number;
}

/** One request on its own connection; rejects on a refused or reset connection. */
function get(port: number, path = "/", timeoutMs = 60_000): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: "127.0.0.1", port, path, agent: false, headers: { connection: "close" } },
      (res) => {
        let data = "";
        res.on("data", (chunk) => {
          data += chunk;
        });
        res.on("end", () => {
          if (res.statusCode !== 200) return reject(new Error(`status ${res.statusCode}: ${data}`));
          resolve(JSON.parse(data) as Answer);
        });
      },
    );
    req.on("error", reject);
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer on ${path} within ${timeoutMs} ms`)));
    req.end();
  });
}

function getText(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    request(url, { agent: false }, (res) => {
      let data = "";
      res.on("data", (chunk) => {
        data += chunk;
      });
      res.on("end", () => resolve(data));
    })
      .on("error", reject)
      .end();
  });
}

async function getTicks(port: number): Promise<{ ticks: number }> {
  return JSON.parse(await getText(`http://127.0.0.1:${port}/`)) as { ticks: number };
}

/** `warmstart run` takes the snapshot serve restores (same command, same environment). */
async function takeSnapshot(cacheDir: string, port: number): Promise<string> {
  const run = new WarmstartRun(
    ["run", "-v", "--cache-dir", cacheDir, "--ready", `tcp:127.0.0.1:${port}`, "--", ...APP],
    { PORT: String(port) },
  );
  await run.waitFor(/snapshot saved/, "stderr", 60_000);
  const answer = await get(port);
  await run.stop();
  return answer.bootId;
}

function serveArgs(cacheDir: string, port: number | undefined, extra: readonly string[] = []): string[] {
  const listen = port === undefined ? [] : ["--listen", `127.0.0.1:${port}`];
  return ["serve", "-v", "--cache-dir", cacheDir, ...listen, ...extra, "--", ...APP];
}

function startServe(cacheDir: string, port: number, extra: readonly string[] = [], env = {}): WarmstartRun {
  return new WarmstartRun(serveArgs(cacheDir, port, extra), { PORT: String(port), ...env });
}

/** The host PIDs serve reported serving, in order. */
function servingPids(run: WarmstartRun): number[] {
  return [...run.stderr.matchAll(/instance pid (\d+) serving/g)].map((match) => Number(match[1]));
}

/**
 * The PIDs of the instances serve has reported serving, once there are `count`. serve prints the
 * line as it hands the port over, so a client can have its answer before the line arrives.
 */
async function waitForServing(run: WarmstartRun, count: number, timeoutMs = 30_000): Promise<number[]> {
  const lines = Array.from({ length: count }, () => "instance pid \\d+ serving").join("[\\s\\S]*");
  await run.waitFor(new RegExp(lines), "stderr", timeoutMs);
  return servingPids(run);
}

/** Processes running the fixture app (a restored copy keeps its command line). */
function appProcesses(): string[] {
  return execFileSync("ps", ["-eo", "pid,args"], { encoding: "utf8" })
    .split("\n")
    .filter(
      (line) => line.includes("serve-app.cjs") && !line.includes("warmstart") && !line.includes("cli.cjs"),
    );
}

/** A snapshot, serve on it, and one connection served: an instance runs. */
async function serveOneInstance(): Promise<{ port: number; serve: WarmstartRun }> {
  const { cacheDir } = newCache();
  const port = await freePort();
  await takeSnapshot(cacheDir, port);
  const serve = startServe(cacheDir, port);
  await serve.waitFor(/serving on/, "stderr");
  await get(port);
  await waitForServing(serve, 1);
  return { port, serve };
}

/** Size and resident part of a process's file-backed mappings (/proc/<pid>/smaps). */
function mappedFileMemory(pid: number): { sizeKiB: number; rssKiB: number } {
  let isFile = false;
  let sizeKiB = 0;
  let rssKiB = 0;
  for (const line of readFileSync(`/proc/${pid}/smaps`, "utf8").split("\n")) {
    const mapping = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \d+\s*(.*)$/.exec(line);
    if (mapping) isFile = (mapping[1] ?? "").startsWith("/");
    const field = /^(Size|Rss):\s+(\d+) kB/.exec(line);
    if (!isFile || !field) continue;
    if (field[1] === "Size") sizeKiB += Number(field[2]);
    else rssKiB += Number(field[2]);
  }
  return { sizeKiB, rssKiB };
}

async function stopServe(run: WarmstartRun): Promise<void> {
  const exit = await run.stop("SIGTERM");
  assert.deepEqual(exit, { code: 0, signal: null }, `serve did not drain cleanly:\n${run.stderr}`);
}

describe("warmstart serve", () => {
  test("a port another process listens on without SO_REUSEPORT is refused, naming that process", async () => {
    const port = await freePort();
    const holder = createServer().listen(port, "127.0.0.1");
    await once(holder, "listening");
    try {
      const result = spawnSync(
        process.execPath,
        [CLI, "serve", "--listen", `127.0.0.1:${port}`, "--", "node", "x"],
        {
          encoding: "utf8",
        },
      );
      assert.equal(result.status, 2, result.stderr);
      assert.equal(
        result.stderr,
        `warmstart: error: Cannot listen on 127.0.0.1:${port}: Address already in use.\n` +
          `  hint: port ${port} is held by pid ${process.pid} (node) without SO_REUSEPORT (an app started without serve?); stop it, or give serve another --listen\n`,
      );
    } finally {
      holder.close();
    }
  });

  test("the first connection restores and is answered; idle stops the instance; the next connection restores again", async () => {
    const { cacheDir } = newCache();
    const port = await freePort();
    const bootId = await takeSnapshot(cacheDir, port);
    const metricsPort = await freePort();
    const serve = startServe(cacheDir, port, ["--idle", "2s", "--metrics", String(metricsPort)]);
    await serve.waitFor(/metrics on http/, "stderr");
    assert.equal(appProcesses().length, 0, "an instance runs before any connection");

    const first = await get(port);
    assert.equal(first.bootId, bootId, "the answer came from the snapshot's state");
    const [pid] = await serve.waitFor(/instance pid (\d+) serving \(restored/, "stderr");
    const firstPid = Number(pid?.match(/\d+/)?.[0]);
    const ls = execFileSync(process.execPath, [CLI, "ls", "--cache-dir", cacheDir], { encoding: "utf8" });
    assert.match(
      ls,
      new RegExp(
        `^SERVE PID.*\\n *${serve.child.pid} +127\\.0\\.0\\.1:${port} +node \\S*serve-app\\.cjs .* 1 \\(pid ${firstPid}\\)`,
        "m",
      ),
    );
    const metrics = await getText(`http://127.0.0.1:${metricsPort}/metrics`);
    assert.match(metrics, /^warmstart_serve_instances 1$/m);
    assert.match(metrics, /^warmstart_serve_restores_total 1$/m);
    assert.match(metrics, /^warmstart_serve_restore_latency_seconds_count 1$/m);
    await serve.waitFor(new RegExp(`instance pid ${firstPid} stopped \\(idle\\)`), "stderr", 30_000);
    assert.match(await getText(`http://127.0.0.1:${metricsPort}/metrics`), /^warmstart_serve_instances 0$/m);
    assert.equal(isAlive(firstPid), false, "the idle instance is still running");
    assert.deepEqual(appProcesses(), [], "a process of the app was left after the idle stop");

    const second = await get(port);
    assert.equal(second.bootId, bootId);
    assert.equal((await waitForServing(serve, 2)).length, 2);
    assert.match(
      serve.stderr,
      /instance pid \d+ serving \(restored[\s\S]*instance pid \d+ serving \(restored/,
    );
    await stopServe(serve);
    assert.deepEqual(appProcesses(), []);
  });

  test("with no snapshot yet, the spare's cold start and the first connection's share one snapshot", async () => {
    const { cacheDir } = newCache();
    const port = await freePort();
    const serve = startServe(cacheDir, port, ["--spare"]);
    await serve.waitFor(/serving on/, "stderr");
    // At once: the spare is starting cold, and this connection needs a cold start too.
    const answer = await get(port);
    assert.ok(answer.bootId, "no answer");
    await serve.waitFor(/spare pid \d+ restored and stopped/, "stderr", 60_000);
    assert.doesNotMatch(serve.stderr, /error:|snapshot skipped|lost-race/, serve.stderr);
    assert.equal((serve.stderr.match(/snapshot saved/g) ?? []).length, 1, serve.stderr);
    await stopServe(serve);
  });

  test("an invalid snapshot starts cold, and the connections waiting meanwhile are answered", async () => {
    const { cacheDir } = newCache();
    const port = await freePort();
    await takeSnapshot(cacheDir, port);
    const [key = ""] = listEntries(cacheDir);
    const images = join(cacheDir, STORE_DIR, key, "images");
    const metadata = readdirSync(images).find((name) => name.startsWith("core-"));
    assert.ok(metadata, "no core image in the snapshot");
    truncateSync(join(images, metadata), 10);

    const serve = startServe(cacheDir, port);
    await serve.waitFor(/serving on/, "stderr");
    const answers = await Promise.all(Array.from({ length: 10 }, () => get(port)));
    assert.equal(answers.length, 10);
    assert.match(serve.stderr, /cache entry is damaged/);
    // Said once the instance is adopted, which can come after its first answers.
    await serve.waitFor(/serving \(cold-then-restored/, "stderr");
    await stopServe(serve);
  });

  test("a failed restore falls back to a cold start, and the waiting connections are answered", async () => {
    const { cacheDir } = newCache();
    const port = await freePort();
    await takeSnapshot(cacheDir, port);
    const serve = startServe(cacheDir, port, [], { WARMSTART_CRIU: criuFailingFirstRestore() });
    await serve.waitFor(/serving on/, "stderr");
    const answers = await Promise.all(Array.from({ length: 10 }, () => get(port)));
    assert.equal(answers.length, 10);
    assert.match(serve.stderr, /restore failed: .*restore refused/);
    // Said once the instance is adopted, which can come after its first answers.
    await serve.waitFor(/serving \(cold-then-restored/, "stderr");
    await stopServe(serve);
  });

  test("--spare keeps a restored copy stopped and resumes it for the first connection", async () => {
    const { cacheDir } = newCache();
    const port = await freePort();
    const bootId = await takeSnapshot(cacheDir, port);
    const serve = startServe(cacheDir, port, ["--spare", "--idle", "1s"]);
    const [line] = await serve.waitFor(/spare pid (\d+) restored and stopped/, "stderr", 60_000);
    const sparePid = Number(line?.match(/\d+/)?.[0]);
    // Reseeded as soon as it was restored, its restore hooks left for its resume.
    assert.match(serve.stderr, new RegExp(`left stopped \\(pid ${sparePid}, reseeded in [\\d.]+ ms\\)`));
    assert.match(
      readFileSync(`/proc/${sparePid}/status`, "utf8"),
      /^State:\s+T/m,
      "the spare is not stopped",
    );
    // While it waits, serve faults in the files it maps (its executable and libraries), so
    // that its resume does not: their pages are in its page tables before it runs a line.
    await serve.waitFor(new RegExp(`spare pid ${sparePid}: its mapped files faulted in`), "stderr");
    const mapped = mappedFileMemory(sparePid);
    assert.ok(
      mapped.rssKiB >= 0.9 * mapped.sizeKiB,
      `${mapped.rssKiB} KiB of the spare's ${mapped.sizeKiB} KiB of file mappings are mapped in`,
    );
    await new Promise((resolve) => setTimeout(resolve, 500));
    const connectedAt = Date.now();
    const answer = await get(port);
    assert.equal(answer.bootId, bootId);
    assert.ok(Number(answer.restoredAt) >= connectedAt, "the restore hook ran before the spare was wanted");
    // The runtime ran Node's HTTP server code before the dump, never the app's handler.
    assert.equal(answer.requests, 1, "the app's handler saw a request before this one");
    await serve.waitFor(new RegExp(`instance pid ${sparePid} serving \\(resumed`), "stderr");
    assert.doesNotMatch(readFileSync(`/proc/${sparePid}/status`, "utf8"), /^State:\s+T/m);
    // The next spare, once this one is idle and stopped: a copy of its own, reseeded too.
    await serve.waitFor(new RegExp(`instance pid ${sparePid} stopped \\(idle\\)`), "stderr", 30_000);
    while (existsSync(`/proc/${sparePid}`)) await new Promise((resolve) => setTimeout(resolve, 50));
    await serve.waitFor(
      new RegExp(`spare pid (?!${sparePid}\\b)\\d+ restored and stopped`),
      "stderr",
      60_000,
    );
    const next = await get(port);
    const pids = await waitForServing(serve, 2);
    assert.equal(pids.length, 2);
    assert.notEqual(pids[1], sparePid);
    assert.notEqual(next.random, answer.random, "two spares of one snapshot drew the same Math.random");
    await stopServe(serve);
  });

  test("a spare's wait for its connection is not counted as its launch's time (the never-slower rule reads it)", async () => {
    const { cacheDir } = newCache();
    const port = await freePort();
    await takeSnapshot(cacheDir, port);
    const [key] = listEntries(cacheDir);
    const statsPath = join(cacheDir, STORE_DIR, key ?? "", "stats.json");
    const serve = startServe(cacheDir, port, ["--spare"]);
    await serve.waitFor(/spare pid \d+ restored and stopped/, "stderr", 60_000);
    const waitMs = 4_000;
    await new Promise((resolve) => setTimeout(resolve, waitMs));
    await get(port);
    await serve.waitFor(/serving \(resumed/, "stderr");
    await stopServe(serve);
    const stats = JSON.parse(readFileSync(statsPath, "utf8")) as { warmSamplesMs: number[] };
    const recorded = stats.warmSamplesMs.at(-1) ?? Number.NaN;
    // Counted with the wait, three such launches made `run` start this app cold ("a warm
    // start of this app was not faster").
    assert.ok(recorded < waitMs, `the resumed spare recorded ${recorded} ms, its ${waitMs} ms wait included`);
  });
  test("--max-instances 2 serves two copies at once when connections queue", async () => {
    const { cacheDir } = newCache();
    const port = await freePort();
    await takeSnapshot(cacheDir, port);
    const serve = startServe(cacheDir, port, ["--max-instances", "2"]);
    await serve.waitFor(/serving on/, "stderr");
    await get(port);
    // The first copy blocks: connections queue on it, and serve restores a second. They are
    // made once the block began: made before, the app accepts them with the blocking one.
    const marker = join(makeTempDir("warmstart-serve-block-"), "blocking");
    const blocked = get(port, `/block?ms=6000&marker=${encodeURIComponent(marker)}`);
    assert.ok(
      await waitUntil(() => existsSync(marker), 30_000),
      "the blocking request never reached the app",
    );
    const queued = Array.from({ length: 4 }, () => get(port));
    const pids = await waitForServing(serve, 2);
    assert.equal(pids.length, 2);
    assert.ok(pids.every(isAlive), "both copies run at once");
    const later = await Promise.all(Array.from({ length: 12 }, () => get(port)));
    const copies = new Set([...later, await blocked, ...(await Promise.all(queued))].map((a) => a.copy));
    assert.equal(copies.size, 2, `answers came from ${copies.size} copy: ${[...copies]}`);
    await stopServe(serve);
  });

  test("socket activation: serve takes its listening socket from LISTEN_FDS", async () => {
    const { cacheDir } = newCache();
    const port = await freePort();
    // systemd-socket-activate passes the environment it is told to, as a unit's Environment=
    // does: the app's key differs from a snapshot taken here, so serve takes its own.
    const serve = new WarmstartRun(serveArgs(cacheDir, undefined), {}, socketActivator(port));
    // It starts serve on the first connection, as systemd does: that connection waits.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const first = await get(port);
    assert.match(serve.stderr, /serving on 127\.0\.0\.1:\d+ \(sockets from systemd\)/);
    // Said once the instance is adopted, which can come after its first answers.
    await serve.waitFor(/serving \(cold-then-restored/, "stderr");
    const second = await get(port);
    assert.equal(second.bootId, first.bootId, "the restored instance answers both");
    await stopServe(serve);
  });

  test("a keep-alive connection keeps the instance up while it carries requests, not once it is quiet", async () => {
    const { cacheDir } = newCache();
    const port = await freePort();
    await takeSnapshot(cacheDir, port);
    const serve = startServe(cacheDir, port, ["--idle", "2s"]);
    await serve.waitFor(/serving on/, "stderr");
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const sockets = new Set<unknown>();
      const ask = () =>
        new Promise<void>((resolve, reject) => {
          const req = request({ host: "127.0.0.1", port, path: "/", agent }, (res) => {
            sockets.add(res.socket);
            res.resume();
            res.on("end", resolve);
          });
          req.on("error", reject);
          req.end();
        });
      await ask();
      const [pid = 0] = await waitForServing(serve, 1);
      // Three times the idle time, a request every 400 ms on the one connection: not idle.
      for (const started = Date.now(); Date.now() - started < 6000; ) {
        await ask();
        await new Promise((resolve) => setTimeout(resolve, 400));
      }
      assert.equal(sockets.size, 1, "the requests did not share one connection");
      assert.doesNotMatch(serve.stderr, /stopped \(idle\)/, "stopped while its connection carried requests");
      assert.ok(isAlive(pid));
      // The connection stays open and carries nothing: idle.
      await serve.waitFor(new RegExp(`instance pid ${pid} stopped \\(idle\\)`), "stderr", 30_000);
    } finally {
      agent.destroy();
    }
    await stopServe(serve);
  });

  test("a crashed instance is restored again on the next connection", async () => {
    const { port, serve } = await serveOneInstance();
    const [crashed = 0] = servingPids(serve);
    signalProcess(crashed, "SIGKILL");
    await serve.waitFor(new RegExp(`instance pid ${crashed} exited with code 137`), "stderr");
    await get(port);
    assert.equal((await waitForServing(serve, 2)).length, 2, "no new instance after the crash");
    await stopServe(serve);
  });

  test("--keep-state checkpoints the idle instance and restores what it had, not the snapshot", async () => {
    const { cacheDir } = newCache();
    const port = await freePort();
    const ticker = ["node", fixture("ticker-server.cjs")];
    const run = new WarmstartRun(
      ["run", "--cache-dir", cacheDir, "--ready", `tcp:127.0.0.1:${port}`, "--", ...ticker],
      { PORT: String(port), TICK_MS: "50" },
    );
    await run.waitFor(/snapshot saved/, "stderr", 60_000);
    await run.stop();
    const serve = new WarmstartRun(
      [
        "serve",
        "--cache-dir",
        cacheDir,
        "--listen",
        `127.0.0.1:${port}`,
        "--idle",
        "2s",
        "--keep-state",
        "--",
        ...ticker,
      ],
      { PORT: String(port), TICK_MS: "50" },
    );
    await serve.waitFor(/serving on/, "stderr");
    const restored = Number((await getTicks(port)).ticks);
    await serve.waitFor(/stopped \(kept-state\)/, "stderr", 30_000);
    const kept = Number((await getTicks(port)).ticks);
    await serve.waitFor(/serving \(kept-state/, "stderr");
    // 2 s of idleness at 20 ticks a second went into the kept state.
    assert.ok(
      kept >= restored + 30,
      `ticks ${restored} then ${kept}: the snapshot was restored, not the kept state`,
    );
    await stopServe(serve);
  });

  test("SIGTERM drains: a request in flight is answered, the instance stops, serve exits 0", async () => {
    const { port, serve } = await serveOneInstance();
    const [pid = 0] = servingPids(serve);
    assert.ok(pid > 1, `no instance pid in:\n${serve.stderr}`);
    const slow = get(port, "/slow?ms=2000");
    await new Promise((resolve) => setTimeout(resolve, 300));
    const exited = serve.stop("SIGTERM");
    const answer = await slow;
    assert.equal(answer.bootId.length > 0, true, "the request in flight was not answered");
    assert.deepEqual(await exited, { code: 0, signal: null });
    assert.match(serve.stderr, /draining/);
    assert.equal(isAlive(pid), false, "the instance outlived serve");
    assert.deepEqual(appProcesses(), []);
  });
});

/** A criu whose first restore fails (and the real one otherwise): a restore that breaks. */
function criuFailingFirstRestore(): string {
  const dir = makeTempDir("warmstart-fake-criu-");
  const path = join(dir, "criu");
  const real = execFileSync("sh", ["-c", "command -v criu"], {
    encoding: "utf8",
    env: { ...process.env, PATH: `/usr/local/sbin:${process.env.PATH}` },
  }).trim();
  const marker = join(dir, "failed-once");
  writeFileSync(
    path,
    `#!/bin/sh\nif [ "$1" = restore ] && [ ! -e ${marker} ]; then : > ${marker}; echo "Error (fake): restore refused" >&2; exit 1; fi\nexec ${real} "$@"\n`,
  );
  chmodSync(path, 0o755);
  return path;
}

/**
 * systemd's socket activation without systemd as PID 1: systemd-socket-activate (systemd's
 * own tool) listens, and on the first connection execs serve with the socket as fd 3 and
 * LISTEN_FDS/LISTEN_PID set. Where it is missing, python3 does the same: bind, dup to fd 3,
 * set the variables, exec.
 */
function socketActivator(port: number): string[] {
  const env = { PORT: String(port), PATH: process.env.PATH ?? "/usr/bin:/bin" };
  if (existsSync("/usr/bin/systemd-socket-activate")) {
    const passed = Object.entries(env).flatMap(([name, value]) => ["-E", `${name}=${value}`]);
    return ["/usr/bin/systemd-socket-activate", "-l", `127.0.0.1:${port}`, ...passed];
  }
  const script = [
    "import os, socket, sys",
    "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)",
    `s.bind(("127.0.0.1", ${port})); s.listen(128)`,
    "os.dup2(s.fileno(), 3); os.set_inheritable(3, True)",
    `os.environ.clear(); os.environ.update(${JSON.stringify(env)})`,
    "os.environ.update(LISTEN_FDS='1', LISTEN_PID=str(os.getpid()))",
    "os.execvp(sys.argv[1], sys.argv[1:])",
  ].join("\n");
  return ["python3", "-c", script];
}
