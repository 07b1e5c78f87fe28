// A real OCI registry for tests: Debian's docker-registry (CNCF Distribution 2.8), installed by
// scripts/install-fleet-deps.sh, on a loopback port with a throwaway storage directory.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface TestRegistry {
  /** host:port */
  readonly address: string;
  readonly storageDir: string;
  readonly stop: () => Promise<void>;
}

export async function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

/** Starts a registry listening on `host` (loopback by default) and waits until it answers /v2/. */
export async function startRegistry(host = "127.0.0.1", wrap: readonly string[] = []): Promise<TestRegistry> {
  const dir = mkdtempSync(join(tmpdir(), "warmstart-registry-"));
  const storageDir = join(dir, "storage");
  const port = await freePort(host === "127.0.0.1" ? host : "127.0.0.1");
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
    try {
      const response = await fetch(`http://${address}/v2/`, wrap.length > 0 ? {} : {});
      if (response.status === 200) break;
    } catch {
      // Not listening yet.
    }
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
