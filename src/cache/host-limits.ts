import { readFileSync } from "node:fs";
import { join } from "node:path";

/** The CPUs and memory an app started now would see: it inherits warmstart's affinity and
 * cgroup, cold or restored. */
export interface HostLimits {
  readonly cpusAllowed: number;
  readonly cpuQuota: number | null;
  readonly memoryLimitBytes: number | null;
}

// cgroup v1 writes "no limit" as the largest page-aligned value (9223372036854771712); v2
// writes "max". Anything this large is no limit.
const UNLIMITED_BYTES = 2 ** 62;

export function readHostLimits(cgroupRoot = "/sys/fs/cgroup"): HostLimits {
  const cgroups = readOwnCgroups();
  return {
    cpusAllowed: readCpusAllowed(),
    cpuQuota: readCpuQuota(cgroupRoot, cgroups),
    memoryLimitBytes: readMemoryLimit(cgroupRoot, cgroups),
  };
}

/** The number of CPUs in this process's affinity mask (what sched_getaffinity counts). */
export function readCpusAllowed(): number {
  try {
    const list = /^Cpus_allowed_list:\s*(.*)$/m.exec(readFileSync("/proc/self/status", "utf8"))?.[1] ?? "";
    return countCpuList(list);
  } catch {
    return 0;
  }
}

/** "0-3,8,10-11" -> 7 */
export function countCpuList(list: string): number {
  let count = 0;
  for (const part of list.split(",").filter(Boolean)) {
    const [first = "", last = first] = part.split("-");
    count += Number(last) - Number(first) + 1;
  }
  return count;
}

interface OwnCgroups {
  /** cgroup v2 path ("0::/path"), undefined without the unified hierarchy. */
  readonly unified: string | undefined;
  /** cgroup v1 controller -> path. */
  readonly byController: ReadonlyMap<string, string>;
}

function readOwnCgroups(): OwnCgroups {
  const byController = new Map<string, string>();
  let unified: string | undefined;
  let text = "";
  try {
    text = readFileSync("/proc/self/cgroup", "utf8");
  } catch {
    // No cgroups: no limits to read.
  }
  for (const line of text.split("\n")) {
    const match = /^(\d+):([^:]*):(.*)$/.exec(line);
    if (!match) continue;
    const [, , controllers = "", path = "/"] = match;
    if (controllers === "") unified = path;
    for (const controller of controllers.split(",")) if (controller) byController.set(controller, path);
  }
  return { unified, byController };
}

/** The cgroup directory and each of its parents, own first. */
function ancestry(mount: string, path: string): string[] {
  const parts = path.split("/").filter(Boolean);
  const dirs: string[] = [];
  for (let depth = parts.length; depth >= 0; depth--) dirs.push(join(mount, ...parts.slice(0, depth)));
  return dirs;
}

function readNumbers(path: string): string[] | undefined {
  try {
    return readFileSync(path, "utf8").trim().split(/\s+/);
  } catch {
    return undefined;
  }
}

/** The smallest quota along the hierarchy, in CPUs; v1 controllers win where mounted. */
function readCpuQuota(root: string, cgroups: OwnCgroups): number | null {
  let smallest: number | null = null;
  const consider = (cpus: number) => {
    if (smallest === null || cpus < smallest) smallest = cpus;
  };
  const v1 = cgroups.byController.get("cpu");
  if (v1 !== undefined) {
    for (const dir of ancestry(join(root, "cpu"), v1)) {
      const [quota] = readNumbers(join(dir, "cpu.cfs_quota_us")) ?? [];
      const [period] = readNumbers(join(dir, "cpu.cfs_period_us")) ?? [];
      if (quota !== undefined && period !== undefined && Number(quota) > 0 && Number(period) > 0)
        consider(Number(quota) / Number(period));
    }
  } else if (cgroups.unified !== undefined) {
    for (const dir of ancestry(root, cgroups.unified)) {
      const [quota, period] = readNumbers(join(dir, "cpu.max")) ?? [];
      if (quota !== undefined && quota !== "max" && Number(period) > 0)
        consider(Number(quota) / Number(period));
    }
  }
  return smallest;
}

function readMemoryLimit(root: string, cgroups: OwnCgroups): number | null {
  let smallest: number | null = null;
  const consider = (value: string | undefined) => {
    const bytes = Number(value);
    if (value === undefined || value === "max" || !Number.isFinite(bytes) || bytes >= UNLIMITED_BYTES) return;
    if (smallest === null || bytes < smallest) smallest = bytes;
  };
  const v1 = cgroups.byController.get("memory");
  if (v1 !== undefined) {
    for (const dir of ancestry(join(root, "memory"), v1))
      consider(readNumbers(join(dir, "memory.limit_in_bytes"))?.[0]);
  } else if (cgroups.unified !== undefined) {
    for (const dir of ancestry(root, cgroups.unified)) consider(readNumbers(join(dir, "memory.max"))?.[0]);
  }
  return smallest;
}
