// Hostile and damaged archives against the real importer, on a real store: each is refused
// with its reason and member, and the cache is left exactly as it was.
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { PassThrough, Readable } from "node:stream";
import { describe, it } from "node:test";
import { pack as createPack } from "tar-stream";
import { describeEntry, type SignedDocument, writeArchive } from "../../src/cache/archive-export.js";
import { type ImportOptions, type ImportOutcome, importArchive } from "../../src/cache/archive-import.js";
import { generateAgeIdentity } from "../../src/cache/archive-stages.js";
import type { EntryStore } from "../../src/cache/entry-store.js";
import { formatPublicKey, signDocument } from "../../src/cache/snapshot-signature.js";
import type { HostFacts } from "../../src/host/host-facts.js";
import { commitFakeEntry, fakeKey, makeStore } from "./fake-entries.js";

const HOST: HostFacts = {
  kernelRelease: "6.18.0",
  arch: "x64",
  cpuFlags: ["fpu", "sse2"],
  cpuCount: 2,
  memoryLimitBytes: null,
  criuVersion: "4.2.1",
  criuFeatures: ["ns_pid", "clone3_set_tid", "timens"],
};
const { privateKey } = generateKeyPairSync("ed25519");
const TRUSTED = formatPublicKey(generateKeyPairSync("ed25519").publicKey);
const SIGNER = signDocument(Buffer.from("x"), privateKey).publicKey;

interface Member {
  readonly name: string;
  readonly body?: Buffer;
  readonly type?: "file" | "symlink" | "link" | "character-device" | "directory";
  readonly size?: number;
}

/** A source store with one entry, its signed document and the members a good archive has. */
async function makeSource() {
  const { store } = makeStore();
  const key = fakeKey("abc");
  const entry = await commitFakeEntry(store, key, { pagesBytes: 10_000 });
  const found = await store.lookup(key);
  assert.ok(found.hit);
  const source = {
    entryDir: entry.dir,
    manifest: found.entry.manifest,
    localHost: async () => ({ host: HOST, cpuinfoImage: undefined }),
  };
  const signed = await describeEntry(source, privateKey);
  const members: Member[] = [
    { name: "snapshot.json", body: signed.documentBytes },
    { name: "snapshot.sig", body: Buffer.from(JSON.stringify(signed.signature)) },
    { name: "images/core-1.img", body: Buffer.from("metadata image") },
    { name: "images/pages-1.img", body: Buffer.alloc(10_000, 7) },
  ];
  return { source, signed, members };
}

async function tarOf(members: readonly Member[]): Promise<Buffer> {
  const tar = createPack();
  // Read while writing: a pack nobody reads stops at its buffer's size.
  const chunks: Buffer[] = [];
  tar.on("data", (chunk) => chunks.push(chunk as Buffer));
  const ended = new Promise<void>((resolve) => tar.on("end", () => resolve()));
  for (const member of members) {
    const body = member.body ?? Buffer.alloc(0);
    const type = member.type ?? "file";
    await new Promise<void>((resolve, reject) => {
      const header = {
        name: member.name,
        type,
        size: type === "file" ? (member.size ?? body.length) : 0,
        ...(type === "symlink" || type === "link" ? { linkname: "/etc/shadow" } : {}),
        ...(type === "character-device" ? { devmajor: 1, devminor: 3 } : {}),
      };
      if (type !== "file" || member.size === undefined) {
        tar.entry(header, type === "file" ? body : Buffer.alloc(0), (error) =>
          error ? reject(error) : resolve(),
        );
        return;
      }
      // A header that lies about its size: write the real body, let the stream end short.
      const stream = tar.entry(header, (error) => (error ? reject(error) : resolve()));
      stream.end(body.subarray(0, member.size));
    });
  }
  tar.finalize();
  await ended;
  return Buffer.concat(chunks);
}

function listTree(dir: string): string[] {
  const out: string[] = [];
  const walk = (path: string) => {
    for (const name of readdirSync(path)) {
      const child = join(path, name);
      out.push(child);
      if (statSync(child).isDirectory()) walk(child);
    }
  };
  walk(dir);
  return out.sort();
}

/** Imports into a fresh store; returns the outcome and asserts the cache did not change when refused. */
async function importInto(
  archive: Buffer,
  overrides: Partial<ImportOptions> = {},
): Promise<{ outcome: ImportOutcome; store: EntryStore }> {
  const { store, cacheDir } = makeStore();
  const before = listTree(cacheDir);
  const outcome = await importArchive(Readable.from([archive]), {
    store,
    trustedKeys: [SIGNER],
    isUnsignedAllowed: false,
    identities: [],
    maxArchiveBytes: 10 * 1024 * 1024,
    admit: async (document) => ({
      isAdmitted: true,
      key: document.manifest.key,
      baseKey: document.manifest.baseKey,
      fields: document.manifest.fields,
    }),
    ...overrides,
  });
  if (!outcome.imported)
    assert.deepEqual(
      listTree(cacheDir).filter((path) => path !== store.root),
      before,
      "the cache changed",
    );
  return { outcome, store };
}

function assertRefused(outcome: ImportOutcome, reason: string, member?: string): void {
  assert.equal(outcome.imported, false, "the archive was imported");
  if (outcome.imported) return;
  assert.equal(outcome.reason, reason, outcome.detail);
  if (member !== undefined) assert.equal(outcome.member, member, outcome.detail);
}

async function exported(
  signed: SignedDocument,
  source: Awaited<ReturnType<typeof makeSource>>["source"],
  options: { isCompressed: boolean; recipients?: string[] },
): Promise<Buffer> {
  const sink = new PassThrough();
  const chunks: Buffer[] = [];
  sink.on("data", (chunk: Buffer) => chunks.push(chunk));
  await writeArchive(
    source,
    signed,
    { isCompressed: options.isCompressed, recipients: options.recipients ?? [] },
    sink,
  );
  return Buffer.concat(chunks);
}

describe("importArchive", () => {
  it("imports what export wrote (zstd) and the entry passes the store's lookup", async () => {
    const { source, signed } = await makeSource();
    const { outcome, store } = await importInto(await exported(signed, source, { isCompressed: true }));
    assert.ok(outcome.imported, JSON.stringify(outcome));
    const found = await store.lookup(outcome.key);
    assert.ok(found.hit, JSON.stringify(found));
  });

  it("imports an encrypted archive with the right identity, refuses it with a wrong one", async () => {
    const { source, signed } = await makeSource();
    const right = await generateAgeIdentity();
    const wrong = await generateAgeIdentity();
    const archive = await exported(signed, source, { isCompressed: true, recipients: [right.recipient] });
    assert.ok(!archive.includes(Buffer.from("metadata image")), "the ciphertext holds plaintext");
    assert.ok((await importInto(archive, { identities: [right.identity] })).outcome.imported);
    assertRefused((await importInto(archive, { identities: [wrong.identity] })).outcome, "decrypt-failed");
    assertRefused((await importInto(archive)).outcome, "decrypt-failed");
  });

  const hostile: [string, (members: Member[]) => Member[], string, string | undefined][] = [
    [
      "an absolute path",
      (m) => [...m.slice(0, 2), { name: "/etc/cron.d/evil", body: Buffer.from("x") }],
      "unsafe-member",
      "/etc/cron.d/evil",
    ],
    [
      "a .. segment",
      (m) => [...m.slice(0, 2), { name: "images/../../evil", body: Buffer.from("x") }],
      "unsafe-member",
      "images/../../evil",
    ],
    [
      "a symlink",
      (m) => [...m.slice(0, 2), { name: "images/core-1.img", type: "symlink" }],
      "unsafe-member",
      "images/core-1.img",
    ],
    [
      "a hard link",
      (m) => [...m.slice(0, 2), { name: "images/core-1.img", type: "link" }],
      "unsafe-member",
      "images/core-1.img",
    ],
    [
      "a device",
      (m) => [...m.slice(0, 2), { name: "images/core-1.img", type: "character-device" }],
      "unsafe-member",
      "images/core-1.img",
    ],
    [
      "a member the manifest does not list",
      (m) => [...m, { name: "images/extra.img", body: Buffer.from("x") }],
      "unexpected-member",
      "images/extra.img",
    ],
    ["a member twice", (m) => [...m, m[3] as Member], "unexpected-member", "images/pages-1.img"],
    [
      "a size that does not match",
      (m) => [...m.slice(0, 3), { name: "images/pages-1.img", body: Buffer.alloc(10_001, 7) }],
      "size-mismatch",
      "images/pages-1.img",
    ],
    [
      "a sha256 that does not match",
      (m) => [...m.slice(0, 3), { name: "images/pages-1.img", body: Buffer.alloc(10_000, 8) }],
      "digest-mismatch",
      "images/pages-1.img",
    ],
    [
      "a manifest that does not parse",
      (m) => [{ name: "snapshot.json", body: Buffer.from("{not json") }, ...m.slice(1)],
      "bad-document",
      "snapshot.json",
    ],
    ["no manifest first", (m) => m.slice(2), "bad-document", "images/core-1.img"],
    ["a missing image", (m) => m.slice(0, 3), "truncated", "images/pages-1.img"],
    ["no signature", (m) => [m[0] as Member, ...m.slice(2)], "unsigned", "snapshot.sig"],
  ];
  for (const [what, mutate, reason, member] of hostile) {
    it(`refuses ${what} (${reason}) and leaves the cache as it was`, async () => {
      const { members } = await makeSource();
      assertRefused((await importInto(await tarOf(mutate(members)))).outcome, reason, member);
    });
  }

  it("refuses a snapshot signed by a key it does not trust, and one whose signature does not verify", async () => {
    const { members, signed } = await makeSource();
    assertRefused(
      (await importInto(await tarOf(members), { trustedKeys: [TRUSTED] })).outcome,
      "untrusted-key",
      "snapshot.sig",
    );
    const tampered = Buffer.from(signed.documentBytes.toString().replace('"pid": 4242', '"pid": 4243'));
    const forged = [{ name: "snapshot.json", body: tampered }, ...members.slice(1)];
    assertRefused((await importInto(await tarOf(forged))).outcome, "bad-signature", "snapshot.sig");
    const unsigned = [members[0] as Member, ...members.slice(2)];
    assert.ok((await importInto(await tarOf(unsigned), { isUnsignedAllowed: true })).outcome.imported);
  });

  it("refuses an archive over the size limit", async () => {
    const { members } = await makeSource();
    assertRefused(
      (await importInto(await tarOf(members), { maxArchiveBytes: 8 * 1024 })).outcome,
      "too-large",
    );
  });

  it("refuses a truncated stream, plain and compressed", async () => {
    const { members, signed, source } = await makeSource();
    const plain = await tarOf(members);
    assertRefused((await importInto(plain.subarray(0, plain.length - 2048 - 3000))).outcome, "truncated");
    const compressed = await exported(signed, source, { isCompressed: true });
    assertRefused((await importInto(compressed.subarray(0, compressed.length - 20))).outcome, "truncated");
  });

  it("refuses a snapshot its caller does not admit (host compatibility), before any image", async () => {
    const { members } = await makeSource();
    const admit: ImportOptions["admit"] = async () => ({
      isAdmitted: false,
      detail: "cpu flags missing here: avx2",
    });
    const { outcome } = await importInto(await tarOf(members), { admit });
    assertRefused(outcome, "not-admitted");
    assert.match(outcome.imported ? "" : outcome.detail, /avx2/);
  });

  it("keeps an entry the cache already has", async () => {
    const { members } = await makeSource();
    const archive = await tarOf(members);
    const { store } = makeStore();
    const options: ImportOptions = {
      store,
      trustedKeys: [SIGNER],
      isUnsignedAllowed: false,
      identities: [],
      maxArchiveBytes: 1024 * 1024,
      admit: async (document) => ({
        isAdmitted: true,
        key: document.manifest.key,
        baseKey: document.manifest.baseKey,
        fields: document.manifest.fields,
      }),
    };
    assert.ok((await importArchive(Readable.from([archive]), options)).imported);
    assertRefused(await importArchive(Readable.from([archive]), options), "already-present");
  });
});
