import type { CacheEntry, EntryStore } from "../cache/entry-store.js";
import type { CacheKeyFields } from "../cache/key.js";
import { computeAppKey } from "../cache/snapshot-document.js";
import { collectHostFacts } from "../host/host-facts.js";
import type { FleetSettings } from "./fleet-settings.js";
import { type PullOutcome, type PushOutcome, pullSnapshot, pushSnapshot } from "./remote-snapshot.js";
import { openTravelKeys } from "./travel-keys.js";

/** What a launch hands the remote cache: its settings, its cache and its CRIU. */
export interface LaunchRemote {
  readonly settings: FleetSettings;
  readonly cacheDir: string;
  readonly store: EntryStore;
  readonly criu: { readonly path: string; readonly version: string };
  readonly env: NodeJS.ProcessEnv;
}

/**
 * On a local miss: a snapshot of the same app that this host can restore, pulled into the
 * store under this launch's key. The outcome says why not, for one warning; a registry that
 * is down or slow costs at most the deadline (default 60 s, WARMSTART_REMOTE_TIMEOUT in s).
 */
export async function pullForLaunch(fields: CacheKeyFields, remote: LaunchRemote): Promise<PullOutcome> {
  try {
    const host = await collectHostFacts(remote.criu.path, remote.criu.version, remote.env);
    return await pullSnapshot(computeAppKey(fields), host, contextOf(remote));
  } catch (error) {
    return { pulled: false, reason: "bad-response", detail: (error as Error).message };
  }
}

/** After a cold start's snapshot landed (in the background of the serving app). */
export async function pushForLaunch(entry: CacheEntry, remote: LaunchRemote): Promise<PushOutcome> {
  try {
    return await pushSnapshot(entry, contextOf(remote));
  } catch (error) {
    return { pushed: false, reason: "export-failed", detail: (error as Error).message };
  }
}

function contextOf(remote: LaunchRemote) {
  const seconds = Number(remote.env.WARMSTART_REMOTE_TIMEOUT ?? "60");
  return {
    settings: remote.settings,
    keys: openTravelKeys(remote.cacheDir, remote.settings),
    store: remote.store,
    env: remote.env,
    deadlineMs: Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : 60_000,
  };
}
