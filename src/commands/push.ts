import { FLEET_USAGE } from "../remote/fleet-settings.js";
import { pushSnapshot } from "../remote/remote-snapshot.js";
import { openTravelKeys } from "../remote/travel-keys.js";
import { formatBytes } from "./format.js";
import { openNamedEntry, parseTravelArgs, requireRemote } from "./travel-args.js";

const USAGE = `Usage: warmstart push <key-prefix> [--remote oci://<registry>/<repository>] [--encrypt <recipient>]

Sends one snapshot to an OCI registry as an artifact (signed; encrypted with --encrypt).
Blobs the registry has are not sent again. Credentials: WARMSTART_REMOTE_USERNAME and
WARMSTART_REMOTE_PASSWORD, else ~/.docker/config.json.

${FLEET_USAGE}`;

export async function runPushCommand(args: string[]): Promise<number> {
  const parsed = parseTravelArgs(args, {}, USAGE, "one key prefix");
  if (!parsed) return 0;
  const { values, settings } = parsed;
  const remote = requireRemote(settings);
  const { cacheDir, store, entry } = await openNamedEntry(parsed.argument, values["cache-dir"], "pushed");
  const key = entry.manifest.key;
  const outcome = await pushSnapshot(entry, {
    settings,
    keys: openTravelKeys(cacheDir, settings),
    store,
    deadlineMs: 30 * 60_000,
  });
  if (outcome.pushed) {
    process.stdout.write(`${outcome.tag}\n`);
    process.stderr.write(
      `pushed ${key.slice(0, 12)} to ${remote.registry}/${remote.repository}:${outcome.tag} (${formatBytes(outcome.sentBytes)} sent${outcome.isLayerReused ? ", layer already there" : ""})\n`,
    );
    return 0;
  }
  if (outcome.reason === "already-present") {
    process.stderr.write(`warmstart: ${outcome.detail}; nothing sent\n`);
    return 0;
  }
  process.stderr.write(`warmstart: push failed: ${outcome.reason}: ${outcome.detail}\n`);
  return 1;
}
