import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  sign,
  verify,
} from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { WarmstartError } from "../errors.js";
import { describeUnsafePath } from "./cache-dir.js";

/**
 * An Ed25519 signature over a snapshot document. The document lists every image's size and
 * sha256 and the cpuinfo image's digest, so signing it signs the whole snapshot.
 */
export interface SnapshotSignature {
  readonly algorithm: "ed25519";
  /** "ed25519:<base64 of the 32-byte key>", the form `warmstart keygen` prints and trust lists hold. */
  readonly publicKey: string;
  readonly signature: string;
}

export type SignatureVerdict =
  | { readonly isTrusted: true; readonly signer: string | null }
  | {
      readonly isTrusted: false;
      readonly reason: "unsigned" | "untrusted-key" | "bad-signature";
      readonly detail: string;
    };

// Domain separation: a signature over a document cannot be replayed as any other message.
const CONTEXT = Buffer.from("warmstart snapshot document v1\0");
const ED25519_SPKI_PREFIX = Buffer.from("302a300506032b6570032100", "hex");
const PUBLIC_KEY = /^ed25519:([A-Za-z0-9+/]{43}=)$/;

export function signDocument(documentBytes: Buffer, privateKey: KeyObject): SnapshotSignature {
  return {
    algorithm: "ed25519",
    publicKey: formatPublicKey(createPublicKey(privateKey)),
    signature: sign(null, Buffer.concat([CONTEXT, documentBytes]), privateKey).toString("base64"),
  };
}

export function formatPublicKey(publicKey: KeyObject): string {
  const der = publicKey.export({ format: "der", type: "spki" });
  return `ed25519:${der.subarray(ED25519_SPKI_PREFIX.length).toString("base64")}`;
}

/** Whether a public key text is well-formed; trust lists are validated where they enter. */
export function isPublicKeyText(text: string): boolean {
  return PUBLIC_KEY.test(text);
}

/**
 * Trusted when the signature verifies and its key is one the configuration (or this cache)
 * trusts; `isUnsignedAllowed` (the user's explicit flag) accepts anything.
 */
export function verifyDocumentSignature(
  documentBytes: Buffer,
  signature: SnapshotSignature | undefined,
  trustedKeys: readonly string[],
  isUnsignedAllowed: boolean,
): SignatureVerdict {
  if (isUnsignedAllowed) return { isTrusted: true, signer: signature?.publicKey ?? null };
  if (!signature) return { isTrusted: false, reason: "unsigned", detail: "the snapshot is not signed" };
  const match = PUBLIC_KEY.exec(signature.publicKey);
  if (signature.algorithm !== "ed25519" || !match?.[1]) {
    return { isTrusted: false, reason: "bad-signature", detail: "the signature is not an Ed25519 signature" };
  }
  if (!trustedKeys.includes(signature.publicKey)) {
    return {
      isTrusted: false,
      reason: "untrusted-key",
      detail: `signed by ${signature.publicKey}, which is not a trusted key`,
    };
  }
  const key = createPublicKey({
    key: Buffer.concat([ED25519_SPKI_PREFIX, Buffer.from(match[1], "base64")]),
    format: "der",
    type: "spki",
  });
  const isValid = verify(
    null,
    Buffer.concat([CONTEXT, documentBytes]),
    key,
    Buffer.from(signature.signature, "base64"),
  );
  return isValid
    ? { isTrusted: true, signer: signature.publicKey }
    : {
        isTrusted: false,
        reason: "bad-signature",
        detail: `the signature by ${signature.publicKey} does not verify`,
      };
}

export function parseSignature(bytes: Buffer): SnapshotSignature | undefined {
  try {
    const value = JSON.parse(bytes.toString("utf8")) as Partial<SnapshotSignature>;
    if (
      value.algorithm === "ed25519" &&
      typeof value.publicKey === "string" &&
      typeof value.signature === "string"
    ) {
      return { algorithm: value.algorithm, publicKey: value.publicKey, signature: value.signature };
    }
  } catch {
    // Not JSON: treated as no signature, which is refused unless unsigned ones are allowed.
  }
  return undefined;
}

/** A new Ed25519 key pair: the private key as PKCS#8 PEM, the public key as trust lists hold it. */
export function generateSigningKey(): { privateKeyPem: string; publicKey: string } {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  return {
    privateKeyPem: privateKey.export({ format: "pem", type: "pkcs8" }).toString(),
    publicKey: formatPublicKey(publicKey),
  };
}

export function loadSigningKey(path: string): KeyObject {
  let pem: string;
  try {
    pem = readFileSync(path, "utf8");
  } catch (error) {
    throw new WarmstartError(
      "invalid-option",
      `Cannot read the signing key ${path}: ${(error as Error).message}.`,
      {
        hint: "create one with `warmstart keygen -o <file>`",
      },
    );
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (error) {
    throw new WarmstartError("invalid-option", `The signing key ${path} is not a PEM private key.`, {
      cause: error,
    });
  }
  if (key.asymmetricKeyType !== "ed25519") {
    throw new WarmstartError(
      "invalid-option",
      `The signing key ${path} is ${key.asymmetricKeyType}, not Ed25519.`,
      {
        hint: "create one with `warmstart keygen -o <file>`",
      },
    );
  }
  return key;
}

/**
 * The cache's own signing key (signing-key.pem, 0600), created on first use. Snapshots this
 * cache exports are signed with it, and it is always trusted by the same cache, so an
 * export imported back needs no configuration; a fleet configures a shared key instead.
 */
export function readCacheSigningKey(cacheDir: string): KeyObject {
  const path = join(cacheDir, "signing-key.pem");
  try {
    writeFileSync(path, generateSigningKey().privateKeyPem, { mode: 0o600, flag: "wx" });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
  }
  const unsafe = describeUnsafePath(path, "file", 0o077);
  if (unsafe)
    throw new WarmstartError("cache-refused", `The cache's signing key is not safe to use: ${unsafe}.`);
  return loadSigningKey(path);
}
