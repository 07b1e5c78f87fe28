import { createHash } from "node:crypto";
import { readdirSync, statSync } from "node:fs";
import { sep } from "node:path";
import { type FileHashIndex, INPUT_PURPOSES } from "../cache/file-hash.js";
import { parseInputPattern } from "../cache/input-files.js";
import { decodePath, pathStart } from "./input-line.js";
import { findMovedLines } from "./native-stamps.js";
import type { RecordedFile, RecorderMode, RecordingOutcome } from "./recorder.js";
import { type FileStamp, isSameStamp, toStamp } from "./stamp.js";

/**
 * The files a cold start was seen reading, as an entry keeps them. One line per input,
 * "<kind> <dev> <ino> <size> <mtimeMs> <ctimeMs> <sha256> <path>" (the path last, so any
 * character may be in it): a warm launch parses and stats every one of them, and one string
 * per input parses several times faster than an object per input would.
 * kind: "f" a file (sha256 of its bytes), "d" a directory (sha256 of its listing), "a" a path
 * that must stay absent (stamps 0, sha256 "-"): a module the resolver looked for nearer and
 * did not find, which would be loaded instead if it appeared.
 */
export interface DiscoveredInputs {
  readonly mode: RecorderMode;
  readonly files: readonly string[];
}

export interface InputExclusions {
  /** warmstart's own directories: the cache (the app never reads it) and this launch's. */
  readonly dirs: readonly string[];
  /** Already in the base key: the executable and the declared inputs. */
  readonly files: readonly string[];
  /** --input-ignore globs, relative to cwd. */
  readonly ignore: readonly string[];
  readonly cwd: string;
}

// Kernel and device views, never the app's code or configuration.
const SYSTEM_DIRS = ["/proc", "/sys", "/dev"];

export function createInputFilter(exclusions: InputExclusions): (path: string) => boolean {
  const dirs = [...SYSTEM_DIRS, ...exclusions.dirs];
  const files = new Set(exclusions.files);
  const ignored = exclusions.ignore.map((pattern) => parseInputPattern(pattern, exclusions.cwd));
  return (path) =>
    !files.has(path) &&
    !dirs.some((dir) => path === dir || path.startsWith(dir.endsWith(sep) ? dir : `${dir}${sep}`)) &&
    !ignored.some((pattern) => pattern.matches(path));
}

export type SealOutcome =
  | { readonly isComplete: true; readonly discovered: DiscoveredInputs }
  | { readonly isComplete: false; readonly reason: string };

/**
 * Hashes what the recording found, keeping what the filter lets through. A file that changed
 * since the app opened it leaves the snapshot's memory and the key disagreeing: no snapshot.
 */
export async function sealDiscoveredInputs(
  recording: RecordingOutcome,
  absentPaths: Iterable<string>,
  isInput: (path: string) => boolean,
  hashes: FileHashIndex,
): Promise<SealOutcome> {
  if (!recording.isComplete) return recording;
  const lines: string[] = [];
  for (const file of recording.files) {
    if (!isInput(file.path)) continue;
    let stamp: FileStamp;
    try {
      stamp = toStamp(statSync(file.path));
    } catch {
      // Read, then removed by the app (a temporary file): nothing a later launch would read.
      continue;
    }
    if (!isSameStamp(stamp, file.stamp)) {
      // A directory whose listing moved while the app started is one it writes into (npm's
      // log directory, a cache): an output. A file that moved, read and not written by the
      // app, was edited under it: the snapshot would hold the old bytes.
      if (file.kind === "dir") continue;
      return { isComplete: false, reason: `${file.path} changed while the app started` };
    }
    lines.push(encodeInput(file, await hashInput(file.kind, file.path, hashes)));
  }
  for (const path of absentPaths) {
    if (!isInput(path)) continue;
    // Created while the app started: it may or may not have been seen; the app's memory
    // cannot tell which, so no snapshot.
    if (statSync(path, { throwIfNoEntry: false }))
      return { isComplete: false, reason: `${path} appeared while the app started` };
    lines.push(`a 0 0 0 0 0 - ${path}`);
  }
  return { isComplete: true, discovered: { mode: recording.mode, files: lines.sort(byPath) } };
}

function encodeInput(file: RecordedFile, sha256: string): string {
  const { dev, ino, size, mtimeMs, ctimeMs } = file.stamp;
  return `${file.kind === "dir" ? "d" : "f"} ${dev} ${ino} ${size} ${mtimeMs} ${ctimeMs} ${sha256} ${file.path}`;
}

function byPath(a: string, b: string): number {
  const pathA = decodePath(a);
  const pathB = decodePath(b);
  return pathA < pathB ? -1 : pathA > pathB ? 1 : 0;
}

/** The paths an entry's discovered inputs name (for `ls --json`, `verify`, `--watch`). */
export function listDiscoveredPaths(discovered: DiscoveredInputs | undefined): string[] {
  return (discovered?.files ?? []).map(decodePath);
}

/** The lines without their stamps: what identifies the inputs' content (for the entry key). */
export function contentOf(discovered: DiscoveredInputs): string[] {
  return discovered.files.map((line) => {
    const start = pathStart(line);
    const fields = line.slice(0, start - 1).split(" ");
    return `${fields[0]} ${fields[6]} ${line.slice(start)}`;
  });
}

async function hashInput(kind: "file" | "dir", path: string, hashes: FileHashIndex): Promise<string> {
  if (kind === "file") return hashes.hashFile(path, INPUT_PURPOSES.sha256);
  return hashes.memoize(path, INPUT_PURPOSES.listing, async () => hashListing(path));
}

/** A directory counts by its names and their kinds (a plugin folder gains a plugin). */
function hashListing(path: string): string {
  const names = readdirSync(path, { withFileTypes: true })
    .map((entry) => `${entry.name}${entry.isDirectory() ? "/" : ""}`)
    .sort();
  return createHash("sha256").update(names.join("\n")).digest("hex");
}

export interface ChangedInput {
  readonly path: string;
  readonly how: "changed" | "is gone" | "cannot be read" | "appeared";
}

export function describeChangedInput(change: ChangedInput): string {
  return `${change.path} ${change.how}`;
}

/**
 * The first discovered input that is no longer what the entry was made from, or undefined
 * when all still match. A stat that matches the recorded one is enough; only a file whose
 * stat moved (a `touch`, a checkout) is read again, through the stat-keyed memo, so a touch
 * without a change stays warm. The stat of every line is made natively where the library is
 * built (native-stamps.ts); the lines it reports moved, or all of them without it, are
 * decided here.
 */
export async function findChangedInput(
  discovered: DiscoveredInputs,
  hashes: FileHashIndex,
  options: {
    /** The entry's copy of the lines for the library (STAMPS_FILE), where there is one. */
    readonly stampsFile?: string;
    /** The tests' way to check the JavaScript path where the library is built. */
    readonly findMoved?: typeof findMovedLines;
  } = {},
): Promise<ChangedInput | undefined> {
  const moved = (options.findMoved ?? findMovedLines)(discovered.files, options.stampsFile);
  const lines = moved ? moved.map((index) => discovered.files[index] ?? "") : discovered.files;
  for (const line of lines) {
    const start = pathStart(line);
    const path = line.slice(start);
    const stat = statSync(path, { throwIfNoEntry: false });
    if (line.startsWith("a ")) {
      if (stat) return { path, how: "appeared" };
      continue;
    }
    if (!stat) return { path, how: "is gone" };
    const fields = line.slice(0, start - 1).split(" ");
    if (
      stat.ino === Number(fields[2]) &&
      stat.mtimeMs === Number(fields[4]) &&
      stat.ctimeMs === Number(fields[5]) &&
      stat.size === Number(fields[3]) &&
      stat.dev === Number(fields[1])
    )
      continue;
    const kind = fields[0] === "d" ? "dir" : "file";
    if ((kind === "dir") !== stat.isDirectory()) return { path, how: "changed" };
    let sha256: string;
    try {
      sha256 = await hashInput(kind, path, hashes);
    } catch {
      return { path, how: "cannot be read" };
    }
    if (sha256 !== fields[6]) return { path, how: "changed" };
  }
  return undefined;
}
