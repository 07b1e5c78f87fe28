// The example apps under examples/ keep the contract that benchmarks and demos rely on:
// they print the listening line, answer GET / with the documented JSON (the spawned PID, a
// fingerprint that is the same on every run), /healthz and 404, and exit on SIGTERM.
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { request } from "node:http";
import { createServer } from "node:net";
import { after, describe, test } from "node:test";
import { fileURLToPath } from "node:url";

// This file runs as dist/test/integration/examples.test.js.
const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const LISTENING_LINE = /^listening on http:\/\/127\.0\.0\.1:(\d+)$/m;

interface Example {
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  /** Exit code after SIGTERM: Node's handlers exit 0, the JVM exits 128 + 15. */
  readonly sigtermExitCode: number;
  readonly startupTimeoutMs: number;
  /** Why the example cannot run on this machine, or null. */
  /** Run once before the timed starts. */
  readonly build: (() => void) | null;
}

interface Started {
  readonly child: ChildProcess;
  readonly port: number;
  readonly output: () => string;
}

interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

interface Answer {
  readonly status: number;
  readonly body: string;
}

const children = new Set<ChildProcess>();
after(() => {
  for (const child of children) {
    if (isRunning(child)) child.kill("SIGKILL");
  }
});

function isRunning(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => {
        if (typeof address === "object" && address !== null) resolve(address.port);
        else reject(new Error(`no port from ${String(address)}`));
      });
    });
  });
}

/** Spawns the example on a free port and resolves once it printed its listening line. */
async function startExample(example: Example): Promise<Started> {
  const port = await freePort();
  const child = spawn(example.command, example.args, {
    cwd: ROOT,
    env: { ...process.env, PORT: String(port) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.add(child);
  let stdout = "";
  let stderr = "";
  const output = () => `stdout:\n${stdout}\nstderr:\n${stderr}`;
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (chunk: string) => {
    stderr += chunk;
  });

  await new Promise<void>((resolve, reject) => {
    const settle = (error: Error | null) => {
      clearTimeout(timer);
      child.off("error", onError);
      child.off("exit", onExit);
      if (error === null) resolve();
      else reject(error);
    };
    const onError = (error: Error) => settle(error);
    const onExit = (code: number | null, signal: NodeJS.Signals | null) => {
      settle(
        new Error(`${example.name} exited (code ${code}, signal ${signal}) before listening\n${output()}`),
      );
    };
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      settle(
        new Error(`${example.name}: no listening line within ${example.startupTimeoutMs} ms\n${output()}`),
      );
    }, example.startupTimeoutMs);
    child.once("error", onError);
    child.once("exit", onExit);
    // Keeps reading after the line too, so a full pipe never blocks the app.
    child.stdout?.setEncoding("utf8");
    child.stdout?.on("data", (chunk: string) => {
      const hadLine = LISTENING_LINE.test(stdout);
      stdout += chunk;
      const match = LISTENING_LINE.exec(stdout);
      if (hadLine || match === null) return;
      if (Number(match[1]) === port) settle(null);
      else settle(new Error(`${example.name} listens on port ${match[1]}, asked for ${port}`));
    });
  });
  return { child, port, output };
}

function get(port: number, path: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        body += chunk;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.setTimeout(10_000, () =>
      req.destroy(new Error(`GET ${path} on port ${port}: no answer within 10000 ms`)),
    );
    req.on("error", reject);
    req.end();
  });
}

async function stopExample(child: ChildProcess, timeoutMs: number): Promise<Exit> {
  if (!isRunning(child)) return { code: child.exitCode, signal: child.signalCode };
  const exited = new Promise<Exit>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  child.kill("SIGTERM");
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), timeoutMs);
  });
  const outcome = await Promise.race([exited, timedOut]);
  clearTimeout(timer);
  if (outcome === "timeout") {
    child.kill("SIGKILL");
    assert.fail(`still running ${timeoutMs} ms after SIGTERM`);
  }
  return outcome;
}

/** One run: start, check every route and the JSON's shape, stop. Resolves with the fingerprint. */
async function runOnce(example: Example): Promise<string> {
  const { child, port, output } = await startExample(example);
  try {
    const first = await get(port, "/");
    assert.equal(first.status, 200, output());
    const json: unknown = JSON.parse(first.body);
    assert.ok(
      typeof json === "object" && json !== null && !Array.isArray(json),
      `not a JSON object: ${first.body}`,
    );
    const answer = json as Record<string, unknown>;
    assert.deepEqual(Object.keys(answer).sort(), ["fingerprint", "pid", "readyAt", "requests", "startedAt"]);
    assert.equal(answer.pid, child.pid);
    assert.match(String(answer.fingerprint), /^[0-9a-f]{16}$/);
    const { startedAt, readyAt } = answer;
    assert.ok(Number.isSafeInteger(startedAt) && Number.isSafeInteger(readyAt), first.body);
    assert.ok((startedAt as number) <= (readyAt as number), `startedAt after readyAt: ${first.body}`);
    assert.ok((readyAt as number) <= Date.now(), `readyAt in the future: ${first.body}`);
    assert.equal(answer.requests, 1);

    assert.deepEqual(await get(port, "/healthz"), { status: 200, body: "ok" });
    assert.equal((await get(port, "/no-such-path")).status, 404);
    const again = JSON.parse((await get(port, "/")).body) as Record<string, unknown>;
    assert.deepEqual(again, { ...answer, requests: 4 });

    assert.deepEqual(await stopExample(child, 10_000), { code: example.sigtermExitCode, signal: null });
    return String(answer.fingerprint);
  } finally {
    if (isRunning(child)) child.kill("SIGKILL");
  }
}

const jvmDir = `${ROOT}examples/jvm-slow-server`;

const examples: readonly Example[] = [
  {
    name: "tiny-server",
    command: process.execPath,
    args: [`${ROOT}examples/tiny-server/server.js`],
    sigtermExitCode: 0,
    startupTimeoutMs: 15_000,
    build: null,
  },
  {
    name: "node-slow-server",
    command: process.execPath,
    args: [`${ROOT}examples/node-slow-server/server.js`],
    sigtermExitCode: 0,
    startupTimeoutMs: 30_000,
    build: null,
  },
  {
    name: "jvm-slow-server",
    command: "bash",
    args: [`${jvmDir}/run.sh`],
    sigtermExitCode: 143,
    startupTimeoutMs: 60_000,
    build: () => {
      // Does nothing when the class file is newer than the source.
      const result = spawnSync("bash", [`${jvmDir}/build.sh`], { encoding: "utf8", timeout: 120_000 });
      assert.equal(result.status, 0, `build.sh failed:\n${result.stdout}${result.stderr}`);
    },
  },
];

describe("examples", () => {
  for (const example of examples) {
    test(`${example.name} answers its contract, with the same fingerprint on two runs`, {
      timeout: 180_000,
    }, async () => {
      example.build?.();
      const first = await runOnce(example);
      const second = await runOnce(example);
      assert.equal(second, first, "fingerprint differs between two runs");
    });
  }
});
