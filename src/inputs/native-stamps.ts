import { existsSync } from "node:fs";
import { distPath } from "../dist-paths.js";
import { loadKoffiNative } from "../exec/koffi-native.js";

/** Built from src/inputs/native/input-stamps.c by scripts/build-native.sh, when a C compiler is there. */
export const INPUT_STAMPS_LIBRARY = "native/input-stamps.so";

/**
 * Beside an entry's manifest: its discovered-input lines as the library reads them, written
 * with the manifest at commit. Encoding them from the manifest's strings cost a fresh process
 * 3-7 ms for 2,000 inputs, about as much as the stats themselves; the library maps this file.
 */
export const STAMPS_FILE = "inputs.nul";

type NativeCall = (...args: unknown[]) => number;

type Loaded =
  | { readonly movedInputs: NativeCall; readonly movedInputsInFile: NativeCall }
  | { readonly unavailable: string };

let loaded: Loaded | undefined;

/**
 * The library, loaded once per process (koffi is loaded on the warm path anyway, for the
 * restore's pipes). It is part of the build like the bundle beside it, and trusted as that is.
 */
function load(): Loaded {
  if (loaded) return loaded;
  const path = distPath(INPUT_STAMPS_LIBRARY);
  if (!existsSync(path)) {
    loaded = { unavailable: `${path} was not built (no C compiler at build time)` };
    return loaded;
  }
  try {
    const lib = loadKoffiNative().load(path);
    loaded = {
      movedInputs: lib.func(
        "int32_t warmstart_moved_inputs_v1(const uint8_t *text, size_t length, int32_t line_count, _Out_ int32_t *moved)",
      ) as unknown as NativeCall,
      movedInputsInFile: lib.func(
        "int32_t warmstart_moved_inputs_in_file_v1(const char *path, int32_t line_count, _Out_ int32_t *moved)",
      ) as unknown as NativeCall,
    };
  } catch (error) {
    loaded = { unavailable: `${path} cannot be loaded: ${(error as Error).message}` };
  }
  return loaded;
}

/** Why inputs are checked one statSync at a time here (for `doctor`), or undefined when they are not. */
export function describeNativeStampsUnavailable(): string | undefined {
  const library = load();
  return "unavailable" in library ? library.unavailable : undefined;
}

/** The lines as the library reads them: each followed by a NUL, the one byte no path holds. */
export function encodeStampLines(lines: readonly string[]): Buffer {
  return Buffer.from(lines.length > 0 ? `${lines.join("\0")}\0` : "");
}

/**
 * The indices of the discovered-input lines whose path no longer stats as recorded (changed,
 * gone, appeared, or not stat-able), in order, from one native call; every other line is
 * unchanged for certain. `stampsFile`: the entry's copy of the lines (STAMPS_FILE), used when
 * it is a regular file of ours that nobody else can read or write (not a symlink) and holds
 * exactly as many lines. Undefined where the library is missing: the caller then stats every
 * line itself.
 */
export function findMovedLines(lines: readonly string[], stampsFile?: string): number[] | undefined {
  const library = load();
  if ("unavailable" in library) return undefined;
  if (lines.length === 0) return [];
  const moved = new Int32Array(lines.length);
  // Synchronous: koffi's worker-thread variant took 9-10 ms where this takes 5-6 (2,000
  // inputs, a fresh process), and the copy being restored waits for the verdict either way.
  // Negative: the file is not there or not safe to trust, or the text does not hold these
  // lines: nothing is known for certain from it.
  let count = stampsFile === undefined ? -1 : library.movedInputsInFile(stampsFile, lines.length, moved);
  if (count < 0) {
    const text = encodeStampLines(lines);
    count = library.movedInputs(text, text.length, lines.length, moved);
  }
  return count < 0 ? undefined : Array.from(moved.subarray(0, count));
}
