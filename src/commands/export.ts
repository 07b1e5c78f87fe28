import { createWriteStream, renameSync, rmSync } from "node:fs";
import { resolve } from "node:path";
import type { Writable } from "node:stream";
import { describeEntry, writeArchive } from "../cache/archive-export.js";
import { WarmstartError } from "../errors.js";
import { describeThisHost } from "../host/admit-snapshot.js";
import { FLEET_USAGE } from "../remote/fleet-settings.js";
import { openTravelKeys } from "../remote/travel-keys.js";
import { formatBytes } from "./format.js";
import { createProgressBar } from "./progress-bar.js";
import { openNamedEntry, parseTravelArgs } from "./travel-args.js";

const USAGE = `Usage: warmstart export <key-prefix> [-o <file>|-] [--no-compress] [--encrypt <recipient>] [--cache-dir <dir>]

Writes one snapshot as a single archive (tar, zstd-compressed unless --no-compress): its signed
description, CRIU's image of this CPU and the images. Streams: no temporary copy is made.
Without -o, or with -o -, the archive goes to stdout.

${FLEET_USAGE}`;

export async function runExportCommand(args: string[]): Promise<number> {
  const parsed = parseTravelArgs(
    args,
    { output: { type: "string", short: "o" }, "no-compress": { type: "boolean", default: false } },
    USAGE,
    "one key prefix",
  );
  if (!parsed) return 0;
  const { values, settings } = parsed;
  const { cacheDir, entry } = await openNamedEntry(parsed.argument, values["cache-dir"], "exported");
  const key = entry.manifest.key;
  const output =
    typeof values.output === "string" && values.output !== "-" ? resolve(values.output) : undefined;
  if (output === undefined && process.stdout.isTTY) {
    throw new WarmstartError("invalid-option", "Refusing to write an archive to a terminal.", {
      hint: "give -o <file>, or redirect stdout",
    });
  }
  const keys = openTravelKeys(cacheDir, settings);
  const source = {
    entryDir: entry.dir,
    manifest: entry.manifest,
    localHost: () => describeThisHost(),
  };
  const signed = await describeEntry(source, keys.signingKey);
  // A file appears only when complete: written beside its name, renamed at the end.
  const partial = output ? `${output}.partial-${process.pid}` : undefined;
  const destination: Writable = partial
    ? createWriteStream(partial, { mode: 0o600, flags: "wx" })
    : process.stdout;
  const progress = createProgressBar(`export ${key.slice(0, 12)}`);
  try {
    const written = await writeArchive(
      source,
      signed,
      {
        isCompressed: values["no-compress"] !== true,
        recipients: settings.recipients,
        onProgress: progress.update,
      },
      destination,
    );
    progress.end();
    if (partial && output) renameSync(partial, output);
    process.stderr.write(
      `exported ${key.slice(0, 12)}: ${formatBytes(written.archiveBytes)} archive of ${formatBytes(entry.manifest.imageBytes)} images${settings.recipients.length > 0 ? ", encrypted" : ""}, signed by ${signed.signature.publicKey}\n`,
    );
    return 0;
  } catch (error) {
    progress.end();
    if (partial) rmSync(partial, { force: true });
    throw new WarmstartError(
      "cache-refused",
      `Export of ${key.slice(0, 12)} failed: ${(error as Error).message}.`,
      {
        cause: error,
      },
    );
  }
}
