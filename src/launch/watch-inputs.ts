import { Writable } from "node:stream";
import { EntryStore } from "../cache/entry-store.js";
import { FileHashIndex } from "../cache/file-hash.js";
import { parseInputPattern } from "../cache/input-files.js";
import { type DiscoveredInputs, findChangedInput, listDiscoveredPaths } from "../inputs/discovered-inputs.js";
import type { CheckpointOutcome } from "./checkpoint.js";
import type { Launch, LaunchOptions } from "./launch.js";
import { prewarm } from "./prewarm.js";
import { resolveCommand } from "./resolve-command.js";

export type WatchEvent =
  | { readonly type: "input-changed"; readonly path: string; readonly isEvicted: boolean }
  | { readonly type: "prewarmed"; readonly outcome: CheckpointOutcome | undefined }
  | { readonly type: "prewarm-failed"; readonly message: string }
  | { readonly type: "watch-error"; readonly message: string };

export interface InputWatcher {
  close(): Promise<void>;
}

const SETTLE_MS = 300;

/**
 * While the app runs, watches its inputs (declared, and those its snapshot's cold start was
 * seen reading) and its executable. A change makes the snapshot
 * stale: it is evicted at once, and with `isPrewarm` a background cold start of the new
 * version is snapshotted, so the next launch is warm with the new code. Errors are events,
 * not exceptions: a watcher must not take the serving app down.
 */
export async function watchInputs(
  launched: Launch,
  options: LaunchOptions & { readonly cacheDir: string },
  isPrewarm: boolean,
  onEvent: (event: WatchEvent) => void,
): Promise<InputWatcher> {
  const { watch } = await import("chokidar");
  const cwd = options.cwd ?? process.cwd();
  const env = options.env ?? process.env;
  const executable = resolveCommand(options.command, cwd, env).executable;
  const patterns = (options.inputs ?? []).map((pattern) => parseInputPattern(pattern, cwd));
  const discovered = new Set<string>();
  const entryFound = findLaunchEntry(launched, options.cacheDir);
  const isWatched = (path: string) =>
    path === executable || discovered.has(path) || patterns.some((pattern) => pattern.matches(path));
  // The executable itself, not its directory: that would mean reading all of /usr/bin.
  const roots = [...new Set([executable, ...patterns.map((pattern) => pattern.base)])];
  const watcher = watch(roots, {
    ignoreInitial: true,
    ignored: (path: string) =>
      /\/(node_modules|\.git)(\/|$)/.test(path) && !patterns.some((p) => p.entersHidden),
    // /usr/bin/X11 -> . and the like: symlink loops must not be walked.
    followSymlinks: false,
  });
  let timer: NodeJS.Timeout | undefined;
  let recheck: NodeJS.Timeout | undefined;
  const runPrewarm = serializePrewarms(options, onEvent);

  const onChange = async (path: string) => {
    // Evicted at once, not after the settle delay: a launch in between must not restore it.
    // (A cold launch's entry is known once its checkpoint is saved.)
    const entry = await entryFound;
    const isEvicted = entry !== undefined && new EntryStore(options.cacheDir).evict(entry.key);
    onEvent({ type: "input-changed", path, isEvicted });
    if (!isPrewarm) return;
    clearTimeout(timer);
    timer = setTimeout(() => void runPrewarm(), SETTLE_MS);
  };
  watcher.on("all", (_event, path) => {
    if (isWatched(path)) void onChange(path);
  });
  watcher.on("error", (error) => onEvent({ type: "watch-error", message: String(error) }));
  await new Promise<void>((resolve) => watcher.once("ready", () => resolve()));
  // The snapshot's own inputs: the restored entry's, or the new one's once it is saved. An
  // edit made before the watch on them began is found by comparing them once, after it.
  void entryFound.then((entry) => {
    if (!entry) return;
    const paths = listDiscoveredPaths(entry.discovered);
    for (const path of paths) discovered.add(path);
    if (paths.length === 0) return;
    watcher.add(paths);
    recheck = setTimeout(async () => {
      const changed = await findChangedInput(entry.discovered, new FileHashIndex(options.cacheDir));
      if (changed) void onChange(changed.path);
    }, SETTLE_MS);
  });
  return {
    close: async () => {
      clearTimeout(timer);
      clearTimeout(recheck);
      await watcher.close();
    },
  };
}

/**
 * One background prewarm at a time: a change during a prewarm queues one more (of the newest
 * files), never a pile of them.
 */
function serializePrewarms(
  options: LaunchOptions,
  onEvent: (event: WatchEvent) => void,
): () => Promise<void> {
  let isPrewarming = false;
  let isPrewarmPending = false;
  const quiet = new Writable({ write: (_chunk, _encoding, done) => done() });
  const runPrewarm = async (): Promise<void> => {
    if (isPrewarming) {
      isPrewarmPending = true;
      return;
    }
    isPrewarming = true;
    try {
      const outcome = await prewarm({
        ...options,
        sinks: { stdout: quiet, stderr: quiet },
        onEvent: (event) => {
          if (event.type === "fallback") onEvent({ type: "prewarm-failed", message: event.message });
        },
      });
      onEvent({ type: "prewarmed", outcome });
    } catch (error) {
      onEvent({ type: "prewarm-failed", message: (error as Error).message });
    } finally {
      isPrewarming = false;
      if (isPrewarmPending) {
        isPrewarmPending = false;
        void runPrewarm();
      }
    }
  };
  return runPrewarm;
}

async function findLaunchEntry(
  launched: Launch,
  cacheDir: string,
): Promise<{ key: string; discovered: DiscoveredInputs } | undefined> {
  if (launched.mode === "cold") {
    const outcome = await launched.checkpoint;
    return outcome?.saved ? outcome.entry.manifest : undefined;
  }
  if (launched.key === null) return undefined;
  const found = await new EntryStore(cacheDir).lookup(launched.key);
  return found.hit ? found.entry.manifest : undefined;
}
