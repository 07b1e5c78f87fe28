import type { ParseArgsConfig } from "node:util";
import type { CacheEntry, EntryStore } from "../cache/entry-store.js";
import { WarmstartError } from "../errors.js";
import {
  FLEET_FLAGS,
  type FleetSettings,
  resolveFleetSettings,
  toFleetFlags,
} from "../remote/fleet-settings.js";
import { checkKeyPrefix, openStore, parseCommandArgs, selectEntry } from "./command-args.js";

type Flags = NonNullable<ParseArgsConfig["options"]>;

/**
 * The flags of a command that moves snapshots (export, import, push, pull): its own, the
 * fleet's and --cache-dir, with exactly one positional argument. Undefined for --help, which
 * it has printed.
 */
export function parseTravelArgs(
  args: string[],
  flags: Flags,
  usage: string,
  expected: string,
):
  | {
      readonly values: Readonly<Record<string, string | boolean | (string | boolean)[] | undefined>>;
      readonly argument: string;
      readonly settings: FleetSettings;
    }
  | undefined {
  const { values, positionals } = parseCommandArgs(
    args,
    {
      ...FLEET_FLAGS,
      ...flags,
      "cache-dir": { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
    usage,
  );
  if (values.help) {
    process.stdout.write(`${usage}\n`);
    return undefined;
  }
  const [argument, extra] = positionals;
  if (argument === undefined || extra !== undefined) {
    throw new WarmstartError("invalid-option", `Expected ${expected}.`, { hint: usage.split("\n")[0] });
  }
  return { values, argument, settings: resolveFleetSettings(toFleetFlags(values)) };
}

/** The entry a key prefix names in --cache-dir, checked as a launch would check it. */
export async function openNamedEntry(
  prefix: string,
  cacheDirOption: unknown,
  verb: string,
): Promise<{ cacheDir: string; store: EntryStore; entry: CacheEntry }> {
  checkKeyPrefix(prefix);
  const { cacheDir, store } = openStore(typeof cacheDirOption === "string" ? cacheDirOption : undefined);
  const key = selectEntry(store, prefix);
  const found = await store.lookup(key);
  if (!found.hit) {
    const why = found.reason === "missing" ? "it is gone" : found.detail;
    throw new WarmstartError("cache-refused", `Entry ${key.slice(0, 12)} cannot be ${verb}: ${why}.`);
  }
  return { cacheDir, store, entry: found.entry };
}

export function requireRemote(settings: FleetSettings): NonNullable<FleetSettings["remote"]> {
  if (!settings.remote) {
    throw new WarmstartError("invalid-option", "No remote cache is configured.", {
      hint: "give --remote oci://<registry>/<repository> or set WARMSTART_REMOTE",
    });
  }
  return settings.remote;
}
