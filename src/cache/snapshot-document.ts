import { createHash } from "node:crypto";
import type { HostFacts } from "../host/host-facts.js";
import { contentOf } from "../inputs/discovered-inputs.js";
import type { Manifest } from "./entry-store.js";
import { type CacheKeyFields, computeBaseKey, computeEntryKey, type HostKeyFields } from "./key.js";

/**
 * What travels with a snapshot before its images: the entry's manifest, the host it was taken
 * on, and the digest of that host's CRIU cpuinfo image. Small (a few KB), signed, and
 * readable before a single page is pulled, so a refusal costs nothing.
 */
export interface SnapshotDocument {
  readonly format: typeof SNAPSHOT_FORMAT;
  /** The key without its host part: what a registry is searched by. */
  readonly appKey: string;
  readonly manifest: Manifest;
  readonly host: HostFacts;
  /** sha256 of cpuinfo.img, or null when CRIU could not describe the CPU. */
  readonly cpuinfoSha256: string | null;
}

export const SNAPSHOT_FORMAT = "warmstart-snapshot/1";

/** A document is JSON of this size at most; anything larger is refused unread. */
export const MAX_DOCUMENT_BYTES = 1024 * 1024;

/**
 * The app part of a key: every field but the host's (`host`, compared by host compatibility
 * instead). Two hosts that run the same app with the same fleet secret compute the same app
 * key, whatever their kernel or CPU.
 */
export function computeAppKey(fields: CacheKeyFields): string {
  const { host: _host, ...appFields } = fields;
  return createHash("sha256")
    .update("warmstart-app-key\0")
    .update(JSON.stringify(sortKeys(appFields)))
    .digest("hex");
}

/**
 * The entry this host files a compatible snapshot under: its own kernel, CPU flags and CRIU in
 * the host part, in place of the dump host's (compatibility was judged already). The CPUs
 * and memory limit the app sized itself for stay the dump's: a launch here restores it only
 * where they are the same, and says so when they are not.
 */
export function rekeyForHost(
  manifest: Pick<Manifest, "fields" | "discovered">,
  local: Pick<HostKeyFields, "kernelRelease" | "cpuFlagsSha256" | "criuVersion">,
): { key: string; baseKey: string; fields: CacheKeyFields } {
  const fields: CacheKeyFields = { ...manifest.fields, host: { ...manifest.fields.host, ...local } };
  const baseKey = computeBaseKey(fields);
  return { key: computeEntryKey(baseKey, fields.host, contentOf(manifest.discovered)), baseKey, fields };
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>)
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([k, v]) => [k, sortKeys(v)]),
    );
  }
  return value;
}

export function serializeDocument(document: SnapshotDocument): Buffer {
  return Buffer.from(`${JSON.stringify(document, null, 1)}\n`);
}

export type ParsedDocument =
  | { readonly isValid: true; readonly document: SnapshotDocument }
  | { readonly isValid: false; readonly detail: string };

const HEX64 = /^[0-9a-f]{64}$/;
/** Image names as CRIU writes them: no separators, no dot-only names. */
const IMAGE_NAME = /^(?!\.{1,2}$)[A-Za-z0-9._-]{1,200}$/;

/** Parses and checks every field an importer relies on; the detail names the first bad one. */
export function parseDocument(bytes: Buffer): ParsedDocument {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString("utf8"));
  } catch (error) {
    return { isValid: false, detail: `not JSON (${(error as Error).message})` };
  }
  const bad = (detail: string): ParsedDocument => ({ isValid: false, detail });
  if (!isObject(value)) return bad("not a JSON object");
  if (value.format !== SNAPSHOT_FORMAT)
    return bad(`format is ${JSON.stringify(value.format)}, expected ${SNAPSHOT_FORMAT}`);
  if (typeof value.appKey !== "string" || !HEX64.test(value.appKey)) return bad("appKey is not a sha256");
  if (
    value.cpuinfoSha256 !== null &&
    (typeof value.cpuinfoSha256 !== "string" || !HEX64.test(value.cpuinfoSha256))
  )
    return bad("cpuinfoSha256 is not a sha256");
  const manifest = value.manifest;
  if (!isObject(manifest)) return bad("manifest is missing");
  if (typeof manifest.key !== "string" || !HEX64.test(manifest.key))
    return bad("manifest.key is not a sha256");
  if (!isObject(manifest.fields)) return bad("manifest.fields is missing");
  if (!isObject(manifest.files)) return bad("manifest.files is missing");
  let total = 0;
  for (const [name, file] of Object.entries(manifest.files)) {
    if (!IMAGE_NAME.test(name)) return bad(`manifest.files has an unsafe name ${JSON.stringify(name)}`);
    if (!isObject(file) || !Number.isSafeInteger(file.bytes) || (file.bytes as number) < 0)
      return bad(`manifest.files[${JSON.stringify(name)}].bytes is not a size`);
    if (typeof file.sha256 !== "string" || !HEX64.test(file.sha256))
      return bad(`manifest.files[${JSON.stringify(name)}].sha256 is not a sha256`);
    total += file.bytes as number;
  }
  if (manifest.imageBytes !== total) return bad("manifest.imageBytes is not the sum of its files");
  const host = value.host;
  if (!isObject(host)) return bad("host is missing");
  if (typeof host.arch !== "string" || typeof host.criuVersion !== "string") return bad("host is incomplete");
  if (!isStringList(host.cpuFlags) || !isStringList(host.criuFeatures))
    return bad("host lists are not strings");
  if (!Number.isSafeInteger(host.cpuCount)) return bad("host.cpuCount is not a number");
  if (host.memoryLimitBytes !== null && !Number.isSafeInteger(host.memoryLimitBytes))
    return bad("host.memoryLimitBytes is not a size");
  return { isValid: true, document: value as unknown as SnapshotDocument };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isStringList(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === "string");
}
