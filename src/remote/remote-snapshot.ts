import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { PassThrough, Transform } from "node:stream";
import { describeEntry, type SignedDocument, writeArchive } from "../cache/archive-export.js";
import { type Admission, importArchive } from "../cache/archive-import.js";
import { decryptBytes, encryptBytes } from "../cache/archive-stages.js";
import type { CacheEntry, EntryStore } from "../cache/entry-store.js";
import { parseDocument, type SnapshotDocument } from "../cache/snapshot-document.js";
import { parseSignature, verifyDocumentSignature } from "../cache/snapshot-signature.js";
import { admitOnThisHost, describeThisHost } from "../host/admit-snapshot.js";
import { compareHostFacts } from "../host/host-compat.js";
import type { HostFacts } from "../host/host-facts.js";
import type { FleetSettings } from "./fleet-settings.js";
import {
  type Descriptor,
  type ImageManifest,
  OCI_MANIFEST_TYPE,
  RegistryClient,
  RegistryError,
} from "./oci-client.js";
import type { TravelKeys } from "./travel-keys.js";

/**
 * Snapshots in an OCI registry. One snapshot is one image manifest:
 *   artifactType  application/vnd.warmstart.snapshot.v1
 *   config        the signed document (manifest, host facts, CRIU's cpuinfo image): small, read
 *                 first, so an incompatible or untrusted snapshot costs one small GET
 *   layers[0]     the archive `warmstart export` writes (tar + zstd)
 *   annotations   what a compatibility check needs without the config (CRIU version, kernel,
 *                 architecture, CPU features), named like podman's checkpoint annotations
 * With recipients, config and layer are age ciphertext; only the annotations stay clear.
 * Found by tag (Distribution 2.8 has no referrers API): ws1-<app key>-<host key>.
 */
export const SNAPSHOT_ARTIFACT_TYPE = "application/vnd.warmstart.snapshot.v1";
const CONFIG_TYPE = "application/vnd.warmstart.snapshot.config.v1+json";
const ENCRYPTED_CONFIG_TYPE = "application/vnd.warmstart.snapshot.config.v1+age";
const LAYER_TYPE = "application/vnd.warmstart.snapshot.archive.v1.tar+zstd";
const ENCRYPTED_LAYER_TYPE = "application/vnd.warmstart.snapshot.archive.v1.tar+zstd+age";
const ANNOTATION = "dev.warmstart.checkpoint";
const MAX_CONFIG_BYTES = 2 * 1024 * 1024;

export interface RemoteContext {
  readonly settings: FleetSettings;
  readonly keys: TravelKeys;
  readonly store: EntryStore;
  readonly env?: NodeJS.ProcessEnv;
  /** The whole operation's deadline (a launch waits on a pull: default 60 s). */
  readonly deadlineMs?: number;
  readonly stallTimeoutMs?: number;
}

export type PushOutcome =
  | {
      readonly pushed: true;
      readonly tag: string;
      readonly digest: string;
      readonly sentBytes: number;
      readonly isLayerReused: boolean;
    }
  | {
      readonly pushed: false;
      readonly reason: "no-remote" | "already-present" | RegistryError["reason"] | "export-failed";
      readonly detail: string;
    };

export type PullOutcome =
  | {
      readonly pulled: true;
      readonly key: string;
      readonly tag: string;
      readonly signer: string | null;
      readonly archiveBytes: number;
    }
  | {
      readonly pulled: false;
      readonly reason:
        | "no-remote"
        | "not-found" // no snapshot of this app in the registry
        | "host-incompatible" // every candidate differs from this host; detail says how
        | "untrusted" // unsigned, untrusted key or bad signature
        | "decrypt-failed"
        | "import-refused"
        | RegistryError["reason"];
      readonly detail: string;
    };

/** ws1-<app key>-<16 hex of the host part>: one tag per app and host kind. */
export function snapshotTag(appKey: string, host: HostFacts): string {
  const hostKey = createHash("sha256")
    .update(JSON.stringify([host.arch, host.criuVersion, host.kernelRelease, host.cpuFlags]))
    .digest("hex")
    .slice(0, 16);
  return `ws1-${appKey}-${hostKey}`;
}

function openClient(context: RemoteContext): RegistryClient | undefined {
  const ref = context.settings.remote;
  if (!ref) return undefined;
  return new RegistryClient(ref, {
    stallTimeoutMs: context.stallTimeoutMs ?? 10_000,
    signal: AbortSignal.timeout(context.deadlineMs ?? 60_000),
    ...(context.env ? { env: context.env } : {}),
  });
}

interface ConfigBody {
  readonly document: string;
  readonly signature: SignedDocument["signature"];
  readonly cpuinfo: string | null;
}

/**
 * Pushes one entry. Never throws: a registry that is down or refuses is an outcome. What the
 * registry already has is not sent again: the same tag with the same config sends nothing,
 * and a layer pushed before (to any repository of it) is checked with HEAD first.
 */
export async function pushSnapshot(entry: CacheEntry, context: RemoteContext): Promise<PushOutcome> {
  const client = openClient(context);
  if (!client) return { pushed: false, reason: "no-remote", detail: "no remote cache is configured" };
  try {
    const source = {
      entryDir: entry.dir,
      manifest: entry.manifest,
      localHost: () => describeThisHost(context.env),
    };
    const signed = await describeEntry(source, context.keys.signingKey);
    const tag = snapshotTag(signed.document.appKey, signed.document.host);
    const isEncrypted = context.settings.recipients.length > 0;
    const configPlain = Buffer.from(
      JSON.stringify({
        document: signed.documentBytes.toString("utf8"),
        signature: signed.signature,
        cpuinfo: signed.cpuinfoImage?.toString("base64") ?? null,
      } satisfies ConfigBody),
    );
    const configBytes = isEncrypted
      ? await encryptBytes(configPlain, context.settings.recipients)
      : configPlain;
    const config: Descriptor = {
      mediaType: isEncrypted ? ENCRYPTED_CONFIG_TYPE : CONFIG_TYPE,
      digest: `sha256:${createHash("sha256").update(configBytes).digest("hex")}`,
      size: configBytes.length,
    };
    const existing = await client.getManifest(tag);
    if (existing && existing.manifest.config.digest === config.digest) {
      return { pushed: false, reason: "already-present", detail: `${tag} is in the registry already` };
    }
    let sentBytes = 0;
    if (!(await client.hasBlob(config.digest))) {
      await client.putBlob(configBytes, config.digest);
      sentBytes += configBytes.length;
    }
    const layer = await pushLayer(client, entry, source, signed, context, isEncrypted);
    sentBytes += layer.sentBytes;
    const manifest: ImageManifest = {
      schemaVersion: 2,
      mediaType: OCI_MANIFEST_TYPE,
      artifactType: SNAPSHOT_ARTIFACT_TYPE,
      config,
      layers: [layer.descriptor],
      annotations: describeAnnotations(signed.document, isEncrypted),
    };
    const digest = await client.putManifest(tag, manifest);
    return { pushed: true, tag, digest, sentBytes, isLayerReused: layer.sentBytes === 0 };
  } catch (error) {
    if (error instanceof RegistryError) return { pushed: false, reason: error.reason, detail: error.message };
    return { pushed: false, reason: "export-failed", detail: (error as Error).message };
  }
}

/** The record of a plaintext layer pushed before: its bytes are the same every time. */
const PUSHED_LAYER_FILE = "pushed-layer.json";

async function pushLayer(
  client: RegistryClient,
  entry: CacheEntry,
  source: Parameters<typeof writeArchive>[0],
  signed: SignedDocument,
  context: RemoteContext,
  isEncrypted: boolean,
): Promise<{ descriptor: Descriptor; sentBytes: number }> {
  const mediaType = isEncrypted ? ENCRYPTED_LAYER_TYPE : LAYER_TYPE;
  if (!isEncrypted) {
    const known = readPushedLayer(entry.dir, signed.signature.signature);
    if (known && (await client.hasBlob(known.digest)))
      return { descriptor: { mediaType, ...known }, sentBytes: 0 };
  }
  const hash = createHash("sha256");
  let size = 0;
  const body = new PassThrough();
  const hashing = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      size += chunk.length;
      callback(null, chunk);
    },
  });
  hashing.pipe(body);
  const writing = writeArchive(
    source,
    signed,
    {
      isCompressed: true,
      recipients: context.settings.recipients,
      ...(context.env ? { env: context.env } : {}),
    },
    hashing,
  );
  writing.catch((error: unknown) => body.destroy(error as Error));
  let digest = "";
  const digestOf = () => {
    digest = `sha256:${hash.digest("hex")}`;
    return digest;
  };
  await Promise.all([writing, client.streamBlob(body, digestOf)]);
  const descriptor: Descriptor = { mediaType, digest, size };
  if (!isEncrypted) writePushedLayer(entry.dir, signed.signature.signature, descriptor);
  return { descriptor, sentBytes: size };
}

function readPushedLayer(entryDir: string, signature: string): { digest: string; size: number } | undefined {
  try {
    const value = JSON.parse(readFileSync(join(entryDir, PUSHED_LAYER_FILE), "utf8")) as {
      signature: string;
      digest: string;
      size: number;
    };
    return value.signature === signature ? { digest: value.digest, size: value.size } : undefined;
  } catch {
    return undefined;
  }
}

function writePushedLayer(entryDir: string, signature: string, descriptor: Descriptor): void {
  try {
    writeFileSync(
      join(entryDir, PUSHED_LAYER_FILE),
      JSON.stringify({ signature, digest: descriptor.digest, size: descriptor.size }),
      { mode: 0o600 },
    );
  } catch {
    // Only costs an upload next time.
  }
}

function describeAnnotations(document: SnapshotDocument, isEncrypted: boolean): Record<string, string> {
  return {
    "org.opencontainers.image.created": document.manifest.createdAt,
    [`${ANNOTATION}.engine.name`]: "warmstart",
    [`${ANNOTATION}.criu.version`]: document.host.criuVersion,
    [`${ANNOTATION}.kernel.version`]: document.host.kernelRelease,
    [`${ANNOTATION}.cpu.arch`]: document.host.arch,
    [`${ANNOTATION}.cpu.features`]: document.host.cpuFlags.join(" "),
    [`${ANNOTATION}.cpu.count`]: String(document.host.cpuCount),
    [`${ANNOTATION}.memory.limit`]: String(document.host.memoryLimitBytes ?? "max"),
    [`${ANNOTATION}.encrypted`]: String(isEncrypted),
  };
}

/** Host facts as far as a manifest's annotations tell them (for a check before the config). */
function hostFromAnnotations(
  annotations: Readonly<Record<string, string>> | undefined,
): HostFacts | undefined {
  const get = (name: string) => annotations?.[`${ANNOTATION}.${name}`];
  const arch = get("cpu.arch");
  const criuVersion = get("criu.version");
  if (!arch || !criuVersion) return undefined;
  const limit = get("memory.limit");
  return {
    arch,
    criuVersion,
    kernelRelease: get("kernel.version") ?? "",
    cpuFlags: (get("cpu.features") ?? "").split(" ").filter(Boolean),
    cpuCount: Number(get("cpu.count") ?? "0"),
    memoryLimitBytes: limit === undefined || limit === "max" ? null : Number(limit),
    // Kernel features are this host's to have; the annotations do not claim any.
    criuFeatures: [],
  };
}

/**
 * Pulls a snapshot of `appKey` that this host can restore into the store, under the key this
 * host computes for it. Candidates are found by tag; each is judged from its annotations, then
 * its small config (signature, host facts, CRIU's cpuinfo check, `validate`), and only then
 * is its archive streamed in, verified and imported. Never throws.
 */
export async function pullSnapshot(
  appKey: string,
  thisHost: HostFacts,
  context: RemoteContext,
  options: {
    readonly tag?: string;
    readonly validate?: (document: SnapshotDocument) => string | undefined;
  } = {},
): Promise<PullOutcome> {
  const client = openClient(context);
  if (!client) return { pulled: false, reason: "no-remote", detail: "no remote cache is configured" };
  try {
    const ownTag = snapshotTag(appKey, thisHost);
    const tags = options.tag
      ? [options.tag]
      : [
          ownTag,
          ...(await client.listTags()).filter((tag) => tag.startsWith(`ws1-${appKey}-`) && tag !== ownTag),
        ];
    const refusals: string[] = [];
    let lastRefusal: PullOutcome | undefined;
    for (const tag of tags) {
      const found = await client.getManifest(tag);
      if (!found) continue;
      const { manifest } = found;
      const layer = manifest.layers[0];
      if (manifest.artifactType !== SNAPSHOT_ARTIFACT_TYPE || !layer) {
        refusals.push(`${tag}: not a warmstart snapshot`);
        continue;
      }
      const announced = hostFromAnnotations(manifest.annotations);
      const early = announced
        ? compareHostFacts(announced, { ...thisHost, criuFeatures: [...thisHost.criuFeatures] })
        : [];
      if (early.length > 0) {
        refusals.push(`${tag}: ${early.join("; ")}`);
        lastRefusal = { pulled: false, reason: "host-incompatible", detail: refusals.join(" | ") };
        continue;
      }
      const judged = await judgeConfig(client, manifest.config, context, options.validate);
      if (!judged.isAccepted) {
        refusals.push(`${tag}: ${judged.outcome.detail}`);
        lastRefusal = judged.outcome;
        continue;
      }
      const archive = await client.openBlob(layer, context.settings.maxArchiveBytes);
      const imported = await importArchive(archive, {
        store: context.store,
        trustedKeys: context.keys.trustedKeys,
        isUnsignedAllowed: context.settings.isUnsignedAllowed,
        identities: context.settings.identities,
        maxArchiveBytes: context.settings.maxArchiveBytes,
        admit: async (document) =>
          document.appKey === judged.document.appKey && document.manifest.key === judged.document.manifest.key
            ? judged.admission
            : { isAdmitted: false, detail: "the archive's document is not the one its config announced" },
        ...(context.env ? { env: context.env } : {}),
      });
      archive.destroy();
      if (imported.imported) {
        return {
          pulled: true,
          key: imported.key,
          tag,
          signer: imported.signer,
          archiveBytes: imported.archiveBytes,
        };
      }
      if (imported.reason === "already-present") {
        return { pulled: true, key: judged.admission.key, tag, signer: null, archiveBytes: 0 };
      }
      refusals.push(`${tag}: ${imported.reason}: ${imported.detail}`);
      lastRefusal = { pulled: false, reason: "import-refused", detail: refusals.join(" | ") };
    }
    if (lastRefusal) return { ...lastRefusal, detail: refusals.join(" | ") } as PullOutcome;
    return {
      pulled: false,
      reason: "not-found",
      detail:
        refusals.length > 0
          ? refusals.join(" | ")
          : `no snapshot of app ${appKey.slice(0, 12)} in the registry`,
    };
  } catch (error) {
    if (error instanceof RegistryError) return { pulled: false, reason: error.reason, detail: error.message };
    return { pulled: false, reason: "bad-response", detail: (error as Error).message };
  }
}

type Judgement =
  | {
      readonly isAccepted: true;
      readonly document: SnapshotDocument;
      readonly admission: Extract<Admission, { isAdmitted: true }>;
    }
  | { readonly isAccepted: false; readonly outcome: Extract<PullOutcome, { pulled: false }> };

async function judgeConfig(
  client: RegistryClient,
  descriptor: Descriptor,
  context: RemoteContext,
  validate: ((document: SnapshotDocument) => string | undefined) | undefined,
): Promise<Judgement> {
  const refuse = (reason: Extract<PullOutcome, { pulled: false }>["reason"], detail: string): Judgement => ({
    isAccepted: false,
    outcome: { pulled: false, reason, detail },
  });
  let bytes = await client.getBlob(descriptor, MAX_CONFIG_BYTES);
  if (descriptor.mediaType === ENCRYPTED_CONFIG_TYPE) {
    if (context.settings.identities.length === 0)
      return refuse(
        "decrypt-failed",
        "the snapshot is encrypted and no identity is configured (--identity, WARMSTART_IDENTITY)",
      );
    try {
      bytes = await decryptBytes(bytes, context.settings.identities);
    } catch (error) {
      return refuse(
        "decrypt-failed",
        `no configured identity decrypts the snapshot (${(error as Error).message})`,
      );
    }
  } else if (descriptor.mediaType !== CONFIG_TYPE) {
    return refuse("bad-response", `config of type ${descriptor.mediaType}`);
  }
  let body: ConfigBody;
  try {
    body = JSON.parse(bytes.toString("utf8")) as ConfigBody;
  } catch {
    return refuse("bad-response", "the config is not JSON");
  }
  if (typeof body.document !== "string") return refuse("bad-response", "the config holds no document");
  const documentBytes = Buffer.from(body.document, "utf8");
  const signature = parseSignature(Buffer.from(JSON.stringify(body.signature ?? null)));
  const verdict = verifyDocumentSignature(
    documentBytes,
    signature,
    context.keys.trustedKeys,
    context.settings.isUnsignedAllowed,
  );
  if (!verdict.isTrusted) return refuse("untrusted", `${verdict.reason}: ${verdict.detail}`);
  const parsed = parseDocument(documentBytes);
  if (!parsed.isValid) return refuse("bad-response", `the document does not parse: ${parsed.detail}`);
  const cpuinfo = typeof body.cpuinfo === "string" ? Buffer.from(body.cpuinfo, "base64") : undefined;
  const invalid = validate?.(parsed.document);
  if (invalid) return refuse("import-refused", invalid);
  const admission = await admitOnThisHost(parsed.document, cpuinfo, context.env);
  if (!admission.isAdmitted) return refuse("host-incompatible", admission.detail);
  return { isAccepted: true, document: parsed.document, admission };
}
