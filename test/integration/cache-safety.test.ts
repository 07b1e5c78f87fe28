// Issue 4: unsafe caches are refused, naming the path, and the app still starts; many
// launches at once make one snapshot; a dump that runs out of disk leaves nothing behind.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chmodSync, chownSync, copyFileSync, readdirSync, rmSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import {
  fixture,
  freePort,
  getJson,
  listEntries,
  makeCacheDir,
  makeTempDir,
  runArgs,
  STORE_DIR,
  useIntegrationRig,
  WarmstartRun,
  waitForEntry,
  waitUntil,
} from "./rig.js";

useIntegrationRig();

// The report goes in a directory of its own, not in the cache: some caches here are refused and
// must stay empty. The rig removes both after the file.
function args(cacheDir: string, ready: string, extra: string[] = []): string[] {
  const reportFile = join(makeTempDir("warmstart-reports-"), "reports.jsonl");
  return runArgs(cacheDir, reportFile, [ready], ["node", fixture("ticker-server.cjs")], extra);
}

/** A cache with one committed entry; returns the entry's directory. */
async function makeEntry(cacheDir: string): Promise<string> {
  const run = new WarmstartRun(args(cacheDir, "log:^ready pid="), { PORT: "0" });
  const key = await waitForEntry(cacheDir);
  await run.stop();
  return join(cacheDir, STORE_DIR, key);
}

async function assertRefusedButStarts(cacheDir: string, message: RegExp): Promise<void> {
  const run = new WarmstartRun(args(cacheDir, "log:^ready pid="), { PORT: "0" });
  await run.waitFor(/ready, cold, pid/, "stderr");
  assert.match(run.stderr, message);
  await run.stop();
}

describe("cache safety", () => {
  test("a world-writable cache directory is refused by path; the app still starts", async () => {
    const cacheDir = makeCacheDir();
    chmodSync(cacheDir, 0o777);
    await assertRefusedButStarts(
      cacheDir,
      new RegExp(`warning: cache directory refused: ${cacheDir} is writable by other users \\(mode 777\\)`),
    );
    assert.deepEqual(listEntries(cacheDir), []);
  });

  test("with a refused cache directory, nothing of the launch is created inside it", async () => {
    const cacheDir = makeCacheDir();
    chmodSync(cacheDir, 0o777);
    // The notify probe needs a private directory for its socket: it must not be this one.
    const run = new WarmstartRun([
      "run",
      "-v",
      "--cache-dir",
      cacheDir,
      "--ready",
      "notify",
      "--",
      "node",
      fixture("notify-ready.cjs"),
    ]);
    await run.waitFor(/ready, cold, pid/, "stderr");
    assert.match(run.stderr, /warning: cache directory refused/);
    assert.deepEqual(readdirSync(cacheDir), []);
    await run.stop();
  });

  test("an entry owned by another uid is refused, never restored, never deleted", async () => {
    const cacheDir = makeCacheDir();
    const entry = await makeEntry(cacheDir);
    execFileSync("chown", ["-R", "4321:4321", entry]);
    await assertRefusedButStarts(
      cacheDir,
      new RegExp(`warning: cache entry refused: ${entry} is owned by uid 4321, not by you \\(uid 0\\)`),
    );
    assert.equal(readdirSync(entry).length > 0, true, "the foreign entry is left alone");
    chownSync(entry, 0, 0);
  });

  test("an image file replaced by a symlink is refused by path", async () => {
    const cacheDir = makeCacheDir();
    const entry = await makeEntry(cacheDir);
    const images = join(entry, "images");
    const core = readdirSync(images).find((name) => name.startsWith("core-"));
    assert.ok(core);
    const outside = makeTempDir("warmstart-outside-");
    copyFileSync(join(images, core), join(outside, core));
    rmSync(join(images, core));
    symlinkSync(join(outside, core), join(images, core));
    await assertRefusedButStarts(
      cacheDir,
      new RegExp(`warning: cache entry refused: ${join(images, core)} is a symlink`),
    );
  });

  test("8 concurrent launches on an empty cache: all serve, one entry, it verifies", async () => {
    const cacheDir = makeCacheDir();
    const runs = Array.from(
      { length: 8 },
      () => new WarmstartRun(args(cacheDir, "log:^ready pid="), { PORT: "0" }),
    );
    await Promise.all(runs.map((run) => run.waitFor(/ready, cold, pid/, "stderr", 60_000)));
    await waitForEntry(cacheDir);
    // Let every launch finish (or skip) its checkpoint before counting.
    await waitUntil(
      () => readdirSync(join(cacheDir, STORE_DIR)).every((name) => !name.startsWith(".")),
      60_000,
    );
    assert.equal(listEntries(cacheDir).length, 1);
    for (const run of runs) assert.doesNotMatch(run.stderr, /snapshot failed/);
    await Promise.all(runs.map((run) => run.stop()));
    const verify = new WarmstartRun(["verify", "--cache-dir", cacheDir]);
    assert.deepEqual(await verify.exited, { code: 0, signal: null }, verify.stdout + verify.stderr);
    assert.match(verify.stdout, /ok/);
  });

  test("a dump that runs out of disk leaves no entry, says why, and the app keeps serving", async () => {
    const mountPoint = makeTempDir("warmstart-tmpfs-");
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=24m,mode=0700", "tmpfs", mountPoint]);
    try {
      const cacheDir = join(mountPoint, "cache");
      const port = await freePort();
      // 64 MB of live memory cannot fit in a 24 MB filesystem.
      const run = new WarmstartRun(args(cacheDir, `tcp:${port}`), { PORT: String(port), BALLAST_MB: "64" });
      await run.waitFor(
        /warning: snapshot failed, the next launch will be cold too: .*(No space left|ENOSPC)/,
        "stderr",
        60_000,
      );
      const answer = await getJson(`http://127.0.0.1:${port}/`);
      assert.equal(typeof answer.bootId, "string", "the app keeps serving after the failed dump");
      assert.deepEqual(listEntries(cacheDir), []);
      assert.deepEqual(
        readdirSync(join(cacheDir, STORE_DIR)).filter((name) => name.startsWith(".pending")),
        [],
        "the partial dump was removed",
      );
      await run.stop();
    } finally {
      execFileSync("umount", [mountPoint]);
    }
  });
});

describe("cache size cap", () => {
  test("with a cap smaller than three entries, three apps keep the cache under it, newest kept", async () => {
    const cacheDir = makeCacheDir();
    const launchApp = async (name: string, extra: string[] = []) => {
      const run = new WarmstartRun(
        [
          ...args(cacheDir, "log:^ready pid=", extra).slice(0, -2),
          "node",
          fixture("ticker-server.cjs"),
          name,
        ],
        { PORT: "0" },
      );
      await run.waitFor(/snapshot saved/, "stderr");
      await run.stop();
    };
    await launchApp("first");
    const [firstKey] = listEntries(cacheDir);
    assert.ok(firstKey);
    const entryBytes = Number(
      execFileSync("du", ["-sb", join(cacheDir, STORE_DIR, firstKey)], { encoding: "utf8" }).split("\t")[0],
    );
    const capBytes = Math.floor(entryBytes * 2.5);
    await launchApp("second", ["--max-cache-size", String(capBytes)]);
    await launchApp("third", ["--max-cache-size", String(capBytes)]);
    const entries = listEntries(cacheDir);
    assert.equal(entries.length, 2, `two of three fit under ${capBytes} bytes`);
    assert.equal(entries.includes(firstKey), false, "the least recently used one went");
    const total = Number(
      execFileSync("du", ["-sb", join(cacheDir, STORE_DIR)], { encoding: "utf8" }).split("\t")[0],
    );
    assert.ok(total <= capBytes, `${total} bytes <= cap ${capBytes}`);
  });
});
