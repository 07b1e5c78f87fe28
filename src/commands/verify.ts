import { removeEntry } from "../cache/entry-remove.js";
import { listEntryKeys } from "../cache/entry-scan.js";
import type { Manifest } from "../cache/entry-store.js";
import { verifyEntry } from "../cache/entry-verify.js";
import { FileHashIndex } from "../cache/file-hash.js";
import { WarmstartError } from "../errors.js";
import { describeChangedInput, findChangedInput, listDiscoveredPaths } from "../inputs/discovered-inputs.js";
import {
  checkKeyPrefix,
  describeEmptyCache,
  openStore,
  parseCommandArgs,
  selectEntry,
} from "./command-args.js";

const USAGE = "usage: warmstart verify [<key-prefix>] [--fix] [--cache-dir <dir>] [--json]";

interface Verdict {
  readonly key: string;
  readonly state: "ok" | "corrupt" | "refused";
  readonly detail?: string;
  /** sound entries: their inputs and whether a launch would still find them as they were. */
  readonly inputs?: {
    readonly mode: string;
    readonly paths: readonly string[];
    readonly stale: string | null;
  };
  readonly isRemoved: boolean;
  /** Why --fix could not remove it. */
  readonly keptBecause?: string;
}

/** `warmstart verify`: exit 0 only when every entry checked is sound (or was removed by --fix). */
export async function runVerifyCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(
    args,
    {
      fix: { type: "boolean", default: false },
      "cache-dir": { type: "string" },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    USAGE,
  );
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (positionals.length > 1) {
    throw new WarmstartError(
      "invalid-option",
      `Expected at most one key prefix, got ${positionals.length}.`,
      {
        hint: USAGE,
      },
    );
  }
  const [prefix] = positionals;
  if (prefix !== undefined) checkKeyPrefix(prefix);
  const { cacheDir, store, isMissing } = openStore(values["cache-dir"]);
  const keys = prefix === undefined ? listEntryKeys(store) : [selectEntry(store, prefix)];
  const verdicts: Verdict[] = [];
  const hashes = new FileHashIndex(cacheDir);
  for (const key of keys) {
    const outcome = await verifyEntry(store, key);
    if (outcome.state === "missing") continue;
    if (outcome.state === "ok" || !values.fix) {
      verdicts.push({
        key,
        state: outcome.state,
        ...("detail" in outcome ? { detail: outcome.detail } : {}),
        ...(outcome.state === "ok" ? { inputs: await checkInputs(outcome.manifest, hashes) } : {}),
        isRemoved: false,
      });
      continue;
    }
    const removal = removeEntry(store, key);
    verdicts.push({
      key,
      state: outcome.state,
      detail: outcome.detail,
      isRemoved: removal.removed || removal.reason === "missing",
      ...(!removal.removed && removal.reason !== "missing" ? { keptBecause: removal.detail } : {}),
    });
  }
  const isSound = verdicts.every((verdict) => verdict.state === "ok" || verdict.isRemoved);
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ cacheDir, isSound, entries: verdicts }, null, 2)}\n`);
    return isSound ? 0 : 1;
  }
  if (verdicts.length === 0) {
    process.stdout.write(`${describeEmptyCache(cacheDir, isMissing)}\n`);
    return 0;
  }
  const lines = verdicts.map((verdict) => {
    const inputs = verdict.inputs
      ? `; ${verdict.inputs.paths.length} inputs${verdict.inputs.mode === "proc" ? " (proc)" : ""}, ${verdict.inputs.stale ? `stale: ${verdict.inputs.stale}` : "as recorded"}`
      : "";
    const head = `${verdict.key.slice(0, 12)}  ${verdict.state}${verdict.detail ? `: ${verdict.detail}` : ""}${inputs}`;
    if (verdict.isRemoved) return `${head} (removed)`;
    return verdict.keptBecause ? `${head} (not removed: ${verdict.keptBecause})` : head;
  });
  const count = (state: Verdict["state"]) => verdicts.filter((verdict) => verdict.state === state).length;
  const removedCount = verdicts.filter((verdict) => verdict.isRemoved).length;
  lines.push(
    `${verdicts.length} ${verdicts.length === 1 ? "entry" : "entries"}: ${count("ok")} ok, ${count("corrupt")} corrupt, ${count("refused")} refused${values.fix ? `, ${removedCount} removed` : ""}`,
  );
  process.stdout.write(`${lines.join("\n")}\n`);
  return isSound ? 0 : 1;
}

/** An entry's inputs, and the first one that no longer matches (a launch would pass the
 * entry by: stale, not damaged, so verify's exit code does not change). */
async function checkInputs(
  manifest: Manifest,
  hashes: FileHashIndex,
): Promise<NonNullable<Verdict["inputs"]>> {
  const changed = await findChangedInput(manifest.discovered, hashes);
  return {
    mode: manifest.discovered.mode,
    paths: [...Object.keys(manifest.fields.inputs), ...listDiscoveredPaths(manifest.discovered)],
    stale: changed ? describeChangedInput(changed) : null,
  };
}
