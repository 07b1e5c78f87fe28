import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { criuCpuinfoCheck } from "../exec/command-lines.js";
import { describeExit, runToCompletion } from "../exec/owned-process.js";
import { type HostFacts, RESTORE_FEATURES } from "./host-facts.js";

export type CompatibilityOutcome =
  | { readonly isCompatible: true }
  | {
      readonly isCompatible: false;
      readonly reason: "host-incompatible";
      readonly differences: readonly string[];
    };

/**
 * Can a snapshot taken on `snapshotHost` be restored here? Each difference that would make the
 * restore fail, or the restored app misbehave, is named ("cpu flag avx512f missing"). The
 * kernel release is not compared: what the restore needs from the kernel is a set of
 * features, checked one by one, and CRIU carries the vDSO across kernels itself.
 */
export async function checkHostCompatibility(
  snapshotHost: HostFacts,
  thisHost: HostFacts,
  options: { readonly criuPath: string; readonly cpuinfoImage: Buffer | undefined },
): Promise<CompatibilityOutcome> {
  const differences = compareHostFacts(snapshotHost, thisHost);
  if (options.cpuinfoImage && snapshotHost.arch === thisHost.arch) {
    const verdict = await runCpuinfoCheck(options.criuPath, options.cpuinfoImage);
    if (verdict) differences.push(`criu cpuinfo check: ${verdict}`);
  }
  return differences.length === 0
    ? { isCompatible: true }
    : { isCompatible: false, reason: "host-incompatible", differences };
}

/** The comparisons that need no CRIU, in words; empty when compatible. */
export function compareHostFacts(snapshotHost: HostFacts, thisHost: HostFacts): string[] {
  const differences: string[] = [];
  if (snapshotHost.arch !== thisHost.arch) {
    differences.push(`architecture ${snapshotHost.arch} != ${thisHost.arch}`);
    return differences;
  }
  const here = new Set(thisHost.cpuFlags);
  const missingFlags = snapshotHost.cpuFlags.filter((flag) => !here.has(flag));
  if (missingFlags.length > 0) differences.push(`cpu flags missing here: ${missingFlags.join(" ")}`);
  for (const feature of RESTORE_FEATURES) {
    if (!thisHost.criuFeatures.includes(feature)) differences.push(`kernel feature ${feature} missing here`);
  }
  // CRIU reads images of its own version and older ones; a newer CRIU's images may not parse.
  if (compareVersions(snapshotHost.criuVersion, thisHost.criuVersion) > 0) {
    differences.push(
      `CRIU ${thisHost.criuVersion} here is older than the dump's ${snapshotHost.criuVersion}`,
    );
  }
  // The app sized its thread pools and heap for its host: fewer CPUs or less memory here
  // could starve it; more is only unused.
  if (thisHost.cpuCount < snapshotHost.cpuCount) {
    differences.push(`${thisHost.cpuCount} CPUs here, the app was sized for ${snapshotHost.cpuCount}`);
  }
  const limitHere = thisHost.memoryLimitBytes ?? Number.POSITIVE_INFINITY;
  const limitThere = snapshotHost.memoryLimitBytes ?? Number.POSITIVE_INFINITY;
  if (limitHere < limitThere) {
    const there = snapshotHost.memoryLimitBytes === null ? "no limit" : `${limitThere} bytes`;
    differences.push(`memory limit ${limitHere} bytes here, the app was sized for ${there}`);
  }
  return differences;
}

function compareVersions(a: string, b: string): number {
  const pa = a.split(".").map(Number);
  const pb = b.split(".").map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const diff = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (diff !== 0) return Math.sign(diff);
  }
  return 0;
}

/** CRIU's own verdict on the dump host's CPU image against this CPU (its default checks:
 * the FPU/xsave layout a restore must rebuild). Undefined when it passes. */
async function runCpuinfoCheck(criuPath: string, cpuinfoImage: Buffer): Promise<string | undefined> {
  const dir = mkdtempSync(join(tmpdir(), "warmstart-cpuinfo-"));
  try {
    writeFileSync(join(dir, "cpuinfo.img"), cpuinfoImage, { mode: 0o600 });
    const check = await runToCompletion(criuCpuinfoCheck(criuPath, dir, join(dir, "check.log")), {
      timeoutMs: 30_000,
    });
    if (check.code === 0) return undefined;
    throw new Error(describeExit(check));
  } catch {
    let log = "";
    try {
      log = readFileSync(join(dir, "check.log"), "utf8");
    } catch {
      // No log: CRIU did not start.
    }
    const line = log.split("\n").find((text) => /Error/.test(text));
    return line?.trim() ?? "the CPU does not match the dump host's";
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
