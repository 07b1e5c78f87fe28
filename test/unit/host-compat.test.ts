import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { describe, it } from "node:test";
import type { CacheKeyFields } from "../../src/cache/key.js";
import { computeAppKey, rekeyForHost } from "../../src/cache/snapshot-document.js";
import {
  formatPublicKey,
  signDocument,
  verifyDocumentSignature,
} from "../../src/cache/snapshot-signature.js";
import { compareHostFacts } from "../../src/host/host-compat.js";
import type { HostFacts } from "../../src/host/host-facts.js";
import { resolveFleetSettings } from "../../src/remote/fleet-settings.js";

const HOST: HostFacts = {
  kernelRelease: "6.18.0",
  arch: "x64",
  cpuFlags: ["avx2", "fpu", "sse2"],
  cpuCount: 2,
  memoryLimitBytes: null,
  criuVersion: "4.2.1",
  criuFeatures: ["ns_pid", "clone3_set_tid", "timens", "uffd-noncoop"],
};

describe("compareHostFacts", () => {
  it("accepts another kernel release and more CPUs: the features decide, not the string", () => {
    assert.deepEqual(
      compareHostFacts(HOST, {
        ...HOST,
        kernelRelease: "6.12.9",
        cpuCount: 8,
        cpuFlags: [...HOST.cpuFlags, "avx512f"],
      }),
      [],
    );
  });
  it("names each difference that would break a restore", () => {
    const here: HostFacts = {
      ...HOST,
      cpuFlags: ["fpu", "sse2"],
      cpuCount: 1,
      criuVersion: "4.2.0",
      criuFeatures: ["ns_pid"],
      memoryLimitBytes: 1024,
    };
    assert.deepEqual(compareHostFacts(HOST, here), [
      "cpu flags missing here: avx2",
      "kernel feature clone3_set_tid missing here",
      "kernel feature timens missing here",
      "CRIU 4.2.0 here is older than the dump's 4.2.1",
      "1 CPUs here, the app was sized for 2",
      "memory limit 1024 bytes here, the app was sized for no limit",
    ]);
  });
  it("refuses another architecture outright", () => {
    assert.deepEqual(compareHostFacts(HOST, { ...HOST, arch: "arm64" }), ["architecture x64 != arm64"]);
  });
});

describe("the app key", () => {
  const fields = {
    formatVersion: 1,
    executableSha256: "a".repeat(64),
    executablePath: "/usr/bin/node",
    args: ["server.js"],
    cwd: "/srv",
    inputPatterns: [],
    inputs: {},
    inputIgnore: [],
    env: { PATH: "d1" },
    uid: 0,
    gid: 0,
    host: {
      kernelRelease: "6.18.0",
      cpuFlagsSha256: "b".repeat(64),
      criuVersion: "4.2.1",
      cpusAllowed: 2,
      cpuQuota: null,
      memoryLimitBytes: null,
    },
  } satisfies CacheKeyFields;
  it("is the same on hosts that differ only in their host part, and differs with the app", () => {
    const other = {
      ...fields,
      host: { ...fields.host, kernelRelease: "6.1.0", cpuFlagsSha256: "c".repeat(64), criuVersion: "4.3" },
    };
    assert.equal(computeAppKey(other), computeAppKey(fields));
    assert.notEqual(computeAppKey({ ...fields, args: ["other.js"] }), computeAppKey(fields));
    assert.notEqual(computeAppKey({ ...fields, env: { PATH: "d2" } }), computeAppKey(fields));
  });
  it("rekeys a snapshot to this host's fields", () => {
    const local = { kernelRelease: "6.1.0", cpuFlagsSha256: "c".repeat(64), criuVersion: "4.3" };
    const rekeyed = rekeyForHost({ fields, discovered: { mode: "fanotify", files: [] } }, local);
    assert.equal(rekeyed.fields.host.kernelRelease, "6.1.0");
    // The CPUs and memory the app sized itself for stay the dump's.
    assert.equal(rekeyed.fields.host.cpusAllowed, 2);
    assert.equal(computeAppKey(rekeyed.fields), computeAppKey(fields));
    assert.ok(rekeyed.key.endsWith(rekeyed.baseKey.slice(0, 32)));
  });
});

describe("signatures", () => {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const trusted = formatPublicKey(publicKey);
  const document = Buffer.from('{"a":1}\n');
  const signature = signDocument(document, privateKey);
  it("verify with a trusted key, and not once a byte changed", () => {
    assert.deepEqual(verifyDocumentSignature(document, signature, [trusted], false), {
      isTrusted: true,
      signer: trusted,
    });
    const verdict = verifyDocumentSignature(Buffer.from('{"a":2}\n'), signature, [trusted], false);
    assert.equal(verdict.isTrusted ? "" : verdict.reason, "bad-signature");
  });
  it("refuse unsigned and untrusted documents unless told otherwise", () => {
    const unsigned = verifyDocumentSignature(document, undefined, [trusted], false);
    assert.equal(unsigned.isTrusted ? "" : unsigned.reason, "unsigned");
    const untrusted = verifyDocumentSignature(document, signature, [], false);
    assert.equal(untrusted.isTrusted ? "" : untrusted.reason, "untrusted-key");
    assert.equal(verifyDocumentSignature(document, undefined, [], true).isTrusted, true);
  });
});

describe("resolveFleetSettings", () => {
  it("takes the remote and keys from the environment, and names a bad value", () => {
    const settings = resolveFleetSettings(
      {},
      {
        WARMSTART_REMOTE: "oci://127.0.0.1:5000/team/app",
        WARMSTART_TRUSTED_KEYS: `ed25519:${"A".repeat(43)}=`,
      },
    );
    assert.equal(settings.remote?.baseUrl, "http://127.0.0.1:5000");
    assert.equal(settings.remote?.repository, "team/app");
    assert.equal(settings.maxArchiveBytes, 4 * 1024 ** 3);
    assert.equal(
      resolveFleetSettings({ remote: "oci://registry.example/app" }, {}).remote?.baseUrl,
      "https://registry.example",
    );
    assert.throws(
      () => resolveFleetSettings({ remote: "https://x/y" }, {}),
      /Expected --remote to be oci:\/\/<registry>\/<repository>/,
    );
    assert.throws(
      () => resolveFleetSettings({ trust: ["ed25519:short"] }, {}),
      /Expected --trust to be a key starting with ed25519:/,
    );
    assert.throws(() => resolveFleetSettings({ maxArchiveSize: "lots" }, {}), /Expected --max-archive-size/);
  });
});
