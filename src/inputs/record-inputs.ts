import { realpathSync } from "node:fs";
import type { FileHashIndex } from "../cache/file-hash.js";
import { type CacheKeyFields, computeEntryKey } from "../cache/key.js";
import {
  contentOf,
  createInputFilter,
  type DiscoveredInputs,
  sealDiscoveredInputs,
} from "./discovered-inputs.js";
import type { InputRecorder } from "./recorder.js";

export type SealedRecording =
  | {
      readonly isComplete: true;
      readonly entryKey: string;
      readonly discovered: DiscoveredInputs;
      /** For -v: how many inputs, seen how. */
      readonly summary: string;
    }
  | { readonly isComplete: false; readonly reason: string; readonly summary: string };

/**
 * At dump time: stops the recording, keeps what counts as an input, hashes it and names the
 * entry. An incomplete list means no snapshot: a snapshot valid for a partial list of inputs
 * could restore old code.
 */
export async function sealRecording(
  recorder: InputRecorder,
  pid: number,
  command: { readonly executable: string; readonly args: readonly string[] },
  baseKey: string,
  fields: CacheKeyFields,
  hashes: FileHashIndex,
  where: {
    /** Paths the app's runtime found absent in module lookups (see ControlChannel). */
    readonly absentPaths: Iterable<string>;
    readonly cacheDir: string;
    readonly runtimeDir: string;
    readonly inputIgnore: readonly string[];
    readonly cwd: string;
  },
): Promise<SealedRecording> {
  const recording = recorder.finish({
    pid,
    executable: command.executable,
    args: command.args,
    cwd: where.cwd,
  });
  const isInput = createInputFilter({
    dirs: [...new Set([where.cacheDir, where.runtimeDir].flatMap((dir) => [dir, realPath(dir)]))],
    files: [command.executable, ...Object.keys(fields.inputs)],
    ignore: where.inputIgnore,
    cwd: where.cwd,
  });
  const sealed = await sealDiscoveredInputs(recording, where.absentPaths, isInput, hashes);
  await hashes.save();
  const how =
    recorder.mode === "fanotify"
      ? "seen opened by the app's tree (fanotify)"
      : `found in /proc at dump time (fanotify unavailable: ${recorder.fallbackReason})`;
  if (!sealed.isComplete) {
    return {
      isComplete: false,
      reason: `the app's inputs are not completely known: ${sealed.reason}`,
      summary: `inputs: incomplete, ${sealed.reason}`,
    };
  }
  return {
    isComplete: true,
    entryKey: computeEntryKey(baseKey, fields.host, contentOf(sealed.discovered)),
    discovered: sealed.discovered,
    summary: `inputs: ${summarize(sealed.discovered, how)}`,
  };
}

function summarize(discovered: DiscoveredInputs, how: string): string {
  const absent = discovered.files.filter((line) => line.startsWith("a ")).length;
  const files = `${discovered.files.length - absent} files ${how}`;
  return absent > 0 ? `${files}; ${absent} module paths that must stay absent` : files;
}

function realPath(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}
