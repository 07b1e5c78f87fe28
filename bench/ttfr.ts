// Time to first response (TTFR): from spawning a command to the first 2xx answer from the
// app. The measure users choose warmstart for; used by the demo and the benchmarks.
import { type ChildProcess, type StdioOptions, spawn } from "node:child_process";
import { request } from "node:http";

export interface TtfrRun {
  readonly ttfrMs: number;
  /** The JSON the app answered with. */
  readonly body: Record<string, unknown>;
  /** The spawned process, still running: the caller stops it. */
  readonly child: ChildProcess;
  readonly stderr: () => string;
}

/** How often the app is asked for its first answer: the resolution of every TTFR figure. */
export const POLL_MS = 2;

/** Every process measureTtfr started that has not exited yet, for a harness to kill on the way out. */
export const liveChildren = new Set<ChildProcess>();

export interface TtfrOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  timeoutMs?: number;
  pollMs?: number;
  /** Default: stdin and stdout ignored, stderr kept for error messages. fd 2 must stay a pipe. */
  stdio?: StdioOptions;
  /** performance.now() when the launch began, if a helper was started before this command. */
  startedMs?: number;
}

export async function measureTtfr(
  command: readonly string[],
  url: string,
  options: TtfrOptions = {},
): Promise<TtfrRun> {
  const [file, ...args] = command;
  if (!file) throw new Error("empty command");
  const started = options.startedMs ?? performance.now();
  const child = spawn(file, args, {
    env: options.env ?? process.env,
    ...(options.cwd ? { cwd: options.cwd } : {}),
    stdio: options.stdio ?? ["ignore", "ignore", "pipe"],
  });
  liveChildren.add(child);
  child.once("exit", () => liveChildren.delete(child));
  let stderr = "";
  let spawnError: Error | undefined;
  child.once("error", (error) => {
    spawnError = error;
  });
  child.stderr?.on("data", (chunk) => {
    stderr += chunk;
  });
  const deadline = started + (options.timeoutMs ?? 60_000);
  while (performance.now() < deadline) {
    if (spawnError) throw new Error(`${command.join(" ")} could not start: ${spawnError.message}`);
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(
        `${command.join(" ")} exited with ${child.exitCode ?? child.signalCode} before answering:\n${stderr}`,
      );
    }
    const body = await tryGet(url);
    if (body) return { ttfrMs: performance.now() - started, body, child, stderr: () => stderr };
    await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? POLL_MS));
  }
  child.kill("SIGKILL");
  throw new Error(
    `${command.join(" ")} did not answer ${url} within ${options.timeoutMs ?? 60_000} ms:\n${stderr}`,
  );
}

/** Stops a measured process and waits for it to be gone. */
export async function stop(child: ChildProcess, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((resolve) => child.once("exit", resolve));
  child.kill(signal);
  const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  await gone;
  clearTimeout(timer);
}

function tryGet(url: string): Promise<Record<string, unknown> | undefined> {
  return new Promise((resolve) => {
    // agent: false + Connection: close: a measurement must not leave a connection that a
    // following checkpoint would have to deal with.
    const req = request(url, { agent: false, headers: { connection: "close" } }, (res) => {
      let data = "";
      // A reset mid-answer (an app still coming up) is one failed poll, not a crash.
      res.on("error", () => resolve(undefined));
      res.on("data", (chunk) => {
        data += chunk;
      });
      res.on("end", () => {
        if (!res.statusCode || res.statusCode < 200 || res.statusCode >= 300) return resolve(undefined);
        try {
          resolve(JSON.parse(data) as Record<string, unknown>);
        } catch {
          resolve({ raw: data });
        }
      });
    });
    req.on("error", () => resolve(undefined));
    req.setTimeout(2000, () => req.destroy());
    req.end();
  });
}
