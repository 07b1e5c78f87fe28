import type { CacheEntry } from "../cache/entry-store.js";
import type { LaunchRemote } from "../remote/launch-remote.js";
import type { LaunchContext, UsableCache } from "./launch-context.js";

// The remote cache's part in a launch. Its code (tar, zstd, the registry client) is loaded
// only when a remote is configured: the warm path imports nothing of it.

/** On a local miss: a compatible snapshot from the registry, filed in the store (true), for
 * the lookup to find. A registry that is down, slow or answers garbage costs one warning,
 * never the launch. */
export async function pullOnMiss(context: LaunchContext, cache: UsableCache): Promise<boolean> {
  const remote = remoteOf(context, cache);
  if (!remote) return false;
  const { pullForLaunch } = await import("../remote/launch-remote.js");
  const pulled = await pullForLaunch(cache.fields, remote);
  if (!pulled.pulled) {
    if (pulled.reason !== "not-found")
      context.opts.emit({
        type: "warning",
        message: `remote cache: ${pulled.reason}: ${pulled.detail}; starting cold`,
      });
    return false;
  }
  context.step("looking-up", `pulled ${pulled.tag} from ${remote.settings.remote?.registry}`);
  return true;
}

/** After a cold start's snapshot landed: pushed, beside the serving app. */
export async function pushAfterSave(
  context: LaunchContext,
  cache: UsableCache,
  entry: CacheEntry,
): Promise<void> {
  const remote = remoteOf(context, cache);
  if (!remote?.settings.isPushEnabled) return;
  const { pushForLaunch } = await import("../remote/launch-remote.js");
  const pushed = await pushForLaunch(entry, remote);
  if (!pushed.pushed && pushed.reason !== "already-present") {
    context.opts.emit({
      type: "warning",
      message: `remote cache: push failed: ${pushed.reason}: ${pushed.detail}`,
    });
  }
}

function remoteOf(context: LaunchContext, cache: UsableCache): LaunchRemote | undefined {
  const { fleet, env } = context.opts;
  if (!fleet?.remote) return undefined;
  return { settings: fleet, cacheDir: cache.dir, store: cache.store, criu: cache.criu, env };
}
