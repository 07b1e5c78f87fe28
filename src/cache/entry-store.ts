import { createHash, randomBytes } from "node:crypto";
import {
  chmodSync,
  closeSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { describeUnsafePath } from "./cache-dir.js";
import { hashFileContent } from "./file-hash.js";
import { isProcessAlive } from "./is-process-alive.js";
import { type CacheKeyFields, diffKeyFields, IMAGE_FORMAT_VERSION } from "./key.js";

/** What a cache entry says about itself. Written once, when the entry is committed. */
export interface Manifest {
  readonly formatVersion: number;
  readonly key: string;
  readonly fields: CacheKeyFields;
  /** The command as the user typed it, for `ls` and messages. */
  readonly command: readonly string[];
  /** The app's PID at dump time; it keeps it inside the PID namespace it is restored into. */
  readonly pid: number;
  /** The app's fd 0-2 at dump time ("pipe:[INODE]"), handed fresh pipes on restore. */
  readonly stdio: readonly string[];
  /** Every file under images/: size and sha256, checked before a restore. */
  readonly files: Readonly<Record<string, { readonly bytes: number; readonly sha256: string }>>;
  readonly imageBytes: number;
  readonly createdAt: string;
  readonly coldReadyMs: number;
  readonly checkpointMs: number;
}

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

const ENTRY_MODE_BITS = 0o077;

// Page files are large and only read by CRIU; their size is checked on every lookup and
// their hash by `warmstart verify`. The metadata images are small and a flipped byte there
// makes CRIU misplace memory, so they are hashed on every lookup.
function isPagesFile(name: string): boolean {
  return /^pages-\d+\.img$/.test(name);
}

export class EntryStore {
  readonly root: string;

  constructor(cacheDir: string) {
    this.root = join(cacheDir, `v${IMAGE_FORMAT_VERSION}`);
  }

  entryDir(key: string): string {
    return join(this.root, key);
  }

  async lookup(key: string): Promise<LookupOutcome> {
    const dir = this.entryDir(key);
    try {
      lstatSync(dir);
    } catch {
      return { hit: false, reason: "missing" };
    }
    const refuse = (detail: string): LookupOutcome => ({ hit: false, reason: "refused", detail, dir });
    const corrupt = (detail: string): LookupOutcome => ({ hit: false, reason: "corrupt", detail, dir });
    const unsafeDir = describeUnsafePath(dir, "directory", ENTRY_MODE_BITS);
    if (unsafeDir) return refuse(unsafeDir);
    const manifestPath = join(dir, "manifest.json");
    const unsafeManifest = describeUnsafePath(manifestPath, "file", ENTRY_MODE_BITS);
    if (unsafeManifest)
      return unsafeManifest.includes("cannot be read") ? corrupt(unsafeManifest) : refuse(unsafeManifest);
    let manifest: Manifest;
    try {
      manifest = JSON.parse(readFileSync(manifestPath, "utf8")) as Manifest;
    } catch (error) {
      return corrupt(`${manifestPath} is not valid JSON (${(error as Error).message})`);
    }
    if (manifest.key !== key || manifest.formatVersion !== IMAGE_FORMAT_VERSION || !manifest.files) {
      return corrupt(`${manifestPath} does not describe entry ${key}`);
    }
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
      const unsafe = describeUnsafePath(path, "file", ENTRY_MODE_BITS);
      if (unsafe) return refuse(unsafe);
      const bytes = lstatSync(path).size;
      if (bytes !== expected.bytes)
        return corrupt(`${path} has ${bytes} bytes, the manifest says ${expected.bytes}`);
      if (!isPagesFile(name) && hashSmallFile(path) !== expected.sha256) {
        return corrupt(`${path} does not match its sha256 in the manifest`);
      }
    }
    return { hit: true, entry: { dir, imagesDir, manifest } };
  }

  /**
   * A private directory for one dump. Lookups never read it; `commit` renames it into place
   * only when complete, so a crash or kill mid-dump leaves no entry behind.
   */
  createPending(key: string): { dir: string; imagesDir: string } {
    mkdirSync(this.root, { recursive: true, mode: 0o700 });
    const dir = join(
      this.root,
      `.pending-${key.slice(0, 16)}-${process.pid}-${randomBytes(4).toString("hex")}`,
    );
    mkdirSync(join(dir, "images"), { recursive: true, mode: 0o700 });
    return { dir, imagesDir: join(dir, "images") };
  }

  /** Hashes and seals a pending dump, then renames it into place. False if another launch won. */
  async commit(
    pendingDir: string,
    manifest: Omit<Manifest, "files" | "imageBytes">,
  ): Promise<CacheEntry | undefined> {
    const imagesDir = join(pendingDir, "images");
    const files: Record<string, { bytes: number; sha256: string }> = {};
    let imageBytes = 0;
    for (const name of readdirSync(imagesDir).sort()) {
      const path = join(imagesDir, name);
      chmodSync(path, 0o600);
      const bytes = lstatSync(path).size;
      files[name] = { bytes, sha256: await hashFileContent(path) };
      imageBytes += bytes;
      fsyncPath(path);
    }
    const full: Manifest = { ...manifest, files, imageBytes };
    const manifestPath = join(pendingDir, "manifest.json");
    writeFileSync(manifestPath, `${JSON.stringify(full, null, 2)}\n`, { mode: 0o600 });
    fsyncPath(manifestPath);
    fsyncPath(imagesDir);
    fsyncPath(pendingDir);
    const dir = this.entryDir(manifest.key);
    try {
      renameSync(pendingDir, dir);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "ENOTEMPTY" || code === "EEXIST") {
        rmSync(pendingDir, { recursive: true, force: true });
        return undefined;
      }
      throw error;
    }
    fsyncPath(this.root);
    return { dir, imagesDir: join(dir, "images"), manifest: full };
  }

  /** Removes an entry so that no lookup can see half of it: rename away first, then delete.
   * True when there was an entry to remove. */
  evict(key: string): boolean {
    const dir = this.entryDir(key);
    const doomed = join(
      this.root,
      `.evicted-${key.slice(0, 16)}-${process.pid}-${randomBytes(4).toString("hex")}`,
    );
    try {
      renameSync(dir, doomed);
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
   * Deletes pending dumps and half-deleted entries whose launcher is gone (killed mid-dump
   * or mid-eviction). Returns the names it removed.
   */
  removeAbandoned(): string[] {
    let names: string[];
    try {
      names = readdirSync(this.root);
    } catch {
      return [];
    }
    const removed: string[] = [];
    for (const name of names) {
      const match = /^\.(?:pending|evicted)-[0-9a-f]+-(\d+)-/.exec(name);
      if (match && !isProcessAlive(Number(match[1]))) {
        rmSync(join(this.root, name), { recursive: true, force: true });
        removed.push(name);
      }
    }
    return removed;
  }
}

/** Metadata images are a few KB: one read beats a stream per file on the warm path. */
function hashSmallFile(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

export function fsyncPath(path: string): void {
  const fd = openSync(path, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
