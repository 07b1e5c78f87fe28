import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { arch, availableParallelism, release, tmpdir } from "node:os";
import { join } from "node:path";
import { criuCheck, criuCpuinfoDump } from "../exec/command-lines.js";
import { runToCompletion } from "../exec/owned-process.js";

/**
 * What a host offers a restored process: what the snapshot's host had must be here too. Read
 * once per process. Recorded beside every exported or pushed snapshot, and compared by
 * checkHostCompatibility, never by string equality of the whole.
 */
export interface HostFacts {
  /** `uname -r`; informative: the kernel features below decide, not the release string. */
  readonly kernelRelease: string;
  /** Node's names: "x64", "arm64". Images never cross architectures. */
  readonly arch: string;
  /** /proc/cpuinfo's flags, sorted: the restored code may use any one it detected at start. */
  readonly cpuFlags: readonly string[];
  /** The CPUs the app could use when it sized its thread pools. */
  readonly cpuCount: number;
  /** The cgroup's memory.max in bytes, or null when unlimited: heaps are sized from it. */
  readonly memoryLimitBytes: number | null;
  /** The CRIU that wrote (or would restore) the images, "4.2.1". */
  readonly criuVersion: string;
  /** `criu check --feature` names that passed, of those warmstart's restore flags need. */
  readonly criuFeatures: readonly string[];
}

/**
 * The kernel features warmstart's restore needs, as CRIU names them: a new PID namespace
 * whose restored PIDs are chosen (clone3 with set_tid), and a time namespace (CRIU 4.2 puts
 * every restored tree in one, so its monotonic clock continues from the dump's value).
 * uffd-noncoop only serves lazy restores, which fall back to eager ones without it.
 */
export const RESTORE_FEATURES = ["ns_pid", "clone3_set_tid", "timens"] as const;
const OPTIONAL_FEATURES = ["uffd-noncoop"] as const;

/**
 * Test-only: CPU flags this host pretends not to have (comma-separated), to simulate a host
 * that lacks a feature the snapshot's host had. A stored snapshot cannot be edited for that
 * (its digests would break), and no second CPU model is at hand.
 */
export const HIDE_CPU_FLAGS_ENV = "WARMSTART_TEST_HIDE_CPU_FLAGS";

const cached = new Map<string, Promise<HostFacts>>();

export function collectHostFacts(
  criuPath: string,
  criuVersion: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<HostFacts> {
  const memoKey = `${criuPath}\0${env[HIDE_CPU_FLAGS_ENV] ?? ""}`;
  let facts = cached.get(memoKey);
  if (!facts) {
    facts = readHostFacts(criuPath, criuVersion, env);
    cached.set(memoKey, facts);
  }
  return facts;
}

async function readHostFacts(
  criuPath: string,
  criuVersion: string,
  env: NodeJS.ProcessEnv,
): Promise<HostFacts> {
  const hidden = new Set((env[HIDE_CPU_FLAGS_ENV] ?? "").split(",").filter(Boolean));
  const features = await Promise.all(
    [...RESTORE_FEATURES, ...OPTIONAL_FEATURES].map(async (feature) =>
      (await hasCriuFeature(criuPath, feature)) ? feature : undefined,
    ),
  );
  return {
    kernelRelease: release(),
    arch: arch(),
    cpuFlags: readCpuFlags().filter((flag) => !hidden.has(flag)),
    cpuCount: availableParallelism(),
    memoryLimitBytes: readMemoryLimitBytes(),
    criuVersion,
    criuFeatures: features.filter((feature) => feature !== undefined),
  };
}

function readCpuFlags(): string[] {
  try {
    const line = /^flags\s*:\s*(.*)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "";
    return [...new Set(line.split(/\s+/).filter(Boolean))].sort();
  } catch {
    return [];
  }
}

/** cgroup v2: the memory.max of this process's cgroup; null for "max" or no cgroup. */
function readMemoryLimitBytes(): number | null {
  try {
    const group = /^0::(.*)$/m.exec(readFileSync("/proc/self/cgroup", "utf8"))?.[1];
    if (group === undefined) return null;
    const text = readFileSync(join("/sys/fs/cgroup", group, "memory.max"), "utf8").trim();
    return text === "max" ? null : Number(text);
  } catch {
    return null;
  }
}

async function hasCriuFeature(criuPath: string, feature: string): Promise<boolean> {
  const check = await runToCompletion(criuCheck(criuPath, feature), { timeoutMs: 30_000 });
  return check.code === 0;
}

/**
 * CRIU's own description of this CPU (`criu cpuinfo dump`): a small image that
 * `criu cpuinfo check` on another host compares with its CPU. Undefined when CRIU cannot
 * write one (no x86 cpuinfo support on this architecture).
 */
export async function dumpCpuinfoImage(criuPath: string): Promise<Buffer | undefined> {
  const dir = mkdtempSync(join(tmpdir(), "warmstart-cpuinfo-"));
  try {
    const dump = await runToCompletion(criuCpuinfoDump(criuPath, dir), { timeoutMs: 30_000 });
    return dump.code === 0 ? readFileSync(join(dir, "cpuinfo.img")) : undefined;
  } catch {
    return undefined;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
