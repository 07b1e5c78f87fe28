import { createHash, randomBytes } from "node:crypto";
import {
  chmodSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { open } from "node:fs/promises";
import { join } from "node:path";
import { encodeStamps, STAMPS_FILE } from "../inputs/native-stamps.js";
import { describeUnsafePath, describeUnsafeStat } from "./cache-dir.js";
import { type FileHashIndex, hashFileContent, IMAGE_PURPOSE } from "./file-hash.js";
import { type CacheKeyFields, diffKeyFields, IMAGE_FORMAT_VERSION } from "./key.js";
import { describeInvalidManifest, type Manifest } from "./manifest.js";
import { currentOwner, formatOwnerTag, isAbandoned, OWNER_TAG_SOURCE, parseOwnerTag } from "./owner-stamp.js";

export type { Manifest } from "./manifest.js";

export interface CacheEntry {
  readonly dir: string;
  readonly imagesDir: string;
  readonly manifest: Manifest;
}

export type LookupOutcome =
  | { readonly hit: true; readonly entry: CacheEntry }
  | { readonly hit: false; readonly reason: "missing" }
  | {
      readonly hit: false;
      readonly reason: "refused" | "corrupt";
      readonly detail: string;
      readonly dir: string;
    };

export type CommitOutcome =
  | { readonly isCommitted: true; readonly entry: CacheEntry }
  /** Another launch committed the same key first (and `replace` was not asked). */
  | { readonly isCommitted: false };

const ENTRY_MODE_BITS = 0o077;

/** A pending or half-removed directory whose owner cannot be judged from here (another PID
 * namespace, or named by an older warmstart) is cleared after this: no dump takes as long. */
const ABANDONED_AGE_MS = 60 * 60_000;

// `.pending-<key prefix>-<owner>-<random>`: a dump in progress. `.evicted-...`: an entry
// being deleted. `.replaced-<full key>-...`: the entry a refresh is replacing, renamed back
// if the refresh dies before its new entry is in place.
// An import's pending directory is `.pending-import-...`: its key is known only once read.
const TRANSIENT = new RegExp(`^\\.(pending|evicted|replaced)-([0-9a-z]+)-(${OWNER_TAG_SOURCE})-[0-9a-f]+$`);
const LEGACY_TRANSIENT = /^\.(?:pending|evicted)-[0-9a-f]+-\d+-[0-9a-f]+$/;

// Page files are large and only read by CRIU; their size is checked on every lookup and
// their hash by `warmstart verify`. The metadata images are small and a flipped byte there
// makes CRIU misplace memory, so they are hashed on every lookup.
function isPagesFile(name: string): boolean {
  return /^pages-\d+\.img$/.test(name);
}

export class EntryStore {
  readonly cacheDir: string;
  readonly root: string;

  constructor(cacheDir: string) {
    this.cacheDir = cacheDir;
    this.root = join(cacheDir, `v${IMAGE_FORMAT_VERSION}`);
  }

  entryDir(key: string): string {
    return join(this.root, key);
  }

  /**
   * Whether the entry can be restored. Another launch, `rm` or `prune` may remove the entry
   * while this runs: a file that vanishes mid-way makes the outcome "missing", never an
   * exception (a launch must start whatever the cache does).
   */
  async lookup(key: string, hashes?: FileHashIndex): Promise<LookupOutcome> {
    const dir = this.entryDir(key);
    const inode = inodeOf(dir);
    if (inode === undefined) return { hit: false, reason: "missing" };
    let outcome: LookupOutcome;
    try {
      outcome = inspectEntry(key, dir, hashes);
    } catch (error) {
      outcome = { hit: false, reason: "corrupt", detail: `${dir} cannot be read (${messageOf(error)})`, dir };
    }
    // A verdict on an entry that was removed or replaced meanwhile is about nothing.
    if (!outcome.hit && inodeOf(dir) !== inode) return { hit: false, reason: "missing" };
    return outcome;
  }

  /**
   * A private directory for one dump, named after its owner. Lookups never read it; `commit`
   * renames it into place only when complete, so a crash or kill mid-dump leaves no entry.
   */
  createPending(key: string): { dir: string; imagesDir: string } {
    mkdirSync(this.root, { recursive: true, mode: 0o700 });
    const dir = join(this.root, transientName("pending", key.slice(0, 16)));
    mkdirSync(join(dir, "images"), { recursive: true, mode: 0o700 });
    return { dir, imagesDir: join(dir, "images") };
  }

  /**
   * Hashes and seals a pending dump, then renames it into place. With `replace` (a refresh),
   * an existing entry of the key is swapped out only once the new one is complete, and put
   * back by `removeAbandoned` if this process dies between the two renames. The fsyncs run
   * in the thread pool: the event loop relays the app's output meanwhile.
   */
  async commit(
    pendingDir: string,
    manifest: Omit<Manifest, "files" | "imageBytes">,
    options: { readonly replace?: boolean } = {},
  ): Promise<CommitOutcome> {
    const imagesDir = join(pendingDir, "images");
    const files: Record<string, { bytes: number; sha256: string }> = {};
    let imageBytes = 0;
    for (const name of readdirSync(imagesDir).sort()) {
      const path = join(imagesDir, name);
      chmodSync(path, 0o600);
      const bytes = lstatSync(path).size;
      files[name] = { bytes, sha256: await hashFileContent(path) };
      imageBytes += bytes;
      await fsyncPath(path);
    }
    const full: Manifest = { ...manifest, files, imageBytes };
    const manifestPath = join(pendingDir, "manifest.json");
    writeFileSync(manifestPath, `${JSON.stringify(full, null, 2)}\n`, { mode: 0o600 });
    await fsyncPath(manifestPath);
    if (full.discovered.files.length > 0) {
      const stampsPath = join(pendingDir, STAMPS_FILE);
      writeFileSync(stampsPath, encodeStamps(full.discovered.files), { mode: 0o600 });
      await fsyncPath(stampsPath);
    }
    await fsyncPath(imagesDir);
    await fsyncPath(pendingDir);
    const dir = this.entryDir(manifest.key);
    const replaced = options.replace ? this.#moveAside(manifest.key) : undefined;
    try {
      renameSync(pendingDir, dir);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "ENOTEMPTY" || code === "EEXIST") {
        rmSync(pendingDir, { recursive: true, force: true });
        if (replaced) rmSync(replaced, { recursive: true, force: true });
        return { isCommitted: false };
      }
      if (replaced) renameBack(replaced, dir);
      throw error;
    }
    if (replaced) rmSync(replaced, { recursive: true, force: true });
    await fsyncPath(this.root);
    return { isCommitted: true, entry: { dir, imagesDir: join(dir, "images"), manifest: full } };
  }

  /** Removes an entry so that no lookup can see half of it: rename away first, then delete.
   * True when there was an entry to remove. */
  evict(key: string): boolean {
    const doomed = join(this.root, transientName("evicted", key.slice(0, 16)));
    try {
      renameSync(this.entryDir(key), doomed);
    } catch {
      return false;
    }
    rmSync(doomed, { recursive: true, force: true });
    return true;
  }

  /**
   * Why a key missed, against the newest entry for the same executable and directory: "env FOO changed",
   * "executableSha256 changed"... Read only on a miss, which is a cold start anyway.
   */
  explainMiss(fields: CacheKeyFields): string {
    let newest: Manifest | undefined;
    for (const name of this.#listKeys()) {
      try {
        const manifest = JSON.parse(readFileSync(join(this.root, name, "manifest.json"), "utf8")) as Manifest;
        // Related = same executable in the same directory; arguments are one of the fields.
        const isRelated =
          manifest.fields.executablePath === fields.executablePath && manifest.fields.cwd === fields.cwd;
        if (isRelated && (!newest || manifest.createdAt > newest.createdAt)) {
          newest = manifest;
        }
      } catch {
        // Unreadable entries explain nothing.
      }
    }
    if (!newest) return "no snapshot of this command yet";
    const changes = diffKeyFields(newest.fields, fields);
    return changes.length > 0 ? changes.join(", ") : "no snapshot with this key";
  }

  hasEntry(key: string): boolean {
    try {
      lstatSync(this.entryDir(key));
      return true;
    } catch {
      return false;
    }
  }

  #listKeys(): string[] {
    try {
      return readdirSync(this.root).filter((name) => /^[0-9a-f]{64}$/.test(name));
    } catch {
      return [];
    }
  }

  discardPending(pendingDir: string): void {
    rmSync(pendingDir, { recursive: true, force: true });
  }

  /**
   * Clears what launches that are gone left mid-way: pending dumps and half-deleted entries
   * are deleted; an entry a dead refresh had set aside is put back when nothing replaced it.
   * Returns the names it handled.
   */
  removeAbandoned(): string[] {
    let names: string[];
    try {
      names = readdirSync(this.root);
    } catch {
      return [];
    }
    const handled: string[] = [];
    for (const name of names) {
      const path = join(this.root, name);
      const match = TRANSIENT.exec(name);
      const isLegacy = !match && LEGACY_TRANSIENT.test(name);
      if (!match && !isLegacy) continue;
      if (!isAbandoned(match ? parseOwnerTag(match[3] ?? "") : undefined, ageMs(path), ABANDONED_AGE_MS))
        continue;
      const key = match?.[2] ?? "";
      if (match?.[1] === "replaced" && !this.hasEntry(key)) renameBack(path, this.entryDir(key));
      else rmSync(path, { recursive: true, force: true });
      handled.push(name);
    }
    return handled;
  }

  /** Renames the key's entry aside for a replacement; undefined when there is none. */
  #moveAside(key: string): string | undefined {
    const aside = join(this.root, transientName("replaced", key));
    try {
      renameSync(this.entryDir(key), aside);
      return aside;
    } catch {
      return undefined;
    }
  }
}

function inodeOf(path: string): number | undefined {
  try {
    return lstatSync(path).ino;
  } catch {
    return undefined;
  }
}

/**
 * Whether the entry is sound: ours and private, its manifest valid, its image files those the
 * manifest lists, of their sizes, the small ones (all but the pages) of their sha256. With
 * `hashes` (a launch's lookup), a small file's hash is re-read only when the file changed
 * since it was last hashed (its ctime moved): ~28 files read and hashed cost every lookup 2-3
 * ms. Without it (`verify`), everything is read again.
 */
function inspectEntry(key: string, dir: string, hashes: FileHashIndex | undefined): LookupOutcome {
  const refuse = (detail: string): LookupOutcome => ({ hit: false, reason: "refused", detail, dir });
  const corrupt = (detail: string): LookupOutcome => ({ hit: false, reason: "corrupt", detail, dir });
  const unsafeDir = describeUnsafePath(dir, "directory", ENTRY_MODE_BITS);
  if (unsafeDir) return refuse(unsafeDir);
  const manifestPath = join(dir, "manifest.json");
  const unsafeManifest = describeUnsafePath(manifestPath, "file", ENTRY_MODE_BITS);
  if (unsafeManifest)
    return unsafeManifest.includes("cannot be read") ? corrupt(unsafeManifest) : refuse(unsafeManifest);
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(manifestPath, "utf8"));
  } catch (error) {
    if (error instanceof SyntaxError) return corrupt(`${manifestPath} is not valid JSON (${error.message})`);
    throw error;
  }
  const invalid = describeInvalidManifest(parsed, key);
  if (invalid) return corrupt(`${manifestPath} cannot be used: ${invalid}`);
  const manifest = parsed as Manifest;
  if (manifest.formatVersion !== IMAGE_FORMAT_VERSION)
    return corrupt(`${manifestPath} is of format ${manifest.formatVersion}`);
  const imagesDir = join(dir, "images");
  const unsafeImages = describeUnsafePath(imagesDir, "directory", ENTRY_MODE_BITS);
  if (unsafeImages) return refuse(unsafeImages);
  const present = new Set(readdirSync(imagesDir));
  for (const name of present) {
    if (!(name in manifest.files)) return refuse(`${join(imagesDir, name)} is not listed in the manifest`);
  }
  for (const [name, expected] of Object.entries(manifest.files)) {
    const path = join(imagesDir, name);
    if (!present.has(name)) return corrupt(`${path} is missing`);
    const stat = lstatSync(path, { bigint: true });
    const unsafe = describeUnsafeStat(path, stat, "file", ENTRY_MODE_BITS);
    if (unsafe) return refuse(unsafe);
    const bytes = Number(stat.size);
    if (bytes !== expected.bytes)
      return corrupt(`${path} has ${bytes} bytes, the manifest says ${expected.bytes}`);
    if (isPagesFile(name)) continue;
    const sha256 = hashes
      ? hashes.memoizeSync(path, IMAGE_PURPOSE, stat, () => hashSmallFile(path))
      : hashSmallFile(path);
    if (sha256 !== expected.sha256) return corrupt(`${path} does not match its sha256 in the manifest`);
  }
  return { hit: true, entry: { dir, imagesDir, manifest } };
}

function transientName(kind: "pending" | "evicted" | "replaced", key: string): string {
  return `.${kind}-${key}-${formatOwnerTag(currentOwner())}-${randomBytes(4).toString("hex")}`;
}

function renameBack(aside: string, dir: string): void {
  try {
    renameSync(aside, dir);
  } catch {
    // Another entry took the place meanwhile; the aside copy goes with the next cleanup.
  }
}

function ageMs(path: string): number {
  try {
    return Date.now() - lstatSync(path).mtimeMs;
  } catch {
    return 0;
  }
}

/** Metadata images are a few KB: one read beats a stream per file on the warm path. */
function hashSmallFile(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

export async function fsyncPath(path: string): Promise<void> {
  const handle = await open(path, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
