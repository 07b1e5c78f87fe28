import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { countCpuList, readHostLimits } from "../../src/cache/host-limits.js";

const root = mkdtempSync(join(tmpdir(), "warmstart-unit-cgroup-"));
after(() => rmSync(root, { recursive: true, force: true }));

describe("host limits", () => {
  test("counts an affinity list", () => {
    assert.equal(countCpuList("0-3,8,10-11"), 7);
    assert.equal(countCpuList("0"), 1);
    assert.equal(countCpuList(""), 0);
  });

  test("the smallest limit of the cgroup and its parents, in whichever hierarchy holds the controller", () => {
    // A copy of this process's own cgroup paths under a fake root, limits chosen by the test.
    const lines = readFileSync("/proc/self/cgroup", "utf8").trim().split("\n");
    const pathOf = (controller: string) =>
      lines.map((line) => line.split(":")).find(([, names]) => names?.split(",").includes(controller))?.[2];
    const unified = lines.map((line) => line.split(":")).find(([, names]) => names === "")?.[2] ?? "/";
    const memory = pathOf("memory");
    const cpu = pathOf("cpu");
    const memoryDir = memory === undefined ? join(root, unified) : join(root, "memory", memory);
    const parentDir = memory === undefined ? root : join(root, "memory");
    mkdirSync(memoryDir, { recursive: true });
    const memoryFile = memory === undefined ? "memory.max" : "memory.limit_in_bytes";
    writeFileSync(join(memoryDir, memoryFile), "9223372036854771712\n");
    writeFileSync(join(parentDir, memoryFile), "536870912\n");
    if (cpu === undefined) {
      mkdirSync(join(root, unified), { recursive: true });
      writeFileSync(join(root, unified, "cpu.max"), "150000 100000\n");
    } else {
      mkdirSync(join(root, "cpu", cpu), { recursive: true });
      writeFileSync(join(root, "cpu", cpu, "cpu.cfs_quota_us"), "150000\n");
      writeFileSync(join(root, "cpu", cpu, "cpu.cfs_period_us"), "100000\n");
    }
    const limits = readHostLimits(root);
    assert.equal(limits.memoryLimitBytes, 536870912);
    assert.equal(limits.cpuQuota, 1.5);
    assert.ok(limits.cpusAllowed >= 1);
  });
});
