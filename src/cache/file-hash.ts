import { createHash } from "node:crypto";
import { createReadStream, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * Content hashes memoized by (device, inode, size, mtime ns, ctime ns), kept in a small JSON
 * index beside the cache: a warm launch must not re-read a 100 MB runtime binary. ctime is
 * in the stamp because it changes on every write even when mtime is set back by hand.
 */
export class FileHashIndex {
  readonly #path: string;
  #entries: Record<string, string> = {};
  #isDirty = false;

  constructor(cacheDir: string) {
    this.#path = join(cacheDir, "file-hashes.json");
    try {
      const parsed: unknown = JSON.parse(readFileSync(this.#path, "utf8"));
      if (parsed && typeof parsed === "object") this.#entries = parsed as Record<string, string>;
    } catch {
      // Missing or corrupt index: start empty, it is only a memo.
    }
  }

  hashFile(path: string): Promise<string> {
    return this.memoize(path, "sha256", () => hashFileContent(path));
  }

  /** Any fact derived from a file's bytes (its hash, the version a binary prints), kept
   * until the file changes. */
  async memoize(path: string, purpose: string, compute: () => Promise<string>): Promise<string> {
    const stat = statSync(path, { bigint: true });
    const stamp = `${purpose}\0${path}\0${stat.dev}:${stat.ino}:${stat.size}:${stat.mtimeNs}:${stat.ctimeNs}`;
    const known = this.#entries[stamp];
    if (known !== undefined) return known;
    const value = await compute();
    this.#entries[stamp] = value;
    this.#isDirty = true;
    return value;
  }

  /** Writes the index if it changed (atomically: a torn index would only cost a re-hash). */
  save(): void {
    if (!this.#isDirty) return;
    const tmp = `${this.#path}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(this.#entries), { mode: 0o600 });
    renameSync(tmp, this.#path);
    this.#isDirty = false;
  }
}

export function hashFileContent(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash("sha256");
    createReadStream(path)
      .on("data", (chunk) => hash.update(chunk))
      .on("error", reject)
      .on("end", () => resolve(hash.digest("hex")));
  });
}
