import { readFileSync } from "node:fs";
import type { ParseArgsConfig } from "node:util";
import { parseSize } from "../cache/parse-size.js";
import { isPublicKeyText } from "../cache/snapshot-signature.js";
import { invalidOption, WarmstartError } from "../errors.js";
import { parseRemoteRef, type RemoteRef } from "./oci-ref.js";

/**
 * How snapshots travel for this launch or command: where the remote cache is, which keys sign
 * and which are trusted, how archives are encrypted. Resolved once where it enters (flags over
 * environment), then frozen.
 */
export interface FleetSettings {
  readonly remote: RemoteRef | undefined;
  /** PEM file of the Ed25519 key that signs exports and pushes; default: the cache's own key. */
  readonly signingKeyPath: string | undefined;
  /** Public keys whose signatures imports and pulls accept (the cache's own key always is). */
  readonly trustedKeys: readonly string[];
  /** Accept unsigned or untrusted snapshots: only when the user says so. */
  readonly isUnsignedAllowed: boolean;
  /** age recipients: exports and pushes are encrypted to them when any is given. */
  readonly recipients: readonly string[];
  /** age identities (file contents) that decrypt imports and pulls. */
  readonly identities: readonly string[];
  /** Digests environment values with it instead of the cache's own secret, so that hosts of
   * one fleet compute the same key for the same app. */
  readonly fleetSecret: Buffer | undefined;
  readonly maxArchiveBytes: number;
  /** Push after a cold start (run); --no-remote-push turns it off. */
  readonly isPushEnabled: boolean;
}

export interface FleetFlags {
  readonly remote?: string | undefined;
  readonly signKey?: string | undefined;
  readonly trust?: readonly string[] | undefined;
  readonly allowUnsigned?: boolean | undefined;
  readonly encrypt?: readonly string[] | undefined;
  readonly identity?: readonly string[] | undefined;
  readonly fleetSecretFile?: string | undefined;
  readonly maxArchiveSize?: string | undefined;
  readonly isPushDisabled?: boolean | undefined;
}

/** The flags every travelling command takes, for parseArgs. */
export const FLEET_FLAGS = {
  remote: { type: "string" },
  "sign-key": { type: "string" },
  trust: { type: "string", multiple: true },
  "allow-unsigned": { type: "boolean" },
  encrypt: { type: "string", multiple: true },
  identity: { type: "string", multiple: true },
  "fleet-secret-file": { type: "string" },
  "max-archive-size": { type: "string" },
} satisfies NonNullable<ParseArgsConfig["options"]>;

export const FLEET_USAGE = `Travel (flags, else the environment variable named):
  --remote oci://<registry>/<repository>   the remote cache (WARMSTART_REMOTE)
  --sign-key <file>        Ed25519 PEM key that signs (WARMSTART_SIGNING_KEY; default: the cache's own)
  --trust <key|file>       a public key "ed25519:..." (or a file of them) to accept (repeatable;
                           WARMSTART_TRUSTED_KEYS, comma-separated); the cache's own key is trusted
  --allow-unsigned         accept unsigned or untrusted snapshots
  --encrypt <age1...|file> encrypt to an age recipient (repeatable; WARMSTART_ENCRYPT_TO)
  --identity <file>        age identity file that decrypts (repeatable; WARMSTART_IDENTITY)
  --fleet-secret-file <f>  the secret environment values are digested with, shared by a fleet
                           (WARMSTART_FLEET_SECRET_FILE)
  --max-archive-size <n>   refuse archives larger than this (default 4G; WARMSTART_MAX_ARCHIVE_SIZE)`;

/** 4 GiB: ten times the largest image measured here (350 MB), far below a full disk. */
export const DEFAULT_MAX_ARCHIVE_BYTES = 4 * 1024 ** 3;

type Values = Readonly<Record<string, string | boolean | (string | boolean)[] | undefined>>;

/** The FleetFlags in parseArgs values of FLEET_FLAGS. */
export function toFleetFlags(values: Values): FleetFlags {
  const text = (name: string) => values[name] as string | undefined;
  const list = (name: string) => (values[name] as string[] | undefined) ?? [];
  return {
    remote: text("remote"),
    signKey: text("sign-key"),
    trust: list("trust"),
    allowUnsigned: values["allow-unsigned"] === true,
    encrypt: list("encrypt"),
    identity: list("identity"),
    fleetSecretFile: text("fleet-secret-file"),
    maxArchiveSize: text("max-archive-size"),
    isPushDisabled: values["no-remote-push"] === true,
  };
}

export function resolveFleetSettings(flags: FleetFlags, env: NodeJS.ProcessEnv = process.env): FleetSettings {
  const fromEnv = (name: string) =>
    (env[name] ?? "")
      .split(",")
      .map((item) => item.trim())
      .filter(Boolean);
  const remoteText = flags.remote ?? env.WARMSTART_REMOTE;
  const trustSources =
    flags.trust && flags.trust.length > 0 ? flags.trust : fromEnv("WARMSTART_TRUSTED_KEYS");
  const recipientSources =
    flags.encrypt && flags.encrypt.length > 0 ? flags.encrypt : fromEnv("WARMSTART_ENCRYPT_TO");
  const identityFiles =
    flags.identity && flags.identity.length > 0 ? flags.identity : fromEnv("WARMSTART_IDENTITY");
  const secretFile = flags.fleetSecretFile ?? env.WARMSTART_FLEET_SECRET_FILE;
  const maxSize = flags.maxArchiveSize ?? env.WARMSTART_MAX_ARCHIVE_SIZE;
  return Object.freeze({
    remote: remoteText ? parseRemoteRef(remoteText) : undefined,
    signingKeyPath: flags.signKey ?? env.WARMSTART_SIGNING_KEY,
    trustedKeys: trustSources.flatMap((source) =>
      readKeyList(source, "--trust", isPublicKeyText, "ed25519:"),
    ),
    isUnsignedAllowed: flags.allowUnsigned === true,
    recipients: recipientSources.flatMap((source) =>
      readKeyList(source, "--encrypt", (text) => /^age1[0-9a-z]+$/.test(text), "age1"),
    ),
    identities: identityFiles.flatMap((file) =>
      readFileText(file, "--identity")
        .split("\n")
        .map((line) => line.trim())
        .filter((line) => line.startsWith("AGE-SECRET-KEY-")),
    ),
    fleetSecret: secretFile ? readFleetSecret(secretFile) : undefined,
    maxArchiveBytes: maxSize ? parseSize(maxSize, "--max-archive-size") : DEFAULT_MAX_ARCHIVE_BYTES,
    isPushEnabled: flags.isPushDisabled !== true,
  });
}

/** A key given inline, or a file holding keys one a line (comments with #). */
function readKeyList(
  source: string,
  option: string,
  isValid: (text: string) => boolean,
  prefix: string,
): string[] {
  const keys = source.startsWith(prefix)
    ? [source]
    : readFileText(source, option)
        .split("\n")
        .map((line) => line.replace(/#.*/, "").trim())
        .filter(Boolean);
  for (const key of keys) {
    if (!isValid(key)) throw invalidOption(option, `a key starting with ${prefix} or a file of them`, key);
  }
  return keys;
}

function readFileText(path: string, option: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    throw new WarmstartError(
      "invalid-option",
      `Cannot read ${option} file ${path}: ${(error as Error).message}.`,
    );
  }
}

function readFleetSecret(path: string): Buffer {
  const secret = Buffer.from(readFileText(path, "--fleet-secret-file").trim());
  if (secret.length < 16) {
    throw new WarmstartError("invalid-option", `The fleet secret in ${path} is shorter than 16 bytes.`, {
      hint: "generate one with: head -c 32 /dev/urandom | base64 > fleet-secret",
    });
  }
  return secret;
}
