import { spawn } from "node:child_process";
import { Duplex, PassThrough, Readable, Transform, type TransformCallback } from "node:stream";
import type { ReadableStream as WebReadableStream } from "node:stream/web";

/**
 * The stages an archive passes through after tar: zstd compression (Debian's `zstd` as a child
 * process: streaming, multi-threaded, and its memory outside warmstart's heap; measured in
 * bench/archive.ts), and age encryption. Each stage is a Duplex for stream.pipeline.
 */

/** Name of the zstd binary; WARMSTART_ZSTD overrides the PATH lookup. */
export function zstdCommand(env: NodeJS.ProcessEnv = process.env): string {
  return env.WARMSTART_ZSTD ?? "zstd";
}

/** Level 3 (zstd's default) on every core: CRIU pages compress ~3-10x at ~300 MB/s a core. */
export function createZstdCompressor(env: NodeJS.ProcessEnv = process.env): Duplex {
  return spawnFilter(zstdCommand(env), ["-q", "-c", "-3", "-T0"]);
}

/** A window above 128 MiB is refused (a compression bomb would make zstd allocate it). */
export function createZstdDecompressor(env: NodeJS.ProcessEnv = process.env): Duplex {
  return spawnFilter(zstdCommand(env), ["-q", "-d", "-c", "--memory=128MB"]);
}

/**
 * A child process as a stream stage. Its output ends only after the child exited with 0, so a
 * failing zstd (a truncated or damaged input) is an error of the pipeline, never a short but
 * "successful" stream.
 */
function spawnFilter(command: string, args: readonly string[]): Duplex {
  const child = spawn(command, args, { stdio: ["pipe", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => {
    if (stderr.length < 4096) stderr += chunk.toString();
  });
  const exited = new Promise<string | undefined>((resolve) => {
    child.once("error", (error) => resolve(`${command} could not start: ${error.message}`));
    child.once("close", (code, signal) =>
      resolve(
        code === 0 ? undefined : `${command} failed (${code ?? signal}): ${stderr.trim() || "no message"}`,
      ),
    );
  });
  const output = new PassThrough();
  child.stdout.on("data", (chunk: Buffer) => {
    if (!output.write(chunk)) {
      child.stdout.pause();
      output.once("drain", () => child.stdout.resume());
    }
  });
  child.stdout.once("end", () => {
    void exited.then((failure) => (failure ? output.destroy(new Error(failure)) : output.end()));
  });
  // EPIPE when the child died early: its exit status carries the real reason.
  child.stdin.on("error", () => {});
  const duplex = Duplex.from({ writable: child.stdin, readable: output });
  duplex.once("close", () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  });
  void exited.then((failure) => {
    if (failure) duplex.destroy(new Error(failure));
  });
  return duplex;
}

/**
 * Encrypts to age recipients ("age1..."): the STREAM construction, 64 KiB chunks, each
 * authenticated, so a reader never acts on a tampered chunk.
 */
export async function encryptReadable(source: Readable, recipients: readonly string[]): Promise<Readable> {
  const { Encrypter } = await import("age-encryption");
  const encrypter = new Encrypter();
  for (const recipient of recipients) encrypter.addRecipient(recipient);
  const encrypted = await encrypter.encrypt(toWeb(source));
  return forwardErrors(source, Readable.fromWeb(encrypted as unknown as WebReadableStream));
}

/** Decrypts with age identities ("AGE-SECRET-KEY-1..."); rejects when none opens the header. */
export async function decryptReadable(source: Readable, identities: readonly string[]): Promise<Readable> {
  const { Decrypter } = await import("age-encryption");
  const decrypter = new Decrypter();
  for (const identity of identities) decrypter.addIdentity(identity);
  const plain = await decrypter.decrypt(toWeb(source));
  return forwardErrors(source, Readable.fromWeb(plain as unknown as WebReadableStream));
}

function toWeb(source: Readable): ReadableStream<Uint8Array> {
  return Readable.toWeb(source) as unknown as ReadableStream<Uint8Array>;
}

/** `source` piped through a stage; an error on either side fails the returned stream. */
export function pipeThrough(source: Readable, stage: Duplex): Readable {
  source.on("error", (error) => stage.destroy(error));
  source.pipe(stage);
  return stage;
}

function forwardErrors(source: Readable, target: Readable): Readable {
  source.on("error", (error) => target.destroy(error));
  return target;
}

/** The first bytes of a stream, put back so the stream reads as if untouched. */
export async function peekHead(stream: Readable, wantBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let length = 0;
  while (length < wantBytes && !stream.readableEnded && !stream.destroyed) {
    const chunk = stream.read() as Buffer | null;
    if (chunk === null) {
      await new Promise<void>((resolve) => {
        const done = () => {
          stream.off("readable", done);
          stream.off("end", done);
          stream.off("error", done);
          resolve();
        };
        stream.once("readable", done);
        stream.once("end", done);
        stream.once("error", done);
      });
      continue;
    }
    chunks.push(chunk);
    length += chunk.length;
  }
  const head = Buffer.concat(chunks);
  if (head.length > 0) stream.unshift(head);
  return head;
}

export async function encryptBytes(bytes: Buffer, recipients: readonly string[]): Promise<Buffer> {
  const { Encrypter } = await import("age-encryption");
  const encrypter = new Encrypter();
  for (const recipient of recipients) encrypter.addRecipient(recipient);
  return Buffer.from(await encrypter.encrypt(bytes));
}

export async function decryptBytes(bytes: Buffer, identities: readonly string[]): Promise<Buffer> {
  const { Decrypter } = await import("age-encryption");
  const decrypter = new Decrypter();
  for (const identity of identities) decrypter.addIdentity(identity);
  return Buffer.from(await decrypter.decrypt(bytes));
}

/** A new age identity and its recipient, for `warmstart keygen --age`. */
export async function generateAgeIdentity(): Promise<{ identity: string; recipient: string }> {
  const { generateIdentity, identityToRecipient } = await import("age-encryption");
  const identity = await generateIdentity();
  return { identity, recipient: await identityToRecipient(identity) };
}

export type ArchiveLayering = "tar" | "zstd" | "age";

const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);
const AGE_MAGIC = Buffer.from("age-encryption.org/v1\n");

/** What the outermost layer of an archive is, from its first bytes. */
export function sniffLayer(head: Buffer): ArchiveLayering {
  if (head.subarray(0, AGE_MAGIC.length).equals(AGE_MAGIC)) return "age";
  if (head.subarray(0, 4).equals(ZSTD_MAGIC)) return "zstd";
  return "tar";
}

/**
 * Counts the bytes that pass and fails the pipeline once they exceed a limit: an archive, or
 * what it decompresses to, is never read past what the user allowed.
 */
export class ByteLimit extends Transform {
  bytes = 0;
  readonly #limitBytes: number;
  readonly #what: string;
  readonly #onBytes: ((bytes: number) => void) | undefined;

  constructor(limitBytes: number, what: string, onBytes?: (bytes: number) => void) {
    super();
    this.#limitBytes = limitBytes;
    this.#what = what;
    this.#onBytes = onBytes;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.#limitBytes) {
      callback(new ArchiveLimitError(`${this.#what} is larger than the limit of ${this.#limitBytes} bytes`));
      return;
    }
    this.#onBytes?.(this.bytes);
    callback(null, chunk);
  }
}

export class ArchiveLimitError extends Error {}
