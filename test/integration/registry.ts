// A real OCI registry for tests: Debian's docker-registry (CNCF Distribution 2.8), installed by
// scripts/install-fleet-deps.sh, on a loopback port with a throwaway storage directory.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./rig.js";

export interface TestRegistry {
  /** host:port */
  readonly address: string;
  readonly storageDir: string;
  readonly stop: () => Promise<void>;
}

async function answersFromHere(address: string): Promise<boolean> {
  try {
    return (await fetch(`http://${address}/v2/`)).status === 200;
  } catch {
    return false;
  }
}

/**
 * Starts a registry listening on `host` (loopback by default; `wrap` runs it elsewhere, e.g. in
 * a network namespace, and `answers` then checks it from there) and waits until /v2/ answers.
 */
export async function startRegistry(
  host = "127.0.0.1",
  wrap: readonly string[] = [],
  answers: (address: string) => Promise<boolean> = answersFromHere,
): Promise<TestRegistry> {
  const dir = mkdtempSync(join(tmpdir(), "warmstart-registry-"));
  const storageDir = join(dir, "storage");
  const port = await freePort();
  const config = join(dir, "config.yml");
  writeFileSync(
    config,
    [
      "version: 0.1",
      "log:",
      "  level: error",
      "storage:",
      "  filesystem:",
      `    rootdirectory: ${storageDir}`,
      "  delete:",
      "    enabled: true",
      "http:",
      `  addr: ${host}:${port}`,
      "",
    ].join("\n"),
  );
  const [command, ...args] = [...wrap, "docker-registry", "serve", config];
  const child: ChildProcess = spawn(command as string, args, { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.on("data", (chunk) => {
    stderr += chunk;
  });
  const address = `${host}:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (await answers(address)) break;
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`docker-registry did not start on ${address}: ${stderr}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    address,
    storageDir,
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once("exit", resolve));
        child.kill("SIGTERM");
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
