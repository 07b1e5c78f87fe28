// 100 launches of one small app, with warmstart killed (-9) in each phase in turn, while
// other warmstarts remove and prune entries: every launch that was not killed serves, and
// the cache is left with complete entries and nothing of the dead launches.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import {
  fixture,
  freePort,
  getJson,
  newCache,
  runArgs,
  STORE_DIR,
  useIntegrationRig,
  WarmstartRun,
  waitUntil,
} from "./rig.js";

useIntegrationRig();

const LAUNCHES = 100;

/**
 * Where a launch is killed, by the -v line that says the phase began (null: not killed, and
 * its snapshot taken, so that the next launch has one to restore).
 */
const PHASES: readonly { readonly line: RegExp | null; readonly flags: readonly string[] }[] = [
  { line: null, flags: [] },
  { line: /looking up the cache/, flags: [] },
  { line: null, flags: [] },
  { line: /restoring the snapshot/, flags: [] },
  { line: null, flags: [] },
  { line: /re-checking readiness after restore/, flags: [] },
  { line: /waiting for readiness/, flags: ["--cold"] },
  { line: /\] checkpointing$/m, flags: ["--refresh"] },
  { line: /committing the snapshot/, flags: ["--refresh"] },
];

function isPortFree(port: number): boolean {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, "0")} `;
  return !readFileSync("/proc/net/tcp", "utf8")
    .split("\n")
    .some((line) => line.includes(hex) && / 0A /.test(line));
}

describe("chaos", () => {
  test(`${LAUNCHES} launches, warmstart killed in each phase in turn, rm and prune running beside them`, async () => {
    const { cacheDir, reportFile } = newCache();
    const port = await freePort();
    const env = { PORT: String(port), BALLAST_MB: "24", STARTUP_MS: "300" };
    let isChurning = true;
    const churn = (async () => {
      for (let round = 0; isChurning; round++) {
        const command =
          round % 3 === 2 ? ["prune", "--cache-dir", cacheDir] : ["rm", "--all", "--cache-dir", cacheDir];
        const run = new WarmstartRun(command);
        const exit = await run.exited;
        assert.ok(exit.code === 0 || exit.code === 1, `${command[0]} failed: ${run.stderr}`);
        await new Promise((resolve) => setTimeout(resolve, 2000 + (round % 5) * 700));
      }
    })();
    const reached = new Map<string, number>();
    let served = 0;
    try {
      for (let launch = 0; launch < LAUNCHES; launch++) {
        const phase = PHASES[launch % PHASES.length] ?? { line: null, flags: [] };
        const run = new WarmstartRun(
          runArgs(cacheDir, reportFile, [`tcp:${port}`], ["node", fixture("ticker-server.cjs")], phase.flags),
          env,
        );
        // The one that loses the race rejects once warmstart is gone: caught, not left unhandled.
        const seen = (pattern: RegExp, what: "phase" | "ready") =>
          run.waitFor(pattern, "stderr", 60_000).then(
            () => what,
            () => "gone" as const,
          );
        // The phases of the checkpoint come after "ready": for them, the race is with the
        // checkpoint's end instead (a snapshot not taken, say, when rm removed things).
        const isAfterReady = phase.flags.includes("--refresh");
        const outcome = await Promise.race([
          ...(phase.line ? [seen(phase.line, "phase")] : []),
          isAfterReady
            ? seen(/snapshot saved|snapshot skipped|snapshot failed/, "ready")
            : seen(/ready, (cold|warm), pid/, "ready"),
        ]);
        assert.notEqual(outcome, "gone", `launch ${launch} ended by itself:\n${run.stderr}`);
        if (outcome === "phase" && phase.line) {
          run.child.kill("SIGKILL");
          await run.exited;
          reached.set(phase.line.source, (reached.get(phase.line.source) ?? 0) + 1);
        } else {
          // Not killed (or the phase did not come: rm removed the snapshot first): it serves.
          const answer = await getJson(`http://127.0.0.1:${port}/`).catch(async (error: Error) => {
            await new Promise((resolve) => setTimeout(resolve, 1000));
            const ps = execFileSync("ps", ["-eo", "pid,ppid,stat,args"], { encoding: "utf8" });
            throw new Error(
              `launch ${launch} did not serve: ${error.message}\nstderr:\n${run.stderr}\nstdout:\n${run.stdout.slice(-500)}\nexit: ${run.child.exitCode}\n${ps}`,
            );
          });
          assert.equal(typeof answer.bootId, "string", `launch ${launch} did not serve:\n${run.stderr}`);
          served++;
          // A cold launch's snapshot, for the next launches to restore.
          if (/ready, cold/.test(run.stderr)) {
            await run
              .waitFor(/snapshot saved|snapshot skipped|snapshot failed|warning/, "stderr", 60_000)
              .catch(() => undefined);
          }
          const exit = await run.stop();
          assert.equal(exit.code, 143, `launch ${launch}:\n${run.stderr}`);
        }
        assert.ok(await waitUntil(() => isPortFree(port), 10_000), `launch ${launch}: the port stayed taken`);
      }
    } finally {
      isChurning = false;
      await churn;
    }
    // Each phase was reached and killed in at least once.
    for (const phase of PHASES) {
      if (phase.line) assert.ok((reached.get(phase.line.source) ?? 0) > 0, `never killed at ${phase.line}`);
    }
    assert.ok(served >= LAUNCHES / PHASES.length, `only ${served} launches served`);
    const verify = new WarmstartRun(["verify", "--cache-dir", cacheDir]);
    assert.equal(
      (await verify.exited).code,
      0,
      `verify found a bad entry:\n${verify.stdout}${verify.stderr}`,
    );
    const prune = new WarmstartRun(["prune", "--cache-dir", cacheDir]);
    assert.equal((await prune.exited).code, 0, prune.stderr);
    assert.deepEqual(readdirSync(join(cacheDir, "run")), [], "runtime directories were left");
    if (existsSync(join(cacheDir, STORE_DIR))) {
      assert.deepEqual(
        readdirSync(join(cacheDir, STORE_DIR)).filter((name) => name.startsWith(".")),
        [],
        "pending dumps, evicted entries or locks were left",
      );
    }
  });
});
