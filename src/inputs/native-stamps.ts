import { existsSync } from "node:fs";
import { distPath } from "../dist-paths.js";
import { loadKoffiNative } from "../exec/koffi-native.js";
import { FIELDS_BEFORE_PATH } from "./input-line.js";

/** Built from src/inputs/native/input-stamps.c by scripts/build-native.sh, when a C compiler is there. */
export const INPUT_STAMPS_LIBRARY = "native/input-stamps.so";

/**
 * Beside an entry's manifest: its discovered inputs' stamps as the library reads them (see
 * encodeStamps), written with the manifest at commit. Encoding them from the manifest's
 * strings cost a fresh process 3-7 ms for 2,000 inputs, about as much as the stats themselves;
 * the library maps this file. Entries from before this format have an `inputs.nul` instead,
 * which nothing reads: their inputs are encoded at each launch until their next cold start.
 */
export const STAMPS_FILE = "inputs.stamps";

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
        "int32_t warmstart_moved_inputs_v2(const uint8_t *stamps, size_t length, int32_t count, _Out_ int32_t *moved)",
      ) as unknown as NativeCall,
      movedInputsInFile: lib.func(
        "int32_t warmstart_moved_inputs_in_file_v2(const char *path, int32_t count, _Out_ int32_t *moved)",
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

const MAGIC = "WSSTAMP2";
const HEADER_SIZE = 16;
const NUMBERS_PER_LINE = 5;
const KIND_CODES = new Set(["f", "d", "a"].map((kind) => kind.charCodeAt(0)));
const UNUSABLE_KIND = "?".charCodeAt(0);

/**
 * The discovered-input lines (input-line.ts) as the library reads them, so that it compares doubles instead of parsing text (strtod was
 * an eighth of its call). In this machine's byte order: "WSSTAMP2" and the double 1.0 (a
 * reader of the other order sees another number and refuses), then the five numbers of every
 * line as Number() gives them (exactly what the JavaScript check compares), then every line's
 * kind byte, then every path followed by a NUL. A line that does not parse gets the kind "?",
 * which the library always reports as moved. Column by column, so that a fresh process (where
 * this runs for an entry without the file, before anything is compiled) fills typed arrays
 * and writes the paths in one call, rather than a buffer call per field.
 */
export function encodeStamps(lines: readonly string[]): Buffer {
  const count = lines.length;
  const numbers = new Float64Array(count * NUMBERS_PER_LINE);
  const kinds = new Uint8Array(count);
  const paths = new Array<string>(count);
  const fieldEnds = new Int32Array(FIELDS_BEFORE_PATH);
  for (let index = 0; index < count; index++) {
    const line = lines[index] ?? "";
    let fields = 0;
    for (let at = line.indexOf(" "); at >= 0 && fields < FIELDS_BEFORE_PATH; at = line.indexOf(" ", at + 1))
      fieldEnds[fields++] = at;
    const path =
      fields === FIELDS_BEFORE_PATH ? line.slice((fieldEnds[FIELDS_BEFORE_PATH - 1] ?? 0) + 1) : "";
    for (let field = 0; field < NUMBERS_PER_LINE && field + 1 < fields; field++)
      numbers[index * NUMBERS_PER_LINE + field] = Number(
        line.slice((fieldEnds[field] ?? 0) + 1, fieldEnds[field + 1] ?? 0),
      );
    const kind = line.charCodeAt(0);
    const isWhole = fields === FIELDS_BEFORE_PATH && fieldEnds[0] === 1 && KIND_CODES.has(kind);
    kinds[index] = isWhole && !path.includes("\0") ? kind : UNUSABLE_KIND;
    paths[index] = path;
  }
  const joined = count > 0 ? `${paths.join("\0")}\0` : "";
  const numbersStart = HEADER_SIZE;
  const kindsStart = numbersStart + numbers.byteLength;
  const pathsStart = kindsStart + kinds.byteLength;
  const stamps = Buffer.alloc(pathsStart + Buffer.byteLength(joined));
  stamps.write(MAGIC, 0, "latin1");
  stamps.set(new Uint8Array(new Float64Array([1]).buffer), MAGIC.length);
  stamps.set(new Uint8Array(numbers.buffer), numbersStart);
  stamps.set(kinds, kindsStart);
  stamps.write(joined, pathsStart, "utf8");
  return stamps;
}

/**
 * The indices of the discovered-input lines whose path no longer stats as recorded (changed,
 * gone, appeared, or not stat-able), in order, from one native call; every other line is
 * unchanged for certain. `stampsFile`: the entry's stamps of them (STAMPS_FILE), used when it is
 * a regular file of ours that nobody else can read or write (not a symlink) and holds exactly
 * as many lines. Undefined where the library is missing: the caller then stats every
 * line itself.
 */
export function findMovedLines(lines: readonly string[], stampsFile?: string): number[] | undefined {
  const library = load();
  if ("unavailable" in library) return undefined;
  if (lines.length === 0) return [];
  const moved = new Int32Array(lines.length);
  // Synchronous: koffi's worker-thread variant took 9-10 ms where this takes 5-6 (2,000
  // inputs, a fresh process), and the copy being restored waits for the verdict either way.
  // Negative: the file is not there or not safe to trust, or it does not hold as many
  // stamps: nothing is known for certain from it.
  let count = stampsFile === undefined ? -1 : library.movedInputsInFile(stampsFile, lines.length, moved);
  if (count < 0) {
    const stamps = encodeStamps(lines);
    count = library.movedInputs(stamps, stamps.length, lines.length, moved);
  }
  return count < 0 ? undefined : Array.from(moved.subarray(0, count));
}
