// Whole-process figures: what a warm launch pays before warmstart does anything of its own.
// `node -e 0` is Node's boot alone; `--version` adds loading the CLI module; importing
// launch.js adds the module graph the `run` command loads on every launch.
import { spawn } from "node:child_process";
import { type Summary, summarize } from "./stats.js";
import { liveChildren } from "./ttfr.js";
import { ROOT } from "./workloads.js";

export interface ProcessFigure {
  readonly name: string;
  readonly command: readonly string[];
  readonly runsMs: readonly number[];
  readonly ms: Summary | null;
  readonly error: string | null;
}

/** Run from the repository root; paths are relative so that the results name no checkout. */
export const PROCESS_COMMANDS: readonly { name: string; command: readonly string[] }[] = [
  { name: "node -e 0", command: ["node", "-e", "0"] },
  { name: "warmstart --version", command: ["node", "dist/bundle/cli.cjs", "--version"] },
  {
    name: "node + import launch.js",
    command: ["node", "--input-type=module", "-e", 'await import("./dist/src/launch/launch.js")'],
  },
];

/** Runs each command `runs` times, interleaved, spawn to exit. */
export async function measureProcesses(runs: number): Promise<ProcessFigure[]> {
  const times = PROCESS_COMMANDS.map(() => [] as number[]);
  const errors: (string | null)[] = PROCESS_COMMANDS.map(() => null);
  for (let run = 0; run < runs; run++) {
    for (const [index, { command }] of PROCESS_COMMANDS.entries()) {
      if (errors[index]) continue;
      try {
        times[index]?.push(await timeToExit(command, 30_000));
      } catch (error) {
        errors[index] = (error as Error).message;
      }
    }
  }
  return PROCESS_COMMANDS.map(({ name, command }, index) => {
    const runsMs = (times[index] ?? []).map((ms) => Math.round(ms * 10) / 10);
    return { name, command, runsMs, ms: summarize(runsMs) ?? null, error: errors[index] ?? null };
  });
}

export function timeToExit(command: readonly string[], timeoutMs: number): Promise<number> {
  const [file, ...args] = command;
  if (!file) return Promise.reject(new Error("empty command"));
  return new Promise((resolve, reject) => {
    const startedMs = performance.now();
    const child = spawn(file, args, { cwd: ROOT, stdio: ["ignore", "ignore", "pipe"] });
    liveChildren.add(child);
    let stderr = "";
    child.stderr?.on("data", (chunk) => {
      stderr += chunk;
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.once("error", reject);
    child.once("exit", (code, signal) => {
      const elapsedMs = performance.now() - startedMs;
      clearTimeout(timer);
      liveChildren.delete(child);
      if (code === 0) resolve(elapsedMs);
      else reject(new Error(`${command.join(" ")} exited with ${code ?? signal}: ${stderr.trim()}`));
    });
  });
}
