import { createReadStream } from "node:fs";
import type { Readable } from "node:stream";
import { importArchive } from "../cache/archive-import.js";
import { WarmstartError } from "../errors.js";
import { admitOnThisHost } from "../host/admit-snapshot.js";
import { FLEET_USAGE } from "../remote/fleet-settings.js";
import { openTravelKeys } from "../remote/travel-keys.js";
import { openStore } from "./command-args.js";
import { formatBytes } from "./format.js";
import { createProgressBar } from "./progress-bar.js";
import { parseTravelArgs } from "./travel-args.js";

const USAGE = `Usage: warmstart import <file|-> [--trust <key>] [--identity <file>] [--allow-unsigned] [--cache-dir <dir>]

Reads an archive made by 'warmstart export' (plain, zstd or age-encrypted) into the cache.
Refused, with the member and the reason, and leaving the cache as it was: unsafe members
(absolute paths, "..", links, devices), members the manifest does not list, sizes or sha256
that differ, an archive over --max-archive-size, a truncated stream, an unparsable manifest,
a snapshot not signed by a trusted key, or one this host cannot restore.

${FLEET_USAGE}`;

export async function runImportCommand(args: string[]): Promise<number> {
  const parsed = parseTravelArgs(args, {}, USAGE, "one archive file (or - for stdin)");
  if (!parsed) return 0;
  const { values, settings, argument: file } = parsed;
  const { cacheDir, store } = openStore(values["cache-dir"] as string | undefined);
  const keys = openTravelKeys(cacheDir, settings);
  const input: Readable = file === "-" ? process.stdin : createReadStream(file);
  const opened = new Promise<void>((resolve, reject) => {
    if (file === "-") resolve();
    input.once("open", () => resolve());
    input.once("error", reject);
  });
  try {
    await opened;
  } catch (error) {
    throw new WarmstartError("invalid-option", `Cannot read ${file}: ${(error as Error).message}.`);
  }
  const progress = createProgressBar("import");
  const outcome = await importArchive(input, {
    store,
    trustedKeys: keys.trustedKeys,
    isUnsignedAllowed: settings.isUnsignedAllowed,
    identities: settings.identities,
    maxArchiveBytes: settings.maxArchiveBytes,
    admit: (document, cpuinfo) => admitOnThisHost(document, cpuinfo),
    onProgress: progress.update,
  });
  progress.end();
  if (!outcome.imported) {
    const member = outcome.member ? ` (member ${outcome.member})` : "";
    process.stderr.write(`warmstart: import refused: ${outcome.reason}${member}: ${outcome.detail}\n`);
    return outcome.reason === "already-present" ? 0 : 1;
  }
  process.stderr.write(
    `imported ${outcome.key.slice(0, 12)} (${formatBytes(outcome.document.manifest.imageBytes)} images), signed by ${outcome.signer ?? "nobody (allowed by --allow-unsigned)"}\n`,
  );
  return 0;
}
