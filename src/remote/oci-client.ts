import { createHash } from "node:crypto";
import { Readable, Transform } from "node:stream";
import type { ReadableStream as WebReadableStream } from "node:stream/web";
import type { RemoteRef } from "./oci-ref.js";
import { findCredentials, parseChallenge, type RegistryCredentials } from "./registry-auth.js";

/**
 * A small client for the OCI distribution API (what every registry serves, Distribution 2.8
 * included): blobs by digest, manifests by tag, tag lists. Every request has a stall timeout,
 * every body a size limit and (for blobs and manifests) a digest check. Failures are
 * RegistryError with a kebab-case reason, turned into outcome values by the callers.
 */
export type RegistryFailure =
  | "unreachable" // connection refused, DNS, reset
  | "timeout" // no progress within the stall timeout, or the caller's deadline passed
  | "unauthorized"
  | "not-found"
  | "http-error" // any other status
  | "bad-response" // not the JSON or headers the API promises
  | "too-large"
  | "digest-mismatch";

export class RegistryError extends Error {
  constructor(
    readonly reason: RegistryFailure,
    message: string,
  ) {
    super(message);
  }
}

export interface RegistryClientOptions {
  /** No response header or body byte for this long fails the request (default 10 s). */
  readonly stallTimeoutMs?: number;
  /** Aborts everything (the launch's deadline for a pull). */
  readonly signal?: AbortSignal;
  readonly env?: NodeJS.ProcessEnv;
}

export const OCI_MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json";
const MAX_MANIFEST_BYTES = 1024 * 1024;
const MAX_TAG_LIST_BYTES = 8 * 1024 * 1024;

export interface Descriptor {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
  readonly annotations?: Readonly<Record<string, string>>;
}

export interface ImageManifest {
  readonly schemaVersion: 2;
  readonly mediaType: typeof OCI_MANIFEST_TYPE;
  readonly artifactType?: string;
  readonly config: Descriptor;
  readonly layers: readonly Descriptor[];
  readonly annotations?: Readonly<Record<string, string>>;
}

export class RegistryClient {
  readonly ref: RemoteRef;
  readonly #stallTimeoutMs: number;
  readonly #signal: AbortSignal | undefined;
  readonly #credentials: RegistryCredentials | undefined;
  #authorization: string | undefined;

  constructor(ref: RemoteRef, options: RegistryClientOptions = {}) {
    this.ref = ref;
    this.#stallTimeoutMs = options.stallTimeoutMs ?? 10_000;
    this.#signal = options.signal;
    this.#credentials = findCredentials(ref.registry, options.env);
  }

  #url(path: string): string {
    return `${this.ref.baseUrl}/v2/${this.ref.repository}/${path}`;
  }

  async hasBlob(digest: string): Promise<boolean> {
    const response = await this.#request("HEAD", this.#url(`blobs/${digest}`));
    await response.body?.cancel();
    if (response.status === 200) return true;
    if (response.status === 404) return false;
    throw statusError(response, `HEAD blob ${digest}`);
  }

  /** Uploads a blob whose digest is known up front (small ones: configs, documents). */
  async putBlob(bytes: Buffer, digest: string): Promise<void> {
    const location = await this.#startUpload();
    const response = await this.#request("PUT", withDigest(location, digest), {
      body: bytes,
      headers: { "content-type": "application/octet-stream", "content-length": String(bytes.length) },
    });
    await response.body?.cancel();
    if (response.status !== 201) throw statusError(response, `PUT blob ${digest}`);
  }

  /**
   * Streams a blob whose digest is known only at its end: one PATCH with the whole body
   * (chunked), then the PUT that names the digest the stream turned out to have.
   */
  async streamBlob(body: Readable, digestOf: () => string): Promise<void> {
    const location = await this.#startUpload();
    const patched = await this.#request("PATCH", location, {
      body: Readable.toWeb(body) as unknown as ReadableStream<Uint8Array>,
      headers: { "content-type": "application/octet-stream" },
      isStreamingBody: true,
    });
    await patched.body?.cancel();
    if (patched.status !== 202) throw statusError(patched, "PATCH blob upload");
    const next = this.#resolve(patched.headers.get("location") ?? location);
    const done = await this.#request("PUT", withDigest(next, digestOf()));
    await done.body?.cancel();
    if (done.status !== 201) throw statusError(done, "PUT blob upload");
  }

  async #startUpload(): Promise<string> {
    const response = await this.#request("POST", this.#url("blobs/uploads/"));
    await response.body?.cancel();
    const location = response.headers.get("location");
    if (response.status !== 202 || !location) throw statusError(response, "POST blob upload");
    return this.#resolve(location);
  }

  #resolve(location: string): string {
    return new URL(location, this.ref.baseUrl).toString();
  }

  async putManifest(tag: string, manifest: ImageManifest): Promise<string> {
    const bytes = Buffer.from(JSON.stringify(manifest));
    const response = await this.#request("PUT", this.#url(`manifests/${tag}`), {
      body: bytes,
      headers: { "content-type": OCI_MANIFEST_TYPE },
    });
    await response.body?.cancel();
    if (response.status !== 201) throw statusError(response, `PUT manifest ${tag}`);
    return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
  }

  /** The manifest a tag names, or undefined when there is none. */
  async getManifest(tag: string): Promise<{ manifest: ImageManifest; digest: string } | undefined> {
    const response = await this.#request("GET", this.#url(`manifests/${tag}`), {
      headers: { accept: OCI_MANIFEST_TYPE },
    });
    if (response.status === 404) {
      await response.body?.cancel();
      return undefined;
    }
    if (response.status !== 200) throw statusError(response, `GET manifest ${tag}`);
    const bytes = await this.#readLimited(response, MAX_MANIFEST_BYTES, `manifest ${tag}`);
    const digest = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
    const announced = response.headers.get("docker-content-digest");
    if (announced && announced !== digest) {
      throw new RegistryError(
        "digest-mismatch",
        `manifest ${tag} has digest ${digest}, the registry says ${announced}`,
      );
    }
    const manifest = parseJson(bytes, `manifest ${tag}`) as ImageManifest;
    if (
      manifest?.schemaVersion !== 2 ||
      !isDescriptor(manifest.config) ||
      !Array.isArray(manifest.layers) ||
      !manifest.layers.every(isDescriptor)
    ) {
      throw new RegistryError("bad-response", `manifest ${tag} is not an OCI image manifest`);
    }
    return { manifest, digest };
  }

  /** A small blob in full, its digest and size checked. */
  async getBlob(descriptor: Descriptor, maxBytes: number): Promise<Buffer> {
    if (descriptor.size > maxBytes)
      throw new RegistryError(
        "too-large",
        `blob ${descriptor.digest} is ${descriptor.size} bytes, over ${maxBytes}`,
      );
    const response = await this.#request("GET", this.#url(`blobs/${descriptor.digest}`));
    if (response.status !== 200) throw statusError(response, `GET blob ${descriptor.digest}`);
    const bytes = await this.#readLimited(response, descriptor.size, `blob ${descriptor.digest}`);
    checkDigest(bytes.length, createHash("sha256").update(bytes).digest("hex"), descriptor);
    return bytes;
  }

  /**
   * A large blob as a stream that fails (instead of ending) when it is longer or shorter than
   * its descriptor or its sha256 differs: a consumer that reaches the end has verified bytes.
   */
  async openBlob(descriptor: Descriptor, maxBytes: number): Promise<Readable> {
    if (descriptor.size > maxBytes)
      throw new RegistryError(
        "too-large",
        `blob ${descriptor.digest} is ${descriptor.size} bytes, over ${maxBytes}`,
      );
    const response = await this.#request("GET", this.#url(`blobs/${descriptor.digest}`), {
      isStreamingResponse: true,
    });
    if (response.status !== 200 || !response.body)
      throw statusError(response, `GET blob ${descriptor.digest}`);
    const hash = createHash("sha256");
    let length = 0;
    const verifier = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        length += chunk.length;
        if (length > descriptor.size) {
          callback(
            new RegistryError(
              "too-large",
              `blob ${descriptor.digest} is longer than its ${descriptor.size} bytes`,
            ),
          );
          return;
        }
        hash.update(chunk);
        callback(null, chunk);
      },
      flush(callback) {
        try {
          checkDigest(length, hash.digest("hex"), descriptor);
          callback();
        } catch (error) {
          callback(error as Error);
        }
      },
    });
    const source = Readable.fromWeb(response.body as unknown as WebReadableStream);
    source.on("error", (error) => verifier.destroy(toRegistryError(error)));
    return source.pipe(verifier);
  }

  /** Every tag of the repository (following the Link header's pages). */
  async listTags(): Promise<string[]> {
    const tags: string[] = [];
    let url: string | undefined = `${this.#url("tags/list")}?n=1000`;
    let total = 0;
    while (url) {
      const response = await this.#request("GET", url);
      if (response.status === 404) {
        await response.body?.cancel();
        return tags;
      }
      if (response.status !== 200) throw statusError(response, "GET tags/list");
      const bytes = await this.#readLimited(response, MAX_TAG_LIST_BYTES - total, "tags/list");
      total += bytes.length;
      const value = parseJson(bytes, "tags/list") as { tags?: unknown };
      if (value.tags !== null && value.tags !== undefined && !Array.isArray(value.tags)) {
        throw new RegistryError("bad-response", "tags/list has no tag array");
      }
      for (const tag of (value.tags as unknown[] | null | undefined) ?? [])
        if (typeof tag === "string") tags.push(tag);
      const link = /<([^>]+)>;\s*rel="next"/.exec(response.headers.get("link") ?? "")?.[1];
      url = link ? this.#resolve(link) : undefined;
    }
    return tags;
  }

  async #request(
    method: string,
    url: string,
    init: {
      body?: Buffer | ReadableStream<Uint8Array>;
      headers?: Record<string, string>;
      isStreamingBody?: boolean;
      isStreamingResponse?: boolean;
    } = {},
    isRetry = false,
  ): Promise<Response> {
    const stall = new AbortController();
    let timer = setTimeout(() => stall.abort(), this.#stallTimeoutMs);
    const signal = this.#signal ? AbortSignal.any([stall.signal, this.#signal]) : stall.signal;
    const headers: Record<string, string> = { ...init.headers };
    if (this.#authorization) headers.authorization = this.#authorization;
    let body = init.body;
    if (body && !Buffer.isBuffer(body)) {
      // A streamed request body keeps the stall timer alive while it flows.
      body = (body as ReadableStream<Uint8Array>).pipeThrough(
        new TransformStream<Uint8Array, Uint8Array>({
          transform: (chunk, controller) => {
            clearTimeout(timer);
            timer = setTimeout(() => stall.abort(), this.#stallTimeoutMs);
            controller.enqueue(chunk);
          },
        }),
      );
    }
    let response: Response;
    try {
      response = await fetch(url, {
        method,
        headers,
        signal,
        redirect: "follow",
        ...(body ? { body, ...(init.isStreamingBody ? { duplex: "half" } : {}) } : {}),
      } as RequestInit);
    } catch (error) {
      clearTimeout(timer);
      throw toRegistryError(error, signal);
    }
    if (!init.isStreamingResponse) clearTimeout(timer);
    else {
      // The body's stall timer: reset on every chunk, cleared at the end.
      const original = response.body;
      if (original) {
        clearTimeout(timer);
        timer = setTimeout(() => stall.abort(), this.#stallTimeoutMs);
        const watched = original.pipeThrough(
          new TransformStream<Uint8Array, Uint8Array>({
            transform: (chunk, controller) => {
              clearTimeout(timer);
              timer = setTimeout(() => stall.abort(), this.#stallTimeoutMs);
              controller.enqueue(chunk);
            },
            flush: () => clearTimeout(timer),
          }),
        );
        response = new Response(watched, { status: response.status, headers: response.headers });
      } else clearTimeout(timer);
    }
    if (response.status === 401 && !isRetry && !init.isStreamingBody) {
      await response.body?.cancel();
      await this.#authenticate(response.headers.get("www-authenticate"));
      return this.#request(method, url, init, true);
    }
    if (response.status === 401 || response.status === 403) {
      await response.body?.cancel();
      throw new RegistryError(
        "unauthorized",
        `${method} ${new URL(url).pathname}: ${response.status} (check the registry credentials)`,
      );
    }
    return response;
  }

  async #authenticate(header: string | null): Promise<void> {
    const challenge = parseChallenge(header);
    const credentials = this.#credentials;
    const basic = credentials
      ? `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString("base64")}`
      : undefined;
    if (challenge?.scheme === "basic") {
      if (!basic)
        throw new RegistryError(
          "unauthorized",
          `${this.ref.registry} wants credentials and none are configured`,
        );
      this.#authorization = basic;
      return;
    }
    if (challenge?.scheme !== "bearer" || !challenge.params.realm) {
      throw new RegistryError("unauthorized", `${this.ref.registry} answered 401 without a usable challenge`);
    }
    const tokenUrl = new URL(challenge.params.realm);
    if (challenge.params.service) tokenUrl.searchParams.set("service", challenge.params.service);
    tokenUrl.searchParams.set(
      "scope",
      challenge.params.scope ?? `repository:${this.ref.repository}:pull,push`,
    );
    let response: Response;
    try {
      response = await fetch(tokenUrl, {
        headers: basic ? { authorization: basic } : {},
        signal: AbortSignal.timeout(this.#stallTimeoutMs),
      });
    } catch (error) {
      throw toRegistryError(error);
    }
    if (response.status !== 200) {
      await response.body?.cancel();
      throw new RegistryError(
        "unauthorized",
        `the token service of ${this.ref.registry} answered ${response.status}`,
      );
    }
    const value = parseJson(await this.#readLimited(response, 64 * 1024, "token"), "token") as {
      token?: string;
      access_token?: string;
    };
    const token = value.token ?? value.access_token;
    if (!token)
      throw new RegistryError("bad-response", `the token service of ${this.ref.registry} sent no token`);
    this.#authorization = `Bearer ${token}`;
  }

  async #readLimited(response: Response, maxBytes: number, what: string): Promise<Buffer> {
    const announced = Number(response.headers.get("content-length") ?? "0");
    if (announced > maxBytes) {
      await response.body?.cancel();
      throw new RegistryError("too-large", `${what} is ${announced} bytes, over ${maxBytes}`);
    }
    const chunks: Buffer[] = [];
    let length = 0;
    if (!response.body) return Buffer.alloc(0);
    try {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        length += chunk.length;
        if (length > maxBytes) throw new RegistryError("too-large", `${what} is over ${maxBytes} bytes`);
        chunks.push(Buffer.from(chunk));
      }
    } catch (error) {
      throw toRegistryError(error);
    }
    return Buffer.concat(chunks);
  }
}

function withDigest(location: string, digest: string): string {
  return `${location}${location.includes("?") ? "&" : "?"}digest=${encodeURIComponent(digest)}`;
}

function statusError(response: Response, what: string): RegistryError {
  void response.body?.cancel().catch(() => {});
  return new RegistryError(
    response.status === 404 ? "not-found" : "http-error",
    `${what}: HTTP ${response.status}`,
  );
}

function checkDigest(length: number, sha256: string, descriptor: Descriptor): void {
  if (length !== descriptor.size) {
    throw new RegistryError(
      "digest-mismatch",
      `blob ${descriptor.digest} has ${length} bytes, its descriptor says ${descriptor.size}`,
    );
  }
  if (`sha256:${sha256}` !== descriptor.digest) {
    throw new RegistryError("digest-mismatch", `blob ${descriptor.digest} arrived with sha256:${sha256}`);
  }
}

function isDescriptor(value: unknown): value is Descriptor {
  const d = value as Descriptor;
  return (
    typeof d === "object" &&
    d !== null &&
    typeof d.mediaType === "string" &&
    /^sha256:[0-9a-f]{64}$/.test(d.digest) &&
    Number.isSafeInteger(d.size) &&
    d.size >= 0
  );
}

function parseJson(bytes: Buffer, what: string): unknown {
  try {
    return JSON.parse(bytes.toString("utf8")) as unknown;
  } catch {
    throw new RegistryError("bad-response", `${what} is not JSON`);
  }
}

export function toRegistryError(error: unknown, signal?: AbortSignal): RegistryError {
  if (error instanceof RegistryError) return error;
  const err = error as Error & { cause?: { code?: string; message?: string } };
  if (signal?.aborted || err.name === "AbortError" || err.name === "TimeoutError") {
    return new RegistryError("timeout", "the registry did not answer in time");
  }
  const cause = err.cause?.code ?? err.cause?.message ?? err.message;
  return new RegistryError("unreachable", `cannot reach the registry (${cause})`);
}
