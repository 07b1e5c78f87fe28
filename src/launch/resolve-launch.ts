import { join } from "node:path";
import { openCacheDir } from "../cache/cache-dir.js";
import { EntryStore } from "../cache/entry-store.js";
import { FileHashIndex } from "../cache/file-hash.js";
import { computeBaseKey } from "../cache/key.js";
import { collectKeyFields } from "../cache/key-fields.js";
import { createRuntimeDir, type RuntimeDir, removeRuntimeDir } from "../cache/runtime-dir.js";
import { type CriuInstall, findCriu } from "../criu/find-criu.js";
import { type Fallback, judgeCriu } from "./decisions.js";
import {
  coldPlanFor,
  type LaunchContext,
  type LaunchState,
  type Session,
  type UsableCache,
} from "./launch-context.js";
import { type ResolvedCommand, resolveCommand } from "./resolve-command.js";

/**
 * The first state: the command, the cache directory, CRIU, the key. A command that cannot be
 * run is the user's error (thrown); anything that only rules out snapshots is a fallback.
 */
export async function resolveLaunch(context: LaunchContext): Promise<LaunchState> {
  const { opts } = context;
  context.step("resolving");
  const command = resolveCommand(opts.command, opts.cwd, opts.env);
  const cacheDir = openCacheDir(opts.cacheDir);
  const hashes = cacheDir.usable ? new FileHashIndex(cacheDir.dir) : undefined;
  const criu = await findCriu(opts.env, hashes);
  const runtime = openRuntimeDir(cacheDir.usable ? cacheDir.dir : undefined);
  const runtimeOwned = context.resources.own("runtime directory", () =>
    removeRuntimeDir(runtime.cacheDir, runtime.dir.path),
  );
  const noCache: Fallback | null =
    judgeCriu(criu) ??
    (!cacheDir.usable
      ? {
          reason: "cache-dir-refused",
          message: `cache directory refused: ${cacheDir.reason}; starting without snapshots`,
        }
      : runtime.failure
        ? { reason: "cache-dir-refused", message: `${runtime.failure}; starting without snapshots` }
        : null);
  const session = (cache: UsableCache | undefined): Session => ({
    command,
    runtime: runtime.dir,
    runtimeOwned,
    cache,
  });
  if (noCache || !criu.found || !hashes || !cacheDir.usable) {
    if (noCache) context.warn(noCache);
    return {
      step: "starting-cold",
      session: session(undefined),
      plan: { fallback: noCache, cacheUse: "unavailable", isSnapshotWanted: false },
    };
  }
  const cache = await computeKey(context, command, cacheDir.dir, hashes, criu.criu);
  if ("reason" in cache) {
    context.warn(cache);
    return {
      step: "starting-cold",
      session: session(undefined),
      plan: { fallback: cache, cacheUse: "unavailable", isSnapshotWanted: false },
    };
  }
  if (opts.isCold || opts.isRefresh) return coldPlanFor(session(cache), null, "bypassed");
  return { step: "looking-up", session: session(cache), cache };
}

/** The key, or why it could not be computed (an input unreadable, the cache's secret damaged). */
async function computeKey(
  context: LaunchContext,
  command: ResolvedCommand,
  cacheDir: string,
  hashes: FileHashIndex,
  criu: CriuInstall,
): Promise<UsableCache | Fallback> {
  const { opts } = context;
  try {
    const fields = await collectKeyFields(
      {
        executable: command.executable,
        args: command.args,
        cwd: opts.cwd,
        env: opts.env,
        envIgnore: opts.envIgnore,
        inputPatterns: opts.inputs,
        inputIgnore: opts.inputIgnore,
        criuVersion: criu.version.text,
        ...(opts.fleet?.fleetSecret ? { envSecret: opts.fleet.fleetSecret } : {}),
      },
      cacheDir,
      hashes,
    );
    // Not awaited: a memo that cannot be written costs the next launch a re-hash, no more.
    void hashes.save();
    return {
      dir: cacheDir,
      store: new EntryStore(cacheDir),
      // The base key: entries under it carry their host part and discovered inputs.
      key: computeBaseKey(fields),
      fields,
      hashes,
      criuPath: criu.path,
      criu: { path: criu.path, version: criu.version.text },
      logsDir: join(cacheDir, "logs"),
    };
  } catch (error) {
    return {
      reason: "key-failed",
      message: `cannot compute the cache key: ${(error as Error).message}; starting without snapshots`,
    };
  }
}

/** The runtime directory in the cache, or in the system's temporary directory when the cache
 * cannot hold one (then no snapshot is taken either: a dump would not fit there). */
function openRuntimeDir(cacheDir: string | undefined): {
  readonly dir: RuntimeDir;
  readonly cacheDir: string | undefined;
  readonly failure?: string;
} {
  if (cacheDir !== undefined) {
    try {
      return { dir: createRuntimeDir(cacheDir), cacheDir };
    } catch (error) {
      return { dir: createRuntimeDir(undefined), cacheDir: undefined, failure: (error as Error).message };
    }
  }
  return { dir: createRuntimeDir(undefined), cacheDir: undefined };
}
