import { findCriu } from "../criu/find-criu.js";
import { WarmstartError } from "../errors.js";
import { collectHostFacts } from "../host/host-facts.js";
import { FLEET_USAGE } from "../remote/fleet-settings.js";
import { pullSnapshot } from "../remote/remote-snapshot.js";
import { openTravelKeys } from "../remote/travel-keys.js";
import { openStore } from "./command-args.js";
import { formatBytes } from "./format.js";
import { parseTravelArgs, requireRemote } from "./travel-args.js";

const USAGE = `Usage: warmstart pull <app-key|tag> [--remote oci://<registry>/<repository>] [--identity <file>]

Fetches a snapshot this host can restore from an OCI registry into the cache: by tag (as
'warmstart push' prints it), or the best one for an app key (64 hex digits, the tag's middle
part). Refuses snapshots not signed by a trusted key, and says what differs when no snapshot
suits this host.

${FLEET_USAGE}`;

export async function runPullCommand(args: string[]): Promise<number> {
  const parsed = parseTravelArgs(
    args,
    {},
    USAGE,
    "an app key (64 hex digits) or a tag ws1-<app key>-<host key>",
  );
  if (!parsed) return 0;
  const { values, settings, argument: name } = parsed;
  const tagMatch = /^ws1-([0-9a-f]{64})-[0-9a-f]{16}$/.exec(name);
  const appKey = tagMatch?.[1] ?? (/^[0-9a-f]{64}$/.test(name) ? name : undefined);
  if (appKey === undefined) {
    throw new WarmstartError(
      "invalid-option",
      `Expected an app key (64 hex digits) or a tag ws1-<app key>-<host key>, got ${JSON.stringify(name)}.`,
      {
        hint: USAGE.split("\n")[0],
      },
    );
  }
  requireRemote(settings);
  const criu = await findCriu();
  if (!criu.found)
    throw new WarmstartError(
      "criu-missing",
      "CRIU is needed to check that this host can restore a snapshot.",
      { hint: "run: sudo scripts/install-criu.sh" },
    );
  const { cacheDir, store } = openStore(values["cache-dir"] as string | undefined);
  const host = await collectHostFacts(criu.criu.path, criu.criu.version.text);
  const outcome = await pullSnapshot(
    appKey,
    host,
    { settings, keys: openTravelKeys(cacheDir, settings), store, deadlineMs: 30 * 60_000 },
    tagMatch ? { tag: name } : {},
  );
  if (!outcome.pulled) {
    process.stderr.write(`warmstart: pull refused: ${outcome.reason}: ${outcome.detail}\n`);
    return 1;
  }
  process.stderr.write(
    `pulled ${outcome.tag} as ${outcome.key.slice(0, 12)} (${formatBytes(outcome.archiveBytes)}), signed by ${outcome.signer ?? "nobody (allowed by --allow-unsigned)"}\n`,
  );
  return 0;
}
