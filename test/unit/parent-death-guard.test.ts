// The guards that tie a command to warmstart's life (src/exec/command-lines.ts), with real
// processes: a stand-in launcher is killed with SIGKILL and nothing it started may stay.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { type CommandLine, dieWithParentAsGroup } from "../../src/exec/command-lines.js";
import { spawnOwned } from "../../src/exec/owned-process.js";
import { waitUntil } from "../integration/rig.js";

/** The PIDs whose command line holds `marker`, and their states (R, S, T, Z...). */
function processesWith(marker: string): Array<{ pid: number; state: string }> {
  const found: Array<{ pid: number; state: string }> = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      if (!readFileSync(`/proc/${name}/cmdline`, "utf8").includes(marker)) continue;
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
      if (state !== "Z") found.push({ pid: Number(name), state });
    } catch {
      // Gone meanwhile.
    }
  }
  return found;
}

/** What CRIU's dump does while it probes the kernel: helpers forked, one stopped by itself. */
function commandWithHelpers(marker: string): CommandLine {
  return [
    "sh",
    "-c",
    `sh -c 'kill -STOP $$' ${marker}-stopped & sh -c 'while :; do sleep 1; done' ${marker}-sleeping & wait`,
    marker,
  ];
}

function killAll(marker: string): void {
  for (const { pid } of processesWith(marker)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // Gone.
    }
  }
}

describe("the parent-death guard of a command with helpers", () => {
  test("a warmstart killed with SIGKILL takes the command and every helper, a stopped one too", async () => {
    const marker = `guard-test-${process.pid}-${Date.now()}`;
    // A launcher that spawns the guarded command as warmstart does, then is killed.
    const launcher = `
      const { dieWithParentAsGroup } = await import(${JSON.stringify(new URL("../../src/exec/command-lines.js", import.meta.url).href)});
      const { spawnOwned } = await import(${JSON.stringify(new URL("../../src/exec/owned-process.js", import.meta.url).href)});
      spawnOwned(dieWithParentAsGroup(${JSON.stringify(commandWithHelpers(marker))}), { isSessionLeader: true });
      setInterval(() => {}, 1000);`;
    const standIn = spawn(process.execPath, ["--input-type=module", "-e", launcher], { stdio: "ignore" });
    try {
      assert.ok(
        await waitUntil(() => processesWith(`${marker}-stopped`).some((p) => p.state === "T"), 10_000),
        "the stopped helper never appeared",
      );
      standIn.kill("SIGKILL");
      assert.ok(
        await waitUntil(() => processesWith(marker).length === 0, 5_000),
        `outlived the launcher: ${JSON.stringify(processesWith(marker))}`,
      );
    } finally {
      standIn.kill("SIGKILL");
      killAll(marker);
    }
  });

  test("SIGTERM to the guard stops the group; an exit code comes through", async () => {
    const marker = `guard-test-${process.pid}-${Date.now()}-term`;
    const owned = spawnOwned(dieWithParentAsGroup(commandWithHelpers(marker)), { isSessionLeader: true });
    try {
      assert.ok(
        await waitUntil(() => processesWith(`${marker}-stopped`).some((p) => p.state === "T"), 10_000),
      );
      const exit = await owned.stop("SIGTERM", 5_000);
      assert.equal(exit.signal, "SIGKILL", "the guard kills its own group, itself included");
      assert.ok(
        await waitUntil(() => processesWith(marker).length === 0, 2_000),
        `outlived the guard: ${JSON.stringify(processesWith(marker))}`,
      );
    } finally {
      killAll(marker);
    }
    const exited = spawnOwned(dieWithParentAsGroup(["sh", "-c", "exit 3"]), { isSessionLeader: true });
    assert.equal((await exited.exited).code, 3);
  });
});
