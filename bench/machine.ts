// The machine the numbers come from: start-up times depend on the CPU, the kernel, and the
// versions of Node, CRIU and the JVM more than on anything in this repository.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { availableParallelism, cpus, loadavg, release, totalmem } from "node:os";

export interface MachineInfo {
  readonly cpuModel: string;
  readonly nproc: number;
  readonly memoryGiB: number;
  readonly os: string;
  readonly kernel: string;
  readonly node: string;
  readonly criu: string | null;
  readonly java: string | null;
  /** 1-minute load average when the benchmark started: other work on the machine skews every figure. */
  readonly loadAverage: number;
  readonly date: string;
}

export function describeMachine(): MachineInfo {
  return {
    cpuModel: cpus()[0]?.model.trim() ?? "unknown",
    nproc: availableParallelism(),
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    os: readOsName(),
    kernel: release(),
    node: process.version,
    criu: firstMatch(["criu", "--version"], /^Version:\s*(\S+)/m),
    // `java -version` prints to stderr, e.g. openjdk version "17.0.15" 2025-04-15.
    java: firstMatch(["java", "-version"], /^(\S+ version "[^"]+")/m),
    loadAverage: Math.round((loadavg()[0] ?? 0) * 100) / 100,
    date: new Date().toISOString(),
  };
}

function readOsName(): string {
  try {
    return /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(readFileSync("/etc/os-release", "utf8"))?.[1] ?? "Linux";
  } catch {
    return "Linux";
  }
}

function firstMatch(command: readonly string[], pattern: RegExp): string | null {
  const [file, ...args] = command;
  if (!file) return null;
  const result = spawnSync(file, args, { encoding: "utf8", timeout: 10_000 });
  return pattern.exec(`${result.stdout ?? ""}${result.stderr ?? ""}`)?.[1] ?? null;
}
