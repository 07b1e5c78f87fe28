import { Writable } from "node:stream";
import { EntryStore } from "../cache/entry-store.js";
import { parseInputPattern } from "../cache/input-files.js";
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
 * While the app runs, watches its inputs and its executable. A change makes the snapshot
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
  const isWatched = (path: string) =>
    path === executable || patterns.some((pattern) => pattern.matches(path));
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
  let isPrewarming = false;
  let isPrewarmPending = false;
  const quiet = new Writable({ write: (_chunk, _encoding, done) => done() });

  const runPrewarm = async () => {
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

  watcher.on("all", (_event, path) => {
    if (!isWatched(path)) return;
    // Evicted at once, not after the settle delay: a launch in between must not restore it.
    const isEvicted = launched.key !== null && new EntryStore(options.cacheDir).evict(launched.key);
    onEvent({ type: "input-changed", path, isEvicted });
    if (!isPrewarm) return;
    clearTimeout(timer);
    timer = setTimeout(() => void runPrewarm(), SETTLE_MS);
  });
  watcher.on("error", (error) => onEvent({ type: "watch-error", message: String(error) }));
  await new Promise<void>((resolve) => watcher.once("ready", () => resolve()));
  return {
    close: async () => {
      clearTimeout(timer);
      await watcher.close();
    },
  };
}
