// Cache entries made of real files through the real EntryStore, without CRIU: the cache
// code reads manifests, stats and image files, never what is inside the images.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after } from "node:test";
import { EntryStore } from "../../src/cache/entry-store.js";
import { type CacheKeyFields, IMAGE_FORMAT_VERSION } from "../../src/cache/key.js";

const cacheDirs: string[] = [];
// Each test file runs in its own process: this removes the stores that file made.
after(() => {
  for (const dir of cacheDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A store in a fresh cache directory, removed after the test file. */
export function makeStore(): { cacheDir: string; store: EntryStore } {
  const cacheDir = mkdtempSync(join(tmpdir(), "warmstart-unit-"));
  cacheDirs.push(cacheDir);
  return { cacheDir, store: new EntryStore(cacheDir) };
}

/** A host part as the key records it: this VM's kind of values. */
export function fakeHost(overrides: Partial<CacheKeyFields["host"]> = {}): CacheKeyFields["host"] {
  return {
    kernelRelease: "6.18.44",
    cpuFlagsSha256: "c".repeat(64),
    criuVersion: "4.2.1",
    cpusAllowed: 2,
    cpuQuota: null,
    memoryLimitBytes: null,
    ...overrides,
  };
}

export interface FakeEntry {
  readonly key: string;
  readonly dir: string;
  readonly imagesDir: string;
}

/** A 64-digit key that starts with prefix (the rest zeros), so tests can choose prefixes. */
export function fakeKey(prefix: string): string {
  return prefix.padEnd(64, "0");
}

export async function commitFakeEntry(
  store: EntryStore,
  key: string,
  options: {
    command?: string[];
    cwd?: string;
    /** The key's environment digests (variable -> digest). */
    env?: Record<string, string>;
    pagesBytes?: number;
    createdAt?: string;
    baseKey?: string;
    host?: CacheKeyFields["host"];
  } = {},
): Promise<FakeEntry> {
  const pending = store.createPending(key);
  writeFileSync(join(pending.imagesDir, "core-1.img"), "metadata image");
  writeFileSync(join(pending.imagesDir, "pages-1.img"), Buffer.alloc(options.pagesBytes ?? 4096, 7));
  const cwd = options.cwd ?? "/srv/app";
  const entry = await store.commit(pending.dir, {
    formatVersion: IMAGE_FORMAT_VERSION,
    key,
    baseKey: options.baseKey ?? key,
    discovered: { mode: "fanotify", files: [] },
    // Only cwd, env and host are read by the code under test; the rest of the key is the launch's business.
    fields: {
      formatVersion: IMAGE_FORMAT_VERSION,
      cwd,
      env: options.env ?? {},
      host: options.host,
    } as CacheKeyFields,
    command: options.command ?? ["node", "server.js"],
    pid: 4242,
    stdio: ["pipe:[1]", "pipe:[2]", "pipe:[3]"],
    createdAt: options.createdAt ?? "2025-01-01T00:00:00.000Z",
    coldReadyMs: 1500,
    checkpointMs: 300,
  });
  if (!entry.isCommitted) throw new Error(`entry ${key} already exists`);
  return { key, dir: entry.entry.dir, imagesDir: entry.entry.imagesDir };
}
