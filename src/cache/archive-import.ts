import { createHash } from "node:crypto";
import { createWriteStream, mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { extract as createExtract, type Header } from "tar-stream";
import { encodeStamps, STAMPS_FILE } from "../inputs/native-stamps.js";
import {
  CPUINFO_MEMBER,
  DOCUMENT_MEMBER,
  ENTRY_HOST_DIR,
  IMAGES_PREFIX,
  SIGNATURE_MEMBER,
} from "./archive-export.js";
import {
  ArchiveLimitError,
  ByteLimit,
  createZstdDecompressor,
  decryptReadable,
  peekHead,
  pipeThrough,
  sniffLayer,
} from "./archive-stages.js";
import { type EntryStore, fsyncPath, type Manifest } from "./entry-store.js";
import type { CacheKeyFields } from "./key.js";
import { MAX_DOCUMENT_BYTES, parseDocument, type SnapshotDocument } from "./snapshot-document.js";
import { parseSignature, verifyDocumentSignature } from "./snapshot-signature.js";

/** Why an archive was refused. kebab-case and stable: tests and scripts match on it. */
export type ImportRefusal =
  | "unsafe-member" // absolute path, "..", a link, a device, a directory, a FIFO
  | "unexpected-member" // a member the manifest does not list, out of order, or twice
  | "size-mismatch"
  | "digest-mismatch"
  | "too-large" // over maxArchiveBytes, compressed or not
  | "truncated" // the stream ended before the archive did
  | "bad-document" // snapshot.json missing, unparsable, or inconsistent
  | "unsigned"
  | "untrusted-key"
  | "bad-signature"
  | "decrypt-failed" // encrypted, and no configured identity opens it
  | "not-admitted" // the caller's check (host compatibility) said no
  | "already-present" // the cache has this entry already; it was kept
  | "write-failed" // the cache's disk refused (full, read-only)
  | "bad-archive"; // not a tar, or damaged compression or ciphertext

export type ImportOutcome =
  | {
      readonly imported: true;
      readonly key: string;
      readonly entryDir: string;
      readonly document: SnapshotDocument;
      readonly signer: string | null;
      readonly archiveBytes: number;
    }
  | {
      readonly imported: false;
      readonly reason: ImportRefusal;
      readonly member?: string;
      readonly detail: string;
    };

/** What the caller decides once the document is verified, before any image is read. */
export type Admission =
  | {
      readonly isAdmitted: true;
      readonly key: string;
      /** The base key the entry is filed under on this host. */
      readonly baseKey: string;
      readonly fields: CacheKeyFields;
    }
  | { readonly isAdmitted: false; readonly detail: string };

export interface ImportOptions {
  readonly store: EntryStore;
  /** Public keys ("ed25519:...") whose signatures are accepted. */
  readonly trustedKeys: readonly string[];
  /** Accept unsigned or untrusted snapshots (the user said so explicitly). */
  readonly isUnsignedAllowed: boolean;
  /** age identities for encrypted archives. */
  readonly identities: readonly string[];
  /** Neither the archive nor what it decompresses to may exceed this. */
  readonly maxArchiveBytes: number;
  /** The key the entry lands under (this host's), or a refusal; host compatibility lives here. */
  readonly admit: (document: SnapshotDocument, cpuinfoImage: Buffer | undefined) => Promise<Admission>;
  readonly env?: NodeJS.ProcessEnv;
  readonly onProgress?: (doneBytes: number, totalBytes: number) => void;
}

/** A refusal raised from inside the stream; turned into an outcome at the edge. */
class Refusal extends Error {
  constructor(
    readonly reason: ImportRefusal,
    readonly detail: string,
    readonly member?: string,
  ) {
    super(detail);
  }
}

/**
 * Reads an archive (plain tar, zstd, or age-encrypted) into the store. Every member is
 * checked before a byte of it is written; images are written into a private pending directory
 * on the cache's filesystem, hashed as they land, fsynced, and renamed into place only when
 * the archive ended cleanly. Any refusal or failure removes the pending directory: the cache
 * is as it was.
 */
export async function importArchive(input: Readable, options: ImportOptions): Promise<ImportOutcome> {
  const staging = createStaging(options.store);
  let archiveBytes = 0;
  try {
    const raw = pipeThrough(
      input,
      new ByteLimit(options.maxArchiveBytes, "the archive", (bytes) => {
        archiveBytes = bytes;
      }),
    );
    let stream = raw;
    let layer = sniffLayer(await peekHead(stream, 32));
    if (layer === "age") {
      if (options.identities.length === 0) {
        throw new Refusal(
          "decrypt-failed",
          "the archive is encrypted and no identity is configured (--identity)",
        );
      }
      try {
        stream = await decryptReadable(stream, options.identities);
      } catch (error) {
        throw new Refusal(
          "decrypt-failed",
          `no configured identity decrypts the archive (${(error as Error).message})`,
        );
      }
      layer = sniffLayer(await peekHead(stream, 32));
    }
    if (layer === "zstd") stream = pipeThrough(stream, createZstdDecompressor(options.env));
    const reader = new MemberReader(staging, options);
    const extract = createExtract();
    extract.on("entry", (header, member, next) => {
      // tar-stream's members are streamx readables, which Node's pipeline accepts.
      reader.accept(header, member as unknown as Readable).then(
        () => next(),
        (error: unknown) => extract.destroy(error as Error),
      );
    });
    await pipeline(stream, new ByteLimit(options.maxArchiveBytes, "the unpacked archive"), extract);
    const done = reader.finish();
    const entryDir = await commitStaging(options.store, staging, done.key);
    return {
      imported: true,
      key: done.key,
      entryDir,
      document: done.document,
      signer: done.signer,
      archiveBytes,
    };
  } catch (error) {
    rmSync(staging, { recursive: true, force: true });
    return toRefusal(error);
  }
}

function toRefusal(error: unknown): ImportOutcome {
  if (error instanceof Refusal) {
    return {
      imported: false,
      reason: error.reason,
      detail: error.detail,
      ...(error.member ? { member: error.member } : {}),
    };
  }
  const message = error instanceof Error ? error.message : String(error);
  const code = (error as NodeJS.ErrnoException).code;
  if (error instanceof ArchiveLimitError) return { imported: false, reason: "too-large", detail: message };
  if (code === "ENOSPC" || code === "EDQUOT" || code === "EROFS" || code === "EIO") {
    return {
      imported: false,
      reason: "write-failed",
      detail: `the cache's disk refused a write (${code}): ${message}`,
    };
  }
  if (/Unexpected end of data|truncated|premature|unexpected end/i.test(message)) {
    return { imported: false, reason: "truncated", detail: `the archive ends early (${message})` };
  }
  return { imported: false, reason: "bad-archive", detail: message };
}

/** A pending directory named after its owner, which prune clears if the import dies. */
function createStaging(store: EntryStore): string {
  return store.createPending("import").dir;
}

async function commitStaging(store: EntryStore, staging: string, key: string): Promise<string> {
  for (const sub of ["images", ENTRY_HOST_DIR, ""]) await fsyncPath(join(staging, sub));
  const entryDir = store.entryDir(key);
  try {
    renameSync(staging, entryDir);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOTEMPTY" || code === "EEXIST") {
      throw new Refusal("already-present", `the cache already has entry ${key.slice(0, 12)}; it was kept`);
    }
    throw error;
  }
  await fsyncPath(store.root);
  return entryDir;
}

/**
 * The members in the order the exporter writes them (see archive-export.ts), each checked
 * against what came before: the document decides which images may follow and their sizes
 * and digests; nothing unlisted is ever written.
 */
class MemberReader {
  #document: SnapshotDocument | undefined;
  #documentBytes: Buffer | undefined;
  #signer: string | null = null;
  #admittedKey: string | undefined;
  #isSignatureSeen = false;
  #cpuinfo: Buffer | undefined;
  readonly #remaining = new Map<string, { bytes: number; sha256: string }>();
  #doneBytes = 0;

  constructor(
    readonly staging: string,
    readonly options: ImportOptions,
  ) {}

  async accept(header: Header, member: Readable): Promise<void> {
    const name = header.name;
    checkMemberSafety(header);
    if (!this.#documentBytes) {
      if (name !== DOCUMENT_MEMBER)
        throw new Refusal("bad-document", `the archive does not start with ${DOCUMENT_MEMBER}`, name);
      if (header.size === undefined || header.size > MAX_DOCUMENT_BYTES) {
        throw new Refusal("too-large", `${DOCUMENT_MEMBER} is over ${MAX_DOCUMENT_BYTES} bytes`, name);
      }
      this.#documentBytes = await readSmall(member, MAX_DOCUMENT_BYTES);
      const parsed = parseDocument(this.#documentBytes);
      if (!parsed.isValid)
        throw new Refusal(
          "bad-document",
          `${DOCUMENT_MEMBER} is not a snapshot document: ${parsed.detail}`,
          name,
        );
      this.#document = parsed.document;
      if (this.#document.manifest.imageBytes > this.options.maxArchiveBytes) {
        throw new Refusal(
          "too-large",
          `the images add up to ${this.#document.manifest.imageBytes} bytes, over the limit of ${this.options.maxArchiveBytes}`,
          name,
        );
      }
      for (const [file, expected] of Object.entries(this.#document.manifest.files)) {
        this.#remaining.set(`${IMAGES_PREFIX}${file}`, expected);
      }
      return;
    }
    const document = this.#document as SnapshotDocument;
    if (!this.#isSignatureSeen) {
      this.#isSignatureSeen = true;
      const signature =
        name === SIGNATURE_MEMBER ? parseSignature(await readSmall(member, 64 * 1024)) : undefined;
      const verdict = verifyDocumentSignature(
        this.#documentBytes,
        signature,
        this.options.trustedKeys,
        this.options.isUnsignedAllowed,
      );
      if (!verdict.isTrusted) throw new Refusal(verdict.reason, verdict.detail, SIGNATURE_MEMBER);
      this.#signer = verdict.signer;
      if (name === SIGNATURE_MEMBER) return;
    }
    if (name === CPUINFO_MEMBER && document.cpuinfoSha256 !== null && this.#cpuinfo === undefined) {
      this.#cpuinfo = await readSmall(member, 64 * 1024);
      if (sha256(this.#cpuinfo) !== document.cpuinfoSha256) {
        throw new Refusal(
          "digest-mismatch",
          `${CPUINFO_MEMBER} does not match its sha256 in ${DOCUMENT_MEMBER}`,
          name,
        );
      }
      return;
    }
    if (this.#admittedKey === undefined) await this.#admit(document);
    const expected = this.#remaining.get(name);
    if (!expected) {
      throw new Refusal("unexpected-member", `${name} is not listed in the manifest (or came twice)`, name);
    }
    if (header.size !== expected.bytes) {
      throw new Refusal(
        "size-mismatch",
        `${name} has ${header.size} bytes, the manifest says ${expected.bytes}`,
        name,
      );
    }
    this.#remaining.delete(name);
    await this.#writeImage(name, member, expected);
  }

  async #admit(document: SnapshotDocument): Promise<void> {
    if (document.cpuinfoSha256 !== null && this.#cpuinfo === undefined) {
      throw new Refusal(
        "bad-document",
        `${DOCUMENT_MEMBER} names a ${CPUINFO_MEMBER} the archive does not hold`,
        CPUINFO_MEMBER,
      );
    }
    const admission = await this.options.admit(document, this.#cpuinfo);
    if (!admission.isAdmitted) throw new Refusal("not-admitted", admission.detail);
    if (this.options.store.hasEntry(admission.key)) {
      throw new Refusal(
        "already-present",
        `the cache already has entry ${admission.key.slice(0, 12)}; it was kept`,
      );
    }
    this.#admittedKey = admission.key;
    const manifest: Manifest = {
      ...document.manifest,
      key: admission.key,
      baseKey: admission.baseKey,
      fields: admission.fields,
    };
    const hostDir = join(this.staging, ENTRY_HOST_DIR);
    mkdirSync(hostDir, { mode: 0o700 });
    await writeSynced(join(hostDir, "host.json"), Buffer.from(`${JSON.stringify(document.host, null, 2)}\n`));
    if (this.#cpuinfo) await writeSynced(join(hostDir, CPUINFO_MEMBER), this.#cpuinfo);
    await writeSynced(
      join(this.staging, "manifest.json"),
      Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`),
    );
    // Made here from the manifest, never taken from the archive.
    if (manifest.discovered.files.length > 0)
      await writeSynced(join(this.staging, STAMPS_FILE), encodeStamps(manifest.discovered.files));
  }

  async #writeImage(
    name: string,
    member: Readable,
    expected: { bytes: number; sha256: string },
  ): Promise<void> {
    const path = join(this.staging, name);
    const hash = createHash("sha256");
    const total = (this.#document as SnapshotDocument).manifest.imageBytes;
    member.on("data", (chunk: Buffer) => {
      hash.update(chunk);
      this.#doneBytes += chunk.length;
      this.options.onProgress?.(this.#doneBytes, total);
    });
    const file = createWriteStream(path, { flags: "wx", mode: 0o600 });
    await pipeline(member, file);
    if (hash.digest("hex") !== expected.sha256) {
      throw new Refusal("digest-mismatch", `${name} does not match its sha256 in the manifest`, name);
    }
    await fsyncPath(path);
  }

  /** After the last member: everything listed must have come. */
  finish(): { key: string; document: SnapshotDocument; signer: string | null } {
    if (!this.#document) throw new Refusal("truncated", `the archive holds no ${DOCUMENT_MEMBER}`);
    if (!this.#isSignatureSeen) {
      const verdict = verifyDocumentSignature(
        this.#documentBytes as Buffer,
        undefined,
        this.options.trustedKeys,
        this.options.isUnsignedAllowed,
      );
      if (!verdict.isTrusted) throw new Refusal(verdict.reason, verdict.detail, SIGNATURE_MEMBER);
    }
    const [missing] = this.#remaining.keys();
    if (missing !== undefined || this.#admittedKey === undefined) {
      throw new Refusal("truncated", `the archive ends before ${missing ?? "its images"}`, missing);
    }
    return { key: this.#admittedKey, document: this.#document, signer: this.#signer };
  }
}

/** Only regular files with relative names inside the archive's own tree. */
function checkMemberSafety(header: Header): void {
  const name = header.name;
  if (header.type !== "file") {
    throw new Refusal(
      "unsafe-member",
      `${name} is a ${header.type ?? "special member"}, not a regular file`,
      name,
    );
  }
  if (name.startsWith("/")) throw new Refusal("unsafe-member", `${name} is an absolute path`, name);
  if (name.split("/").some((part) => part === ".." || part === "." || part === "")) {
    throw new Refusal("unsafe-member", `${name} has a "..", "." or empty path segment`, name);
  }
}

async function readSmall(member: Readable, maxBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of member) {
    length += (chunk as Buffer).length;
    if (length > maxBytes) throw new Refusal("too-large", `a member is over ${maxBytes} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

async function writeSynced(path: string, bytes: Buffer): Promise<void> {
  writeFileSync(path, bytes, { mode: 0o600, flag: "wx" });
  await fsyncPath(path);
}

function sha256(bytes: Buffer): string {
  return createHash("sha256").update(bytes).digest("hex");
}
