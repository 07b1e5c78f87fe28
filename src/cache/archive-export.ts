import { createHash, type KeyObject } from "node:crypto";
import { createReadStream, existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { type Readable, Transform, type Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { pack as createPack, type Pack } from "tar-stream";
import type { HostFacts } from "../host/host-facts.js";
import { ByteLimit, createZstdCompressor, encryptReadable, pipeThrough } from "./archive-stages.js";
import type { Manifest } from "./entry-store.js";
import { computeAppKey, type SnapshotDocument, serializeDocument } from "./snapshot-document.js";
import { type SnapshotSignature, signDocument } from "./snapshot-signature.js";

/**
 * The archive, member by member, in this order (an importer relies on it: it refuses a
 * snapshot before reading a single page):
 *   snapshot.json   the SnapshotDocument (manifest, host facts, digests)
 *   snapshot.sig    its Ed25519 signature (JSON)
 *   cpuinfo.img     CRIU's description of the dump host's CPU, when there is one
 *   images/<name>   every file the manifest lists, in name order
 * Members carry mode 0600, owner 0 and mtime 0, so one entry always gives the same bytes
 * (a registry that has them is not sent them again).
 */
export const DOCUMENT_MEMBER = "snapshot.json";
export const SIGNATURE_MEMBER = "snapshot.sig";
export const CPUINFO_MEMBER = "cpuinfo.img";
export const IMAGES_PREFIX = "images/";

/** Where an imported entry keeps its dump host's facts: they are not this host's. */
export const ENTRY_HOST_DIR = "host";

export interface ExportSource {
  /** A cache entry as a directory: manifest.json and images/, as the store commits it. */
  readonly entryDir: string;
  readonly manifest: Manifest;
  /** This host's facts and CPU image, used when the entry was dumped here (no host/ dir). */
  readonly localHost: () => Promise<{ host: HostFacts; cpuinfoImage: Buffer | undefined }>;
}

export interface SignedDocument {
  readonly document: SnapshotDocument;
  readonly documentBytes: Buffer;
  readonly signature: SnapshotSignature;
  readonly cpuinfoImage: Buffer | undefined;
}

/** The signed document of an entry: what a registry's config blob and an archive's head hold. */
export async function describeEntry(source: ExportSource, signingKey: KeyObject): Promise<SignedDocument> {
  const recorded = readEntryHost(source.entryDir);
  const { host, cpuinfoImage } = recorded ?? (await source.localHost());
  const document: SnapshotDocument = {
    format: "warmstart-snapshot/1",
    appKey: computeAppKey(source.manifest.fields),
    manifest: source.manifest,
    host,
    cpuinfoSha256: cpuinfoImage ? createHash("sha256").update(cpuinfoImage).digest("hex") : null,
  };
  const documentBytes = serializeDocument(document);
  return { document, documentBytes, signature: signDocument(documentBytes, signingKey), cpuinfoImage };
}

/** The dump host recorded in an imported entry, or undefined for an entry dumped here. */
export function readEntryHost(
  entryDir: string,
): { host: HostFacts; cpuinfoImage: Buffer | undefined } | undefined {
  const hostPath = join(entryDir, ENTRY_HOST_DIR, "host.json");
  if (!existsSync(hostPath)) return undefined;
  const host = JSON.parse(readFileSync(hostPath, "utf8")) as HostFacts;
  const cpuinfoPath = join(entryDir, ENTRY_HOST_DIR, CPUINFO_MEMBER);
  return { host, cpuinfoImage: existsSync(cpuinfoPath) ? readFileSync(cpuinfoPath) : undefined };
}

export interface ArchiveOptions {
  readonly isCompressed: boolean;
  /** age recipients ("age1..."); none: plaintext. */
  readonly recipients: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
  /** Called as image bytes are read, with the total to read. */
  readonly onProgress?: (doneBytes: number, totalBytes: number) => void;
}

export interface ArchiveWritten {
  /** Bytes written to the destination (compressed, encrypted). */
  readonly archiveBytes: number;
  /** sha256 of those bytes, as a registry names the blob. */
  readonly archiveSha256: string;
}

/**
 * Streams the archive of an entry into `destination`. Each image is hashed as it is read and
 * the archive fails if one no longer matches its manifest: a damaged entry never travels.
 * Memory stays bounded by the streams' buffers, whatever the image size.
 */
export async function writeArchive(
  source: ExportSource,
  signed: SignedDocument,
  options: ArchiveOptions,
  destination: Writable,
): Promise<ArchiveWritten> {
  const tar = createPack();
  // tar-stream packs with streamx, which Node's pipe and pipeline accept as a readable.
  let stream = tar as unknown as Readable;
  if (options.isCompressed) stream = pipeThrough(stream, createZstdCompressor(options.env));
  if (options.recipients.length > 0) stream = await encryptReadable(stream, options.recipients);
  const digest = createHash("sha256");
  const counter = new ByteLimit(Number.MAX_SAFE_INTEGER, "the archive");
  const hasher = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      digest.update(chunk);
      callback(null, chunk);
    },
  });
  const filling = fillArchive(tar, source, signed, options).catch((error: unknown) => {
    tar.destroy(error as Error);
    throw error;
  });
  await Promise.all([pipeline(stream, counter, hasher, destination), filling]);
  return { archiveBytes: counter.bytes, archiveSha256: digest.digest("hex") };
}

async function fillArchive(
  tar: Pack,
  source: ExportSource,
  signed: SignedDocument,
  options: ArchiveOptions,
): Promise<void> {
  await addBuffer(tar, DOCUMENT_MEMBER, signed.documentBytes);
  await addBuffer(tar, SIGNATURE_MEMBER, Buffer.from(`${JSON.stringify(signed.signature)}\n`));
  if (signed.cpuinfoImage) await addBuffer(tar, CPUINFO_MEMBER, signed.cpuinfoImage);
  const files = Object.entries(source.manifest.files).sort(([a], [b]) => (a < b ? -1 : 1));
  const totalBytes = source.manifest.imageBytes;
  let doneBytes = 0;
  for (const [name, expected] of files) {
    const path = join(source.entryDir, "images", name);
    const hash = createHash("sha256");
    const member = tar.entry(memberHeader(`${IMAGES_PREFIX}${name}`, expected.bytes));
    const reader = createReadStream(path);
    reader.on("data", (chunk) => {
      hash.update(chunk);
      doneBytes += chunk.length;
      options.onProgress?.(doneBytes, totalBytes);
    });
    await pipeline(reader, member);
    if (hash.digest("hex") !== expected.sha256) {
      throw new Error(
        `${path} does not match its sha256 in the manifest: the entry is damaged (warmstart verify)`,
      );
    }
  }
  tar.finalize();
}

function memberHeader(name: string, size: number) {
  return {
    name,
    size,
    mode: 0o600,
    mtime: new Date(0),
    uid: 0,
    gid: 0,
    uname: "",
    gname: "",
    type: "file" as const,
  };
}

function addBuffer(tar: Pack, name: string, bytes: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    tar.entry(memberHeader(name, bytes.length), bytes, (error) => (error ? reject(error) : resolve()));
  });
}
