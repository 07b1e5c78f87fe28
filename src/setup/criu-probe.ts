import { spawn } from "node:child_process";
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type CriuVersion,
  isCriuVersionSupported,
  parseCriuVersion,
  readCriuVersionOutput,
} from "../criu/find-criu.js";
import { criuCheck, criuDump } from "../exec/command-lines.js";
import { runTool } from "./run-tool.js";

export type CriuProbeOutcome =
  | { readonly isWorking: true; readonly version: CriuVersion }
  | { readonly isWorking: false; readonly problem: string };

// A process that holds a listening loopback socket: exactly what Debian 13's 4.1.1 fails
// to dump on kernels >= 6.16, and what every service warmstart checkpoints holds.
const LISTENER = 'require("node:net").createServer().listen(0, "127.0.0.1", () => console.log("ok"))';

/**
 * Whether the criu at `path` works here: a supported version, `criu check` passes, and a
 * real dump of a process with a TCP listener succeeds.
 */
export async function probeCriu(path: string): Promise<CriuProbeOutcome> {
  const version = parseCriuVersion(await readCriuVersionOutput(path));
  if (!version) return { isWorking: false, problem: `${path} does not report a version` };
  if (!isCriuVersionSupported(version)) {
    return { isWorking: false, problem: `${path} is version ${version.text}, warmstart needs >= 4.2` };
  }
  const [checkFile, ...checkArgs] = criuCheck(path);
  const check = await runTool(checkFile, checkArgs, { timeoutMs: 60_000 });
  if (check.exitCode !== 0) return { isWorking: false, problem: `'${path} check' fails: ${check.tail}` };
  const problem = await dumpListener(path);
  return problem === undefined ? { isWorking: true, version } : { isWorking: false, problem };
}

async function dumpListener(criu: string): Promise<string | undefined> {
  const dir = mkdtempSync(join(tmpdir(), "warmstart-setup-probe-"));
  // Output to a file, not a pipe: Node's "pipe" is a socketpair, a unix socket to a process
  // outside the dump. Its own session: CRIU refuses a process whose session leader is outside.
  const outputPath = join(dir, "listener.out");
  const output = openSync(outputPath, "w");
  const app = spawn(process.execPath, ["-e", LISTENER], {
    detached: true,
    stdio: ["ignore", output, output],
  });
  closeSync(output);
  try {
    const isListening = await waitFor(
      () => readText(outputPath).includes("ok") || app.exitCode !== null,
      10_000,
    );
    if (!isListening || app.exitCode !== null || app.pid === undefined) {
      return `the probe's listener did not start: ${readText(outputPath).trim()}`;
    }
    const imagesDir = join(dir, "images");
    mkdirSync(imagesDir);
    // warmstart's own dump flags: the probe checks the dump that launches will do.
    const [file, ...args] = criuDump(criu, {
      pid: app.pid,
      imagesDir,
      logFile: "dump.log",
      logLevel: 4,
      leaveRunning: true,
    });
    const dump = await runTool(file, args, { timeoutMs: 60_000 });
    if (dump.exitCode === 0) return undefined;
    const log = readText(join(imagesDir, "dump.log"));
    const firstError =
      log.split("\n").find((line) => /Error/.test(line) && !/RLIMIT_NOFILE/.test(line)) ?? dump.tail;
    return `'${criu} dump' of a process with a TCP socket failed: ${firstError}`;
  } finally {
    app.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
}

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return true;
}

function readText(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}
