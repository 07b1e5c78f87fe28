import { existsSync } from "node:fs";
import Module from "node:module";
import { isAbsolute, join, sep } from "node:path";
import { MAX_PATHS_BYTES } from "../protocol.js";

/**
 * Records the paths whose absence decided which module a `require` loaded: for
 * `require("lib")`, the `node_modules/lib` of every directory nearer the requiring file than
 * the one that had it. Creating one (an `npm install` in a sub-project) changes what the app
 * loads without touching a file it read: fanotify sees no open of a file that does not exist,
 * so only the resolver can tell. Checked once per lookup that found a module, from the cold
 * start (the runtime is injected when the launch is snapshotted) until the checkpoint, when
 * the returned function puts the resolver back; ES module imports resolve elsewhere and are
 * not seen.
 */
export function recordAbsentModules(send: (paths: readonly string[]) => void): () => void {
  const resolver = Module as unknown as {
    _findPath: (request: string, paths: readonly string[] | null, isMain: boolean) => string | false;
  };
  const original = resolver._findPath;
  const seen = new Set<string>();
  let batch: string[] = [];
  const flush = () => {
    const paths = batch;
    batch = [];
    for (const chunk of chunks(paths)) send(chunk);
  };
  resolver._findPath = function findPath(request, paths, isMain) {
    const found = original.call(this, request, paths, isMain);
    if (typeof found !== "string" || !paths || request.startsWith(".") || isAbsolute(request)) return found;
    const name = request.startsWith("@")
      ? request.split("/").slice(0, 2).join("/")
      : (request.split("/")[0] ?? "");
    for (const dir of paths) {
      const candidate = join(dir, name);
      if (found === candidate || found.startsWith(`${candidate}${sep}`)) break;
      if (seen.has(candidate)) continue;
      seen.add(candidate);
      if (existsSync(candidate)) continue;
      if (batch.length === 0) setImmediate(flush);
      batch.push(candidate);
    }
    return found;
  };
  return () => {
    resolver._findPath = original;
  };
}

function* chunks(paths: readonly string[]): Generator<string[]> {
  let chunk: string[] = [];
  let bytes = 0;
  for (const path of paths) {
    const size = Buffer.byteLength(path) + 4;
    if (chunk.length > 0 && bytes + size > MAX_PATHS_BYTES) {
      yield chunk;
      chunk = [];
      bytes = 0;
    }
    if (size > MAX_PATHS_BYTES) continue;
    chunk.push(path);
    bytes += size;
  }
  if (chunk.length > 0) yield chunk;
}
