// Issue 4: `warmstart ls`, `rm`, `prune` and `verify` on entries made by real launches.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, chownSync, cpSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { currentOwner, formatOwnerTag } from "../../src/cache/owner-stamp.js";
import { formatBytes, formatDirectory } from "../../src/commands/format.js";
import { flipByte } from "../corrupt-file.js";
import {
  escapeRegExp,
  fixture,
  freePort,
  listEntries,
  makeCacheDir,
  STORE_DIR,
  useIntegrationRig,
  WarmstartRun,
  waitUntil,
} from "./rig.js";

useIntegrationRig();

interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

async function warmstart(...args: string[]): Promise<CliResult> {
  const run = new WarmstartRun(args);
  const { code } = await run.exited;
  return { code, stdout: run.stdout, stderr: run.stderr };
}

/** Launches the ticker fixture cold with `name` as its argument; returns the entry's key once committed. */
async function makeEntry(cacheDir: string, name: string): Promise<string> {
  const before = new Set(listEntries(cacheDir));
  const port = await freePort();
  const run = new WarmstartRun(
    [
      "run",
      "--cache-dir",
      cacheDir,
      "--ready",
      `tcp:${port}`,
      "--",
      "node",
      fixture("ticker-server.cjs"),
      name,
    ],
    { PORT: String(port) },
  );
  const isCommitted = await waitUntil(() => listEntries(cacheDir).some((key) => !before.has(key)), 60_000);
  await run.stop();
  assert.ok(isCommitted, `no entry for ${name} in ${cacheDir}\nstderr:\n${run.stderr}`);
  const key = listEntries(cacheDir).find((entry) => !before.has(entry));
  assert.ok(key);
  return key;
}

interface ManifestOnDisk {
  readonly command: string[];
  readonly baseKey: string;
  readonly fields: { readonly cwd: string; readonly host: unknown; readonly inputs: Record<string, string> };
  readonly discovered: { readonly mode: string; readonly files: string[] };
  readonly imageBytes: number;
  readonly createdAt: string;
  readonly coldReadyMs: number;
}

function readManifest(cacheDir: string, key: string): ManifestOnDisk {
  return JSON.parse(readFileSync(join(cacheDir, STORE_DIR, key, "manifest.json"), "utf8")) as ManifestOnDisk;
}

/** What the entry costs on disk, counted by find(1) rather than by the code under test. */
function diskBytes(dir: string): number {
  const sizes = execFileSync("find", [dir, "-type", "f", "-printf", "%s\n"], { encoding: "utf8" });
  return sizes
    .split("\n")
    .filter(Boolean)
    .reduce((sum, size) => sum + Number(size), 0);
}

function findPagesFile(imagesDir: string): string {
  const pages = readdirSync(imagesDir).find((name) => /^pages-\d+\.img$/.test(name));
  assert.ok(pages, `no pages file in ${imagesDir}`);
  return join(imagesDir, pages);
}

describe("cache commands", () => {
  test("ls shows real entries as a table and as JSON; another user's entry is refused, kept by prune and rm; rm --all", async () => {
    const cacheDir = makeCacheDir();
    const one = await makeEntry(cacheDir, "one");
    const two = await makeEntry(cacheDir, "two");
    const entryJson = (key: string) => {
      const manifest = readManifest(cacheDir, key);
      return {
        key,
        state: "ok",
        command: manifest.command,
        cwd: manifest.fields.cwd,
        sizeBytes: diskBytes(join(cacheDir, STORE_DIR, key)),
        imageBytes: manifest.imageBytes,
        createdAt: manifest.createdAt,
        lastUsedAt: manifest.createdAt,
        hits: 0,
        coldReadyMs: manifest.coldReadyMs,
        warmReadyMs: null,
        bestWarmReadyMs: null,
        isWarmNotFaster: false,
        baseKey: manifest.baseKey,
        host: manifest.fields.host,
        inputs: {
          mode: "fanotify",
          declared: [],
          discovered: manifest.discovered.files.map((line) => line.split(" ").slice(7).join(" ")),
        },
      };
    };
    const listedJson = await warmstart("ls", "--cache-dir", cacheDir, "--json");
    assert.equal(listedJson.code, 0, listedJson.stderr);
    // Most recently used first: two was made last.
    assert.deepEqual(JSON.parse(listedJson.stdout), {
      cacheDir,
      entries: [entryJson(two), entryJson(one)],
      serving: [],
    });

    const table = await warmstart("ls", "--cache-dir", cacheDir);
    assert.equal(table.code, 0, table.stderr);
    const command = (name: string) => `node ${fixture("ticker-server.cjs")} ${name}`;
    const sizes = [two, one].map((key) => formatBytes(diskBytes(join(cacheDir, STORE_DIR, key))));
    const sizeWidth = Math.max(4, ...sizes.map((size) => size.length));
    const commandWidth = command("one").length;
    const directory = formatDirectory(readManifest(cacheDir, one).fields.cwd);
    // The column is as wide as its header when the path is shorter (a checkout in /tmp/ci).
    const directoryWidth = Math.max("DIRECTORY".length, directory.length);
    const coldWidth = (key: string) => String(readManifest(cacheDir, key).coldReadyMs).padStart(7);
    const inputCounts = [two, one].map((key) => String(readManifest(cacheDir, key).discovered.files.length));
    const inputsWidth = Math.max(6, ...inputCounts.map((count) => count.length));
    const inputsOf = (key: string) =>
      String(readManifest(cacheDir, key).discovered.files.length).padStart(inputsWidth);
    const row = (key: string, name: string, size: string) =>
      new RegExp(
        `^${escapeRegExp(`${key.slice(0, 12)}  ${command(name)}  ${directory.padEnd(directoryWidth)}  ${size.padStart(sizeWidth)}  `)}` +
          // Age and last use: the seconds since the launch above, in columns of fixed width.
          `(?: \\d|\\d\\d)[sm]  (?:   \\d|  \\d\\d)[sm] ago` +
          `${escapeRegExp(`     0  ${coldWidth(key)}        -  ${inputsOf(key)}`)}$`,
      );
    const lines = table.stdout.split("\n");
    assert.equal(lines.length, 4, table.stdout);
    assert.equal(
      lines[0],
      `KEY           ${"COMMAND".padEnd(commandWidth)}  ${"DIRECTORY".padEnd(directoryWidth)}  ${"SIZE".padStart(sizeWidth)}  AGE  LAST USED  HITS  COLD MS  WARM MS  ${"INPUTS".padStart(inputsWidth)}`,
    );
    assert.match(lines[1] ?? "", row(two, "two", sizes[0] ?? ""));
    assert.match(lines[2] ?? "", row(one, "one", sizes[1] ?? ""));
    assert.equal(lines[3], "");

    const foreignDir = join(cacheDir, STORE_DIR, two);
    chownSync(foreignDir, 65534, 65534);
    const refusal = `${foreignDir} is owned by uid 65534, not by you (uid 0)`;
    const withForeign = await warmstart("ls", "--cache-dir", cacheDir);
    assert.equal(withForeign.stdout.split("\n")[2], `${two.slice(0, 12)}  refused: ${refusal}`);
    const withForeignJson = JSON.parse((await warmstart("ls", "--cache-dir", cacheDir, "--json")).stdout);
    assert.deepEqual(withForeignJson.entries[1], {
      key: two,
      state: "refused",
      detail: refusal,
      sizeBytes: diskBytes(foreignDir),
      ownerUid: 65534,
    });

    const pruned = await warmstart("prune", "--cache-dir", cacheDir, "--max-cache-size", "1G");
    assert.equal(pruned.code, 0, pruned.stderr);
    assert.equal(
      pruned.stdout,
      `kept ${two.slice(0, 12)} (${formatBytes(diskBytes(foreignDir))}): refused: ${refusal}; inspect it and remove it by hand\n` +
        `cache: 1 entry, ${sizes[1]} of 1.0 GiB\n`,
    );
    const removed = await warmstart("rm", two.slice(0, 12), "--cache-dir", cacheDir);
    assert.equal(removed.code, 1);
    assert.equal(removed.stdout, "");
    assert.equal(
      removed.stderr,
      `warmstart: kept ${two.slice(0, 12)}: ${refusal}; inspect it and remove it by hand\n`,
    );
    assert.deepEqual(listEntries(cacheDir).sort(), [one, two].sort());

    chownSync(foreignDir, 0, 0);
    const sizeOf = (key: string) => formatBytes(diskBytes(join(cacheDir, STORE_DIR, key)));
    const expectedRemovals = [one, two]
      .sort()
      .map((key) => `removed ${key.slice(0, 12)} (${sizeOf(key)})\n`)
      .join("");
    const removedAll = await warmstart("rm", "--all", "--cache-dir", cacheDir);
    assert.equal(removedAll.code, 0, removedAll.stderr);
    assert.equal(removedAll.stdout, expectedRemovals);
    assert.deepEqual(listEntries(cacheDir), []);
  });

  test("verify re-hashes the pages: a flipped byte fails it, --fix removes the entry; prune evicts over the cap", async () => {
    const cacheDir = makeCacheDir();
    const one = await makeEntry(cacheDir, "one");
    const two = await makeEntry(cacheDir, "two");
    const sound = await warmstart("verify", "--cache-dir", cacheDir);
    assert.equal(sound.code, 0, sound.stderr);
    const [first = "", second = ""] = [one, two].sort();
    // A sound entry says how many inputs it has and that they are still as recorded.
    const okLine = (key: string) =>
      `${key.slice(0, 12)}  ok; ${readManifest(cacheDir, key).discovered.files.length} inputs, as recorded`;
    const inputsOf = (key: string) => ({
      mode: "fanotify",
      paths: readManifest(cacheDir, key).discovered.files.map((line) => line.split(" ").slice(7).join(" ")),
      stale: null,
    });
    assert.equal(
      sound.stdout,
      `${okLine(first)}\n${okLine(second)}\n2 entries: 2 ok, 0 corrupt, 0 refused\n`,
    );

    const pages = findPagesFile(join(cacheDir, STORE_DIR, one, "images"));
    flipByte(pages, 4096 + 17);
    const damage = `${pages} does not match its sha256 in the manifest`;
    const found = await warmstart("verify", "--cache-dir", cacheDir, "--json");
    assert.equal(found.code, 1);
    assert.deepEqual(JSON.parse(found.stdout), {
      cacheDir,
      isSound: false,
      entries: [one, two]
        .sort()
        .map((key) =>
          key === one
            ? { key, state: "corrupt", detail: damage, isRemoved: false }
            : { key, state: "ok", inputs: inputsOf(key), isRemoved: false },
        ),
    });
    const onlyTwo = await warmstart("verify", two.slice(0, 8), "--cache-dir", cacheDir);
    assert.equal(onlyTwo.code, 0);
    assert.equal(onlyTwo.stdout, `${okLine(two)}\n1 entry: 1 ok, 0 corrupt, 0 refused\n`);

    const fixed = await warmstart("verify", "--fix", "--cache-dir", cacheDir);
    assert.equal(fixed.code, 0, fixed.stderr);
    const fixedLines = [one, two]
      .sort()
      .map((key) => (key === one ? `${key.slice(0, 12)}  corrupt: ${damage} (removed)` : okLine(key)));
    assert.equal(
      fixed.stdout,
      `${fixedLines.join("\n")}\n2 entries: 1 ok, 1 corrupt, 0 refused, 1 removed\n`,
    );
    assert.deepEqual(listEntries(cacheDir), [two]);

    const twoBytes = diskBytes(join(cacheDir, STORE_DIR, two));
    const evicted = await warmstart("prune", "--max-cache-size", "1", "--cache-dir", cacheDir);
    assert.equal(evicted.code, 0, evicted.stderr);
    assert.equal(
      evicted.stdout,
      `evicted ${two.slice(0, 12)} (${formatBytes(twoBytes)}): least recently used, over the 1 B cap\ncache: 0 entries, 0 B of 1 B\n`,
    );
    assert.deepEqual(listEntries(cacheDir), []);
  });

  test("rm by prefix: ambiguous and unknown prefixes remove nothing; prune clears abandoned dumps and damaged entries", async () => {
    const cacheDir = makeCacheDir();
    const key = await makeEntry(cacheDir, "one");
    // A second entry that shares the first six digits: a copy, so its manifest names another key.
    const twin = `${key.slice(0, 6)}${(key[6] === "f" ? "e" : "f").repeat(58)}`;
    cpSync(join(cacheDir, STORE_DIR, key), join(cacheDir, STORE_DIR, twin), {
      recursive: true,
      preserveTimestamps: true,
    });
    const twinBytes = diskBytes(join(cacheDir, STORE_DIR, twin));

    const ambiguous = await warmstart("rm", key.slice(0, 6), "--cache-dir", cacheDir);
    assert.equal(ambiguous.code, 2);
    assert.equal(
      ambiguous.stderr,
      `warmstart: error: Key prefix ${key.slice(0, 6)} matches 2 cache entries: ${[key, twin].sort().join(", ")}.\n` +
        "  hint: give more digits of the key\n",
    );
    const unknownPrefix = key.startsWith("0") ? "1234" : "0123";
    const unknown = await warmstart("rm", key.slice(0, 12), unknownPrefix, "--cache-dir", cacheDir);
    assert.equal(unknown.code, 1);
    assert.equal(
      unknown.stderr,
      `warmstart: error: No cache entry has a key starting with ${unknownPrefix} in ${join(cacheDir, STORE_DIR)}.\n` +
        "  hint: 'warmstart ls' shows the keys\n",
    );
    const notHex = await warmstart("rm", "../v1", "--cache-dir", cacheDir);
    assert.equal(notHex.code, 2);
    assert.equal(
      notHex.stderr,
      'warmstart: error: Expected a key prefix to be 1 to 64 hexadecimal digits, as `warmstart ls` shows them, got "../v1".\n',
    );
    assert.deepEqual(listEntries(cacheDir).sort(), [key, twin].sort(), "nothing was removed");

    const keyBytes = diskBytes(join(cacheDir, STORE_DIR, key));
    const removed = await warmstart("rm", key.slice(0, 12), "--cache-dir", cacheDir);
    assert.equal(removed.code, 0, removed.stderr);
    assert.equal(removed.stdout, `removed ${key.slice(0, 12)} (${formatBytes(keyBytes)})\n`);

    const { pid: deadPid } = spawnSync("true");
    const deadOwner = formatOwnerTag({ ...currentOwner(), pid: deadPid ?? 0, startTicks: 1 });
    const abandoned = `.pending-${twin.slice(0, 16)}-${deadOwner}-0badf00d`;
    mkdirSync(join(cacheDir, STORE_DIR, abandoned, "images"), { recursive: true });
    const pruned = await warmstart("prune", "--cache-dir", cacheDir, "--max-cache-size", "500M");
    assert.equal(pruned.code, 0, pruned.stderr);
    assert.equal(
      pruned.stdout,
      `removed ${STORE_DIR}/${abandoned} (left by a launch that is gone)\n` +
        `removed ${twin.slice(0, 12)} (${formatBytes(twinBytes)}): corrupt: ${join(cacheDir, STORE_DIR, twin, "manifest.json")} cannot be used: it does not describe entry ${twin}\n` +
        "cache: 0 entries, 0 B of 500 MiB\n",
    );
    assert.deepEqual(readdirSync(join(cacheDir, STORE_DIR)), []);
    const empty = await warmstart("ls", "--cache-dir", cacheDir);
    assert.equal(empty.stdout, `No snapshots in ${cacheDir}.\n`);
    const none = await warmstart("rm", "--all", "--cache-dir", cacheDir);
    assert.equal(none.stdout, `No snapshots in ${cacheDir}.\n`);
  });

  test("a cache directory other users can write is refused, naming it", async () => {
    const cacheDir = makeCacheDir();
    chmodSync(cacheDir, 0o777);
    for (const command of ["ls", "rm", "prune", "verify"]) {
      const args = command === "rm" ? [command, "--all"] : [command];
      const refused = await warmstart(...args, "--cache-dir", cacheDir);
      assert.equal(refused.code, 1, command);
      assert.equal(
        refused.stderr,
        `warmstart: error: Cache directory refused: ${cacheDir} is writable by other users (mode 777).\n` +
          "  hint: it must be yours, not a symlink, and writable only by you (chmod 700); or pass another --cache-dir\n",
        command,
      );
    }
  });
});
