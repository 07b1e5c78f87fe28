import { createHash, randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { release } from "node:os";
import { join } from "node:path";
import { WarmstartError } from "../errors.js";
import { describeUnsafePath } from "./cache-dir.js";
import type { FileHashIndex } from "./file-hash.js";
import { readHostLimits } from "./host-limits.js";
import { hashInputs } from "./input-files.js";
import { type CacheKeyFields, digestEnvironment, IMAGE_FORMAT_VERSION } from "./key.js";

export interface KeyInputs {
  readonly executable: string;
  readonly args: readonly string[];
  readonly cwd: string;
  readonly env: NodeJS.ProcessEnv;
  readonly envIgnore: ReadonlySet<string>;
  readonly inputPatterns: readonly string[];
  readonly inputIgnore: readonly string[];
  readonly criuVersion: string;
  /** The fleet's secret for the environment digests (shared by hosts that share snapshots);
   * default: this cache's own. */
  readonly envSecret?: Buffer;
}

/** Gathers every key field for a launch; file hashes come from the memo where possible. */
export async function collectKeyFields(
  inputs: KeyInputs,
  cacheDir: string,
  hashes: FileHashIndex,
): Promise<CacheKeyFields> {
  return {
    formatVersion: IMAGE_FORMAT_VERSION,
    executableSha256: await hashes.hashFile(inputs.executable),
    executablePath: inputs.executable,
    args: inputs.args,
    cwd: inputs.cwd,
    inputPatterns: inputs.inputPatterns,
    inputs: await hashInputs(inputs.inputPatterns, inputs.cwd, hashes),
    inputIgnore: inputs.inputIgnore,
    env: digestEnvironment(inputs.env, inputs.envSecret ?? readCacheSecret(cacheDir), inputs.envIgnore),
    uid: process.getuid?.() ?? 0,
    gid: process.getgid?.() ?? 0,
    host: {
      kernelRelease: release(),
      cpuFlagsSha256: hashCpuFlags(),
      criuVersion: inputs.criuVersion,
      ...readHostLimits(),
    },
  };
}

/** The key for the environment digests: 32 random bytes, created once per cache (0600). */
function readCacheSecret(cacheDir: string): Buffer {
  const path = join(cacheDir, "key-secret");
  try {
    // Exclusive create: concurrent first launches agree on one secret (a single small write).
    writeFileSync(path, randomBytes(32), { mode: 0o600, flag: "wx" });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
  }
  const unsafe = describeUnsafePath(path, "file", 0o077);
  if (unsafe)
    throw new WarmstartError("cache-refused", `The cache's key secret is not safe to use: ${unsafe}.`);
  const secret = readFileSync(path);
  if (secret.length !== 32) {
    throw new WarmstartError("cache-refused", `The cache's key secret ${path} is damaged.`, {
      hint: `delete ${path}; the next launches will be cold once`,
    });
  }
  return secret;
}

let cpuFlags: string | undefined;

/** sha256 of this CPU's flags, sorted: the key's cpuFlagsSha256. */
export function hashCpuFlags(): string {
  if (cpuFlags === undefined) {
    let flags = "";
    try {
      flags = /^flags\s*:\s*(.*)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "";
    } catch {
      // No /proc/cpuinfo: every launch on this machine shares the empty value.
    }
    cpuFlags = createHash("sha256").update(flags.split(/\s+/).sort().join(" ")).digest("hex");
  }
  return cpuFlags;
}
