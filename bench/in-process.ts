// In-process figures for the steps of a warm launch that run inside warmstart before CRIU
// starts: the cache key, the entry lookup, the manifest read. They use warmstart's own
// modules (dist/src/...) on the workload's real cache entry, as its launch calls them.
import { readFileSync } from "node:fs";
import { EntryStore } from "../src/cache/entry-store.js";
import { FileHashIndex } from "../src/cache/file-hash.js";
import { findEntry } from "../src/cache/find-entry.js";
import { type CacheKeyFields, computeBaseKey } from "../src/cache/key.js";
import { collectKeyFields, type KeyInputs } from "../src/cache/key-fields.js";
import type { BenchContext, Snapshot } from "./modes.js";
import { roundTo } from "./stats.js";

export interface InProcessFigure {
  readonly name: string;
  readonly what: string;
  readonly medianMs: number | null;
  readonly p75Ms: number | null;
  readonly p99Ms: number | null;
  readonly samples: number;
  readonly error: string | null;
}

export async function measureInProcess(
  ctx: BenchContext,
  snapshot: Snapshot,
  timeMs: number,
): Promise<InProcessFigure[]> {
  // Lazily: tinybench is a devDependency that only this phase needs.
  const { Bench } = await import("tinybench");
  const manifest = JSON.parse(readFileSync(snapshot.manifestPath, "utf8")) as {
    fields: CacheKeyFields;
    baseKey: string;
  };
  const { fields } = manifest;
  // What the launch that made the entry hashed: its command, cwd, inputs and environment.
  const keyInputs: KeyInputs = {
    executable: fields.executablePath,
    args: fields.args,
    cwd: fields.cwd,
    env: ctx.env,
    envIgnore: new Set(),
    inputPatterns: fields.inputPatterns,
    inputIgnore: fields.inputIgnore,
    criuVersion: fields.host.criuVersion,
  };
  const computeKey = async () => {
    const hashes = new FileHashIndex(ctx.cacheDir);
    const key = computeBaseKey(await collectKeyFields(keyInputs, ctx.cacheDir, hashes));
    await hashes.save();
    return key;
  };
  // Same inputs, same key: otherwise this would time another computation than a warm launch's.
  const key = await computeKey();
  if (key !== manifest.baseKey)
    throw new Error(`computed base key ${key}, the entry's is ${manifest.baseKey}`);
  const first = await new EntryStore(ctx.cacheDir).lookup(snapshot.key);
  if (!first.hit) throw new Error(`the lookup of ${snapshot.key} missed: ${first.reason}`);

  const tasks: { name: string; what: string; fn: () => unknown }[] = [
    {
      name: "key",
      what: "FileHashIndex load + collectKeyFields (memoized executable hash, env digests, CPU flags, cgroup limits) + computeBaseKey",
      fn: computeKey,
    },
    {
      name: "lookup",
      what: "EntryStore.lookup on the real entry (modes, sizes, sha256 of the metadata images)",
      fn: () => new EntryStore(ctx.cacheDir).lookup(snapshot.key),
    },
    {
      name: "find entry",
      what: "findEntry: the lookup of every entry under the base key, host part and discovered inputs checked",
      fn: async () => {
        const hashes = new FileHashIndex(ctx.cacheDir);
        const found = await findEntry(new EntryStore(ctx.cacheDir), manifest.baseKey, fields, hashes);
        if (!found.hit) throw new Error(`findEntry missed: ${JSON.stringify(found)}`);
      },
    },
    {
      name: "manifest read",
      what: "readFileSync + JSON.parse of manifest.json",
      fn: () => JSON.parse(readFileSync(snapshot.manifestPath, "utf8")),
    },
  ];
  const bench = new Bench({ time: timeMs, warmupTime: Math.min(100, timeMs), throws: false });
  for (const task of tasks) bench.add(task.name, task.fn);
  await bench.run();
  return tasks.map((task) => {
    const result = bench.getTask(task.name)?.result;
    if (!result || !("latency" in result)) {
      const error = result && "error" in result ? result.error.message : `not run (${result?.state})`;
      return {
        name: task.name,
        what: task.what,
        medianMs: null,
        p75Ms: null,
        p99Ms: null,
        samples: 0,
        error,
      };
    }
    const { latency } = result;
    return {
      name: task.name,
      what: task.what,
      medianMs: roundTo(latency.p50, 4),
      p75Ms: roundTo(latency.p75, 4),
      p99Ms: roundTo(latency.p99, 4),
      samples: latency.samplesCount,
      error: null,
    };
  });
}
