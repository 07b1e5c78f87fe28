import { mkdtempSync, rmSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { summarizeCriuErrors } from "../criu/criu-log.js";
import { launch } from "../launch/launch.js";
import type { FallbackReason } from "../launch/launch-events.js";
import type { DoctorCheck } from "./doctor-checks.js";

// A child that listens on a loopback port and keeps writing to its stdout pipe: the two
// things a restore must bring back (DESIGN.md: a restored pipe without a reader loses logs).
const PROBE_APP = `
const server = require("node:net").createServer((s) => {
  s.on("error", () => {});
  s.end("pong " + process.pid + "\\n");
});
server.listen(Number(process.env.PROBE_PORT), "127.0.0.1");
let n = 0;
setInterval(() => console.log("tick " + ++n), 20);
`;

const NAME = "checkpoint/restore probe";

/**
 * Runs the real launch path on a tiny app: cold start, `criu dump`, then a restore in a new
 * PID namespace, and checks that the restored app answers on its port and that its output
 * still arrives.
 */
export async function runFunctionalProbe(env: NodeJS.ProcessEnv): Promise<DoctorCheck> {
  const cacheDir = mkdtempSync(join(tmpdir(), "warmstart-doctor-"));
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      lines.push(...String(chunk).split("\n").filter(Boolean));
      done();
    },
  });
  const fallbacks: string[] = [];
  const port = await findFreePort();
  const common = {
    command: [process.execPath, "-e", PROBE_APP],
    ready: [`tcp:127.0.0.1:${port}`],
    readyTimeoutMs: 15_000,
    cacheDir,
    env: { ...env, PROBE_PORT: String(port) },
    sinks: { stdout: sink, stderr: sink },
    onEvent: (event: { type: string; reason?: FallbackReason; message?: string }) => {
      if (event.type === "fallback" && event.message) fallbacks.push(event.message);
    },
  };
  const broken = (detail: string): DoctorCheck => ({
    name: NAME,
    status: "broken",
    detail,
    fix: "see the CRIU error above; `warmstart run -v` shows each step",
    isRequired: true,
  });
  try {
    const cold = await launch(common);
    const checkpoint = await cold.checkpoint;
    cold.kill("SIGKILL");
    await cold.exited;
    if (!checkpoint?.saved) {
      const why =
        checkpoint && !checkpoint.saved && "errors" in checkpoint
          ? summarizeCriuErrors(checkpoint.errors)
          : "no checkpoint";
      return broken(`criu dump failed: ${why}`);
    }
    const warm = await launch(common);
    try {
      if (warm.mode !== "warm")
        return broken(`restore failed: ${fallbacks.join("; ") || "fell back to cold"}`);
      const answer = await request(port);
      if (!answer.startsWith("pong ")) return broken(`restored app answered ${JSON.stringify(answer)}`);
      const before = lines.length;
      const hasOutput = await waitFor(
        () => lines.slice(before).some((line) => line.startsWith("tick ")),
        2000,
      );
      if (!hasOutput) return broken("the restored app's output did not arrive (stdio pipes not handed over)");
      return {
        name: NAME,
        status: "ok",
        detail: `dump ${checkpoint.checkpointMs} ms, restore to ready ${warm.readyMs} ms, answers on its port, output flows`,
        isRequired: true,
      };
    } finally {
      warm.kill("SIGKILL");
      await warm.exited;
    }
  } catch (error) {
    return broken((error as Error).message.split("\n")[0] ?? String(error));
  } finally {
    rmSync(cacheDir, { recursive: true, force: true });
  }
}

function findFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function request(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let data = "";
    const socket = connect(port, "127.0.0.1");
    socket.setTimeout(5000, () => socket.destroy(new Error("timed out")));
    socket.on("data", (chunk) => {
      data += chunk;
    });
    socket.on("end", () => resolve(data.trim()));
    socket.on("error", reject);
  });
}

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (condition()) return true;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return condition();
}
