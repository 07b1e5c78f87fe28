import { createHash } from "node:crypto";
import { chmodSync, copyFileSync, existsSync, mkdirSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { describeUnsafePath, makeDirectories } from "../cache/cache-dir.js";
import type { FileHashIndex } from "../cache/file-hash.js";
import { distPath } from "../dist-paths.js";
import { findKoffiNative, KOFFI_NATIVE_FILE } from "../exec/koffi-native.js";

/** The runtime's files as installed in a cache, where the app's environment points. */
export interface InstalledRuntime {
  readonly dir: string;
  /** For NODE_OPTIONS --require. */
  readonly nodeRequire: string;
  /** For JAVA_TOOL_OPTIONS -javaagent:, when the agent was built (it needs a JDK). */
  readonly javaAgent: string | undefined;
}

export type InstallOutcome =
  | { readonly installed: true; readonly runtime: InstalledRuntime }
  | { readonly installed: false; readonly reason: string };

export const NODE_RUNTIME_FILE = "inject.cjs";
export const JAVA_AGENT_FILE = "warmstart-agent.jar";

/**
 * Where the runtime's copies live. As root, in /var/lib/warmstart/runtime (0755, files 0644,
 * root's): an app that drops to another user (su, setpriv --reuid, a user in the JVM's
 * start script) must still read the file its NODE_OPTIONS names, or Node refuses to start it,
 * and the cache (0700) is closed to it. The runtime is code, not an image: no secret is in it,
 * and nobody but root can write it. The path is the same on every host with the same
 * warmstart, which a snapshot that travels needs. Without root the app runs as this user:
 * the cache holds the copy. WARMSTART_RUNTIME_DIR moves it (tests).
 */
export function runtimeRoot(
  cacheDir: string,
  env: NodeJS.ProcessEnv = process.env,
): { root: string; isShared: boolean } {
  if (env.WARMSTART_RUNTIME_DIR)
    return { root: env.WARMSTART_RUNTIME_DIR, isShared: process.getuid?.() === 0 };
  return process.getuid?.() === 0
    ? { root: "/var/lib/warmstart/runtime", isShared: true }
    : { root: join(cacheDir, "runtime"), isShared: false };
}

/**
 * Copies the runtime into `<root>/<content hash>/` unless it is there. The app's environment
 * (NODE_OPTIONS, JAVA_TOOL_OPTIONS) stays in its snapshot and is inherited by every child it
 * starts later, so it must name files that outlive this warmstart install: an upgrade or a
 * move of warmstart leaves the copy in place, and a new version of the runtime gets a
 * directory of its own. File hashes are memoized (dev, inode, size, mtime), so a launch that
 * finds the copy reads nothing.
 */
export async function installRuntime(cacheDir: string, hashes: FileHashIndex): Promise<InstallOutcome> {
  let sources: Record<string, string>;
  try {
    sources = findRuntimeSources();
  } catch (error) {
    return { installed: false, reason: (error as Error).message };
  }
  const digest = createHash("sha256");
  for (const [name, path] of Object.entries(sources))
    digest.update(`${name}\0${await hashes.hashFile(path)}\0`);
  const { root, isShared } = runtimeRoot(cacheDir);
  const dirMode = isShared ? 0o755 : 0o700;
  const fileMode = isShared ? 0o644 : 0o600;
  const dir = join(root, digest.digest("hex").slice(0, 20));
  const describe = (): InstalledRuntime => ({
    dir,
    nodeRequire: join(dir, NODE_RUNTIME_FILE),
    javaAgent: JAVA_AGENT_FILE in sources ? join(dir, JAVA_AGENT_FILE) : undefined,
  });
  if (!existsSync(dir)) {
    try {
      const failure = makeDirectories(root, dirMode);
      if (failure) throw new Error(failure);
      const staging = `${dir}.tmp-${process.pid}`;
      rmSync(staging, { recursive: true, force: true });
      mkdirSync(staging, { mode: dirMode });
      chmodSync(staging, dirMode);
      for (const [name, path] of Object.entries(sources)) copyFileSync(path, join(staging, name));
      // copyFileSync keeps the source's mode.
      for (const name of Object.keys(sources)) chmodSync(join(staging, name), fileMode);
      try {
        renameSync(staging, dir);
      } catch (error) {
        // A concurrent launch installed the same content first.
        rmSync(staging, { recursive: true, force: true });
        if (!existsSync(dir)) throw error;
      }
    } catch (error) {
      return { installed: false, reason: `cannot install it into ${root}: ${(error as Error).message}` };
    }
  }
  // Never loaded into an app if anyone but its owner could have changed it.
  const unsafe =
    describeUnsafePath(dir, "directory", 0o022) ??
    Object.keys(sources)
      .map((name) => describeUnsafePath(join(dir, name), "file", 0o022))
      .find(Boolean);
  return unsafe ? { installed: false, reason: unsafe } : { installed: true, runtime: describe() };
}

/** Whether a cold start here would have a runtime to inject (its files are built). */
export function hasRuntimeSources(): boolean {
  try {
    findRuntimeSources();
    return true;
  } catch {
    return false;
  }
}

/** The built runtime (dist/runtime/), koffi's native module for this platform, the agent. */
function findRuntimeSources(): Record<string, string> {
  const sources: Record<string, string> = { [NODE_RUNTIME_FILE]: distPath(`runtime/${NODE_RUNTIME_FILE}`) };
  if (!existsSync(sources[NODE_RUNTIME_FILE] ?? ""))
    throw new Error(`${sources[NODE_RUNTIME_FILE]} is missing (run npm run build)`);
  sources[KOFFI_NATIVE_FILE] = findKoffiNative();
  const agent = distPath(`runtime/${JAVA_AGENT_FILE}`);
  if (existsSync(agent)) sources[JAVA_AGENT_FILE] = agent;
  return sources;
}
