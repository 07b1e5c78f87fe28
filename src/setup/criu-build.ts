import { createHash } from "node:crypto";
import {
  createReadStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
} from "node:fs";
import { copyFile } from "node:fs/promises";
import { availableParallelism, homedir } from "node:os";
import { join, resolve } from "node:path";
import type { CriuVersion } from "../criu/find-criu.js";
import { WarmstartError } from "../errors.js";
import { runTool } from "./run-tool.js";

export interface CriuBuild {
  /** The criu binary, in the build cache. */
  readonly criuPath: string;
  /** True when a build of the same tarball was already there and nothing was compiled. */
  readonly isReused: boolean;
}

/**
 * Where finished builds are kept, one per source tarball (named by its version and sha256):
 * installing the same source again, into another prefix or after a removal, copies the
 * binary instead of compiling for a minute or two.
 */
export function defaultBuildCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const cacheHome = env.XDG_CACHE_HOME ? resolve(env.XDG_CACHE_HOME) : join(homedir(), ".cache");
  return join(cacheHome, "warmstart-setup");
}

export async function hashFile(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/**
 * Builds `criu` from the tarball (`make criu`: the binary alone, not its docs or libraries),
 * or reuses the build of the same tarball. `isForced` builds again regardless.
 */
export async function buildCriu(options: {
  readonly tarball: string;
  readonly version: CriuVersion;
  readonly buildCacheDir: string;
  readonly isForced: boolean;
  readonly onProgress: (message: string) => void;
}): Promise<CriuBuild> {
  const sha256 = await hashFile(options.tarball);
  const buildDir = join(options.buildCacheDir, `criu-${options.version.text}-${sha256.slice(0, 16)}`);
  const criuPath = join(buildDir, "criu");
  if (!options.isForced && isExecutableFile(criuPath)) {
    options.onProgress(`reusing the build of ${sha256.slice(0, 12)} in ${buildDir}`);
    return { criuPath, isReused: true };
  }
  mkdirSync(options.buildCacheDir, { recursive: true, mode: 0o700 });
  const work = mkdtempSync(join(options.buildCacheDir, ".build-"));
  try {
    const unpacked = await runTool("tar", ["-xf", options.tarball, "-C", work]);
    if (unpacked.exitCode !== 0) throw setupFailed(`could not unpack ${options.tarball}: ${unpacked.tail}`);
    const tree = readdirSync(work).find((name) => existsSync(join(work, name, "Makefile.versions")));
    if (!tree) throw setupFailed(`${options.tarball} has no top directory with Makefile.versions`);
    const jobs = String(availableParallelism());
    options.onProgress(`building CRIU ${options.version.text} (make -j${jobs} criu; a minute or two)`);
    const built = await runTool("make", ["-C", join(work, tree), `-j${jobs}`, "criu"], {
      timeoutMs: 1_800_000,
    });
    if (built.exitCode !== 0) {
      throw setupFailed(`building CRIU ${options.version.text} failed; make's last lines:\n${built.tail}`);
    }
    // Staged beside the final place and renamed: a killed build never looks finished.
    const staged = join(work, "out");
    mkdirSync(staged, { mode: 0o755 });
    await copyFile(join(work, tree, "criu", "criu"), join(staged, "criu"));
    rmSync(buildDir, { recursive: true, force: true });
    renameSync(staged, buildDir);
    return { criuPath, isReused: false };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function isExecutableFile(path: string): boolean {
  try {
    const stat = statSync(path);
    return stat.isFile() && (stat.mode & 0o111) !== 0;
  } catch {
    return false;
  }
}

function setupFailed(message: string): WarmstartError {
  return new WarmstartError("setup-failed", `${message.charAt(0).toUpperCase()}${message.slice(1)}`);
}
