// One check of a snapshot's discovered inputs in a fresh process, as a warm launch makes it
// (bench/input-validation.ts runs this):
//   node check-inputs-once.js <lines.json> <stamps file> <cache dir> stamps-file|encoded|statSync
// prints the milliseconds findChangedInput took: with the native library reading the entry's
// stamps file (what a warm launch does), with it encoding the lines itself, or with a statSync
// per input (no library). koffi is loaded before the clock starts, as the warm path has loaded
// it for the restore's pipes by then; the library's own load counts.
import { readFileSync } from "node:fs";
import { FileHashIndex } from "../src/cache/file-hash.js";
import { loadKoffiNative } from "../src/exec/koffi-native.js";
import { findChangedInput } from "../src/inputs/discovered-inputs.js";

const [linesFile = "", stampsFile = "", cacheDir = "", mode = "stamps-file"] = process.argv.slice(2);
const files = JSON.parse(readFileSync(linesFile, "utf8")) as string[];
loadKoffiNative();
const started = performance.now();
const changed = await findChangedInput({ mode: "fanotify", files }, new FileHashIndex(cacheDir), {
  ...(mode === "stamps-file" ? { stampsFile } : {}),
  ...(mode === "statSync" ? { findMoved: () => undefined } : {}),
});
const ms = performance.now() - started;
if (changed) throw new Error(`${changed.path} ${changed.how}`);
process.stdout.write(`${ms}\n`);
