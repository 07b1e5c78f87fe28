import { createHash } from "node:crypto";
import { type BigIntStats, createReadStream, existsSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { replacePrivateFile } from "./private-file.js";

/** Each memo file keeps this many facts, most recently used first; a fact costs ~200 bytes. */
export const MAX_MEMO_ENTRIES = 20_000;

/**
 * Content hashes memoized by (device, inode, size, mtime ns, ctime ns), kept in a small JSON
 * index beside the cache: a warm launch must not re-read a 100 MB runtime binary. ctime is
 * in the stamp because it changes on every write even when mtime is set back by hand (not for
 * IMAGE_PURPOSE: see there).
 *
 * Bounded: a new fact about a file replaces the facts about its earlier versions, and past
 * MAX_MEMO_ENTRIES the least recently used go (recency is recorded when the memo is written
 * anyway, so a warm launch that computes nothing writes nothing).
 *
 * Facts about snapshots' discovered inputs (the purposes INPUT_PURPOSES) are kept in a file of
 * their own, read on their first use only: a warm launch whose inputs all stat as recorded
 * never needs them, and an app's 2,000 modules made the one memo 418 KB, which every launch
 * parsed (~10 ms in a fresh process) before it computed its key.
 */
export class FileHashIndex {
  readonly #general: MemoFile;
  readonly #inputs: MemoFile;

  constructor(cacheDir: string) {
    this.#general = new MemoFile(join(cacheDir, GENERAL_MEMO_FILE));
    this.#inputs = new MemoFile(join(cacheDir, INPUT_MEMO_FILE));
  }

  hashFile(path: string, purpose: "sha256" | typeof INPUT_PURPOSES.sha256 = "sha256"): Promise<string> {
    return this.memoize(path, purpose, () => hashFileContent(path));
  }

  /** Any fact derived from a file's bytes (its hash, the version a binary prints), kept
   * until the file changes. */
  async memoize(path: string, purpose: string, compute: () => Promise<string>): Promise<string> {
    const stamp = stampOf(path, purpose, statSync(path, { bigint: true }));
    const memo = this.#memoFor(purpose);
    return memo.recall(stamp) ?? memo.learn(stamp, await compute());
  }

  /** memoize for a small file read synchronously, from the lstat the caller made already (its
   * checks need one; a symlink is never followed). */
  memoizeSync(path: string, purpose: string, stat: BigIntStats, compute: () => string): string {
    const stamp = stampOf(path, purpose, stat);
    const memo = this.#memoFor(purpose);
    return memo.recall(stamp) ?? memo.learn(stamp, compute());
  }

  /**
   * Writes what changed, atomically (a torn index would only cost a re-hash). A memo that
   * cannot be written (a full or read-only disk) costs the next launch a re-hash, nothing
   * else: false then, never an exception.
   */
  async save(): Promise<boolean> {
    const saved = await Promise.all([this.#general.save(), this.#inputs.save()]);
    return saved.every(Boolean);
  }

  #memoFor(purpose: string): MemoFile {
    return purpose.startsWith(INPUT_PURPOSE_PREFIX) ? this.#inputs : this.#general;
  }
}

export const GENERAL_MEMO_FILE = "hashes.json";
export const INPUT_MEMO_FILE = "input-hashes.json";
/** The memo before discovered inputs had a file of their own: it holds their facts too. */
const RETIRED_MEMO_FILE = "file-hashes.json";

/** Removes the retired memo (for housekeeping): its facts are learned again where needed. */
export function removeRetiredMemo(cacheDir: string): string[] {
  const path = join(cacheDir, RETIRED_MEMO_FILE);
  if (!existsSync(path)) return [];
  rmSync(path, { force: true });
  return [RETIRED_MEMO_FILE];
}

const INPUT_PURPOSE_PREFIX = "input-";

/**
 * The sha256 of a cache entry's image file, checked by every lookup. Its stamp leaves ctime
 * out: each restore hard-links the images into a staging directory of its own and unlinks
 * them afterwards, which moves their ctime, so with it the memo never held and every lookup
 * re-hashed the images and rewrote the memo. A write still moves mtime; what ctime alone
 * would catch is a write whose mtime was set back on purpose, by the one user who may write
 * the entry (and its manifest) anyway.
 */
export const IMAGE_PURPOSE = "image-sha256";

/** The purposes of facts about discovered inputs: their bytes, a directory's listing. */
export const INPUT_PURPOSES = { sha256: "input-sha256", listing: "input-listing" } as const;

/** One memo file, read on first use. */
class MemoFile {
  readonly #path: string;
  #isLoaded = false;
  /** stamp -> value, in recency order (oldest first). */
  readonly #entries = new Map<string, string>();
  /** purpose + path -> its one current stamp. */
  readonly #stampOf = new Map<string, string>();
  readonly #used = new Set<string>();
  #isDirty = false;

  constructor(path: string) {
    this.#path = path;
  }

  recall(stamp: string): string | undefined {
    this.#load();
    this.#used.add(stamp);
    return this.#entries.get(stamp);
  }

  learn(stamp: string, value: string): string {
    this.#load();
    this.#remember(stamp, value);
    this.#isDirty = true;
    return value;
  }

  async save(): Promise<boolean> {
    if (!this.#isDirty) return true;
    try {
      replacePrivateFile(this.#path, JSON.stringify(await this.#boundedEntries()));
      this.#isDirty = false;
      return true;
    } catch {
      return false;
    }
  }

  #load(): void {
    if (this.#isLoaded) return;
    this.#isLoaded = true;
    try {
      const parsed: unknown = JSON.parse(readFileSync(this.#path, "utf8"));
      if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) {
        for (const [stamp, value] of Object.entries(parsed)) {
          if (typeof value === "string") this.#remember(stamp, value);
        }
      }
    } catch {
      // Missing or corrupt index: start empty, it is only a memo.
    }
  }

  /** A file's earlier versions will not come back as they were (their ctime is gone): a new
   * stamp for the same purpose and path replaces the old one. */
  #remember(stamp: string, value: string): void {
    const subject = stamp.slice(0, stamp.lastIndexOf("\0") + 1);
    const previous = this.#stampOf.get(subject);
    if (previous !== undefined && previous !== stamp) this.#entries.delete(previous);
    this.#stampOf.set(subject, stamp);
    this.#entries.set(stamp, value);
  }

  /** The entries to keep, oldest first: those used by this launch count as the newest.
   * lru-cache is loaded only when there are too many: importing it and sizing one for
   * MAX_MEMO_ENTRIES cost ~20 ms of the main thread, while the restore runs. */
  async #boundedEntries(): Promise<Record<string, string>> {
    if (this.#entries.size <= MAX_MEMO_ENTRIES) {
      const used = [...this.#used].filter((stamp) => this.#entries.has(stamp));
      const unused = [...this.#entries.keys()].filter((stamp) => !this.#used.has(stamp));
      return Object.fromEntries([...unused, ...used].map((stamp) => [stamp, this.#entries.get(stamp) ?? ""]));
    }
    const { LRUCache } = await import("lru-cache");
    const kept = new LRUCache<string, string>({ max: MAX_MEMO_ENTRIES });
    for (const [stamp, value] of this.#entries) if (!this.#used.has(stamp)) kept.set(stamp, value);
    for (const stamp of this.#used) {
      const value = this.#entries.get(stamp);
      if (value !== undefined) kept.set(stamp, value);
    }
    // rentries() walks from the least recently used: the order the file keeps.
    return Object.fromEntries(kept.rentries());
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

/** What identifies one version of a file: ctime changes on every write, even when mtime is
 * set back by hand. Not for IMAGE_PURPOSE (see there). */
function stampOf(path: string, purpose: string, stat: BigIntStats): string {
  const ctime = purpose === IMAGE_PURPOSE ? "" : `:${stat.ctimeNs}`;
  return `${purpose}\0${path}\0${stat.dev}:${stat.ino}:${stat.size}:${stat.mtimeNs}${ctime}`;
}
