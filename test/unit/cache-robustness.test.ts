// The cache under the conditions a launch meets: entries removed while read, PIDs that
// repeat, leftovers of killed launches, damaged manifests, full memos.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { describe, test } from "node:test";
import { Worker } from "node:worker_threads";
import { makeDirectories } from "../../src/cache/cache-dir.js";
import { removeAbandonedLocks, tryAcquireDumpLock } from "../../src/cache/dump-lock.js";
import {
  FileHashIndex,
  GENERAL_MEMO_FILE,
  INPUT_MEMO_FILE,
  INPUT_PURPOSES,
} from "../../src/cache/file-hash.js";
import { KEPT_LOGS, pruneLogs } from "../../src/cache/housekeeping.js";
import { currentOwner, formatOwnerTag, ownerOf } from "../../src/cache/owner-stamp.js";
import { commitFakeEntry, fakeKey, makeStore } from "./fake-entries.js";

/** A PID that just exited. */
function deadPid(): number {
  const { pid } = spawnSync("true");
  assert.ok(pid);
  return pid;
}

describe("cache robustness", () => {
  test("an entry removed while it is looked up is a miss, never an exception", async () => {
    const { store } = makeStore();
    const entry = await commitFakeEntry(store, fakeKey("c1"));
    // Another process (here a thread) removes the entry and commits a fresh copy, as fast as
    // it can, as eviction, `rm`, `prune` and other launchers do.
    const template = `${entry.dir}.template`;
    cpSync(entry.dir, template, { recursive: true });
    const worker = new Worker(
      `const { cpSync, renameSync, rmSync } = require("node:fs");
       const { workerData: { dir, template }, parentPort } = require("node:worker_threads");
       let stop = false;
       parentPort.on("message", () => { stop = true; });
       (function loop() {
         for (let i = 0; i < 20 && !stop; i++) {
           try {
             renameSync(dir, dir + ".away");
             rmSync(dir + ".away", { recursive: true });
             cpSync(template, dir + ".tmp", { recursive: true });
             renameSync(dir + ".tmp", dir);
           } catch {}
         }
         if (!stop) setImmediate(loop); else parentPort.close();
       })();`,
      { eval: true, workerData: { dir: entry.dir, template } },
    );
    const outcomes = new Set<string>();
    try {
      for (let i = 0; i < 3000; i++) {
        const found = await store.lookup(entry.key);
        outcomes.add(found.hit ? "hit" : found.reason);
      }
    } finally {
      worker.postMessage("stop");
      await new Promise((resolve) => worker.once("exit", resolve));
    }
    assert.ok(outcomes.has("missing"), `the race was never hit: ${[...outcomes]}`);
    assert.deepEqual(
      [...outcomes].filter((o) => o !== "hit" && o !== "missing"),
      [],
    );
  });

  test("a manifest whose values would reach CRIU's arguments in a bad form is damaged, not restored", async () => {
    const { store } = makeStore();
    const entry = await commitFakeEntry(store, fakeKey("c2"));
    const path = join(entry.dir, "manifest.json");
    const good = JSON.parse(readFileSync(path, "utf8"));
    for (const [change, why] of [
      [
        { stdio: ["pipe:[1]", "pipe:[2] --exec-cmd x", "pipe:[3]"] },
        /its stdio .* is not three pipe:\[inode\] names/,
      ],
      [{ pid: "4242 --shell-job" }, /its pid "4242 --shell-job" is not a process ID/],
      [
        { files: { "../../etc/passwd": { bytes: 1, sha256: "0".repeat(64) } } },
        /names an image file "..\/..\/etc\/passwd"/,
      ],
      [{ listen: [{ address: "127.0.0.1", port: 70000 }] }, /listen sockets are not addresses and ports/],
    ] as const) {
      writeFileSync(path, JSON.stringify({ ...good, ...change }), { mode: 0o600 });
      const found = await store.lookup(entry.key);
      assert.equal(found.hit ? "hit" : found.reason, "corrupt", JSON.stringify(change));
      assert.match(found.hit ? "" : found.reason === "missing" ? "" : found.detail, why);
    }
  });

  test("dump lock: a leftover of a dead owner, of a reused PID, a bare PID or an empty file is taken over", () => {
    const { store } = makeStore();
    mkdirSync(store.root, { recursive: true });
    const key = fakeKey("c3");
    const lockPath = join(store.root, `.lock-${key}`);
    const leftovers = [
      formatOwnerTag({ ...currentOwner(), pid: deadPid(), startTicks: 5 }),
      // This very PID, started at another time: what PID 1 of a restarted container finds.
      formatOwnerTag({ ...currentOwner(), startTicks: currentOwner().startTicks + 1 }),
      "1",
      "",
    ];
    for (const leftover of leftovers) {
      writeFileSync(lockPath, leftover);
      const outcome = tryAcquireDumpLock(store.root, key);
      assert.equal(outcome.isAcquired, true, `not taken over: ${JSON.stringify(leftover)}`);
      if (outcome.isAcquired) outcome.lock.release();
      assert.equal(existsSync(lockPath), false);
    }
  });

  test("dump lock: held by a live process, it is reported as held, and only its owner releases it", () => {
    const { store } = makeStore();
    const key = fakeKey("c4");
    const first = tryAcquireDumpLock(store.root, key);
    assert.ok(first.isAcquired);
    const second = tryAcquireDumpLock(store.root, key);
    assert.deepEqual(second, { isAcquired: false, reason: "held", holder: `pid ${process.pid}` });
    // Another launch judged it abandoned and took it: the first must not remove that one.
    const lockPath = join(store.root, `.lock-${key}`);
    const other = formatOwnerTag(ownerOf(1) ?? currentOwner());
    writeFileSync(lockPath, `${other}\n`);
    first.lock.release();
    assert.equal(readFileSync(lockPath, "utf8"), `${other}\n`);
  });

  test("a lock that cannot be written is a failure with the reason, not a lost race", () => {
    const { cacheDir } = makeStore();
    writeFileSync(join(cacheDir, "v1"), "a file where the store's directory goes");
    const outcome = tryAcquireDumpLock(join(cacheDir, "v1"), fakeKey("c5"));
    assert.equal(outcome.isAcquired, false);
    assert.equal(!outcome.isAcquired && outcome.reason, "failed");
    assert.match(
      !outcome.isAcquired && outcome.reason === "failed" ? outcome.detail : "",
      /is not a directory/,
    );
  });

  test("prune's lock sweep removes dead owners' locks and keeps live ones", () => {
    const { store } = makeStore();
    mkdirSync(store.root, { recursive: true });
    const live = tryAcquireDumpLock(store.root, fakeKey("c6"));
    assert.ok(live.isAcquired);
    const dead = `.lock-${fakeKey("c7")}`;
    writeFileSync(
      join(store.root, dead),
      formatOwnerTag({ ...currentOwner(), pid: deadPid(), startTicks: 1 }),
    );
    assert.deepEqual(removeAbandonedLocks(store.root), [dead]);
    assert.deepEqual(readdirSync(store.root), [`.lock-${fakeKey("c6")}`]);
    live.lock.release();
  });

  test("a refresh keeps the old entry until the new one is in; a refresh that died is undone", async () => {
    const { store } = makeStore();
    const key = fakeKey("c8");
    const old = await commitFakeEntry(store, key, { createdAt: "2025-01-01T00:00:00.000Z" });
    // As a refresh killed between its two renames leaves it: the old entry set aside.
    const aside = join(
      store.root,
      `.replaced-${key}-${formatOwnerTag({ ...currentOwner(), pid: deadPid(), startTicks: 1 })}-00000000`,
    );
    renameSync(old.dir, aside);
    assert.deepEqual(store.removeAbandoned(), [aside.split("/").pop()]);
    assert.equal((await store.lookup(key)).hit, true, "the old entry is back");
    // A refresh that completes replaces it.
    const pending = store.createPending(key);
    writeFileSync(join(pending.imagesDir, "core-1.img"), "new metadata");
    const manifest = JSON.parse(readFileSync(join(old.dir, "manifest.json"), "utf8"));
    const { files: _files, imageBytes: _bytes, ...rest } = manifest;
    const committed = await store.commit(
      pending.dir,
      { ...rest, createdAt: "2025-02-01T00:00:00.000Z" },
      { replace: true },
    );
    assert.equal(committed.isCommitted, true);
    const found = await store.lookup(key);
    assert.equal(found.hit && found.entry.manifest.createdAt, "2025-02-01T00:00:00.000Z");
    assert.deepEqual(readdirSync(store.root), [key]);
  });

  test("commit fsyncs in the thread pool: the event loop that relays the app's output keeps turning", async () => {
    const { store } = makeStore();
    const pending = store.createPending(fakeKey("c9"));
    // Freshly written pages are dirty: fsync has them all to write.
    const chunk = Buffer.alloc(16 * 1024 * 1024, 1);
    for (let i = 0; i < 16; i++) writeFileSync(join(pending.imagesDir, `pages-${i}.img`), chunk);
    const delay = monitorEventLoopDelay({ resolution: 10 });
    delay.enable();
    const started = performance.now();
    await store.commit(pending.dir, {
      formatVersion: 1,
      key: fakeKey("c9"),
      baseKey: fakeKey("c9"),
      discovered: { mode: "fanotify", files: [] },
      fields: {} as never,
      command: ["x"],
      pid: 1,
      stdio: ["pipe:[1]", "pipe:[2]", "pipe:[3]"],
      createdAt: new Date().toISOString(),
      coldReadyMs: 1,
      checkpointMs: 1,
    });
    const tookMs = performance.now() - started;
    delay.disable();
    const maxBlockedMs = delay.max / 1e6;
    // The longest stall is one file's hash chunk, never the whole commit.
    assert.ok(maxBlockedMs < tookMs / 2, `the loop stalled ${maxBlockedMs} ms of a ${tookMs} ms commit`);
  });

  test("mkdir -p of a path under /proc fails at once with a reason (Node's recursive mkdir spins forever)", () => {
    const started = performance.now();
    const failure = makeDirectories("/proc/warmstart-cache/x", 0o700);
    assert.ok(performance.now() - started < 1000);
    assert.match(failure ?? "", /^cannot create \/proc\/warmstart-cache\/x: mkdir \/proc\/warmstart-cache: /);
    const { cacheDir } = makeStore();
    writeFileSync(join(cacheDir, "file"), "");
    assert.equal(
      makeDirectories(join(cacheDir, "file", "sub"), 0o700),
      `cannot create ${join(cacheDir, "file", "sub")}: ${join(cacheDir, "file")} exists and is not a directory`,
    );
    assert.equal(makeDirectories(join(cacheDir, "a", "b"), 0o700), undefined);
  });

  test("the hash memo keeps one fact per file, and a memo that cannot be written is not an error", async () => {
    const { cacheDir } = makeStore();
    const file = join(cacheDir, "app.js");
    const memo = new FileHashIndex(cacheDir);
    for (let version = 0; version < 5; version++) {
      writeFileSync(file, `version ${version}`);
      await memo.hashFile(file);
    }
    assert.equal(await memo.save(), true);
    const saved = JSON.parse(readFileSync(join(cacheDir, GENERAL_MEMO_FILE), "utf8"));
    assert.equal(Object.keys(saved).length, 1, "earlier versions of the file are forgotten");
    writeFileSync(file, "version 6");
    await memo.hashFile(file);
    // A memo whose directory is gone (a full or read-only disk fails the same way): quietly false.
    const blocked = new FileHashIndex(join(cacheDir, "nowhere"));
    await blocked.hashFile(file);
    assert.equal(await blocked.save(), false);
  });

  test("facts about discovered inputs have a memo of their own; a damaged one leaves the other alone", async () => {
    const { cacheDir } = makeStore();
    const executable = join(cacheDir, "node");
    const module = join(cacheDir, "module.js");
    writeFileSync(executable, "binary");
    writeFileSync(module, "module.exports = 1;");
    const memo = new FileHashIndex(cacheDir);
    const executableHash = await memo.hashFile(executable);
    const moduleHash = await memo.hashFile(module, INPUT_PURPOSES.sha256);
    assert.equal(await memo.save(), true);
    const general = readFileSync(join(cacheDir, GENERAL_MEMO_FILE), "utf8");
    const inputs = readFileSync(join(cacheDir, INPUT_MEMO_FILE), "utf8");
    assert.ok(general.includes(executableHash) && !general.includes(moduleHash));
    assert.ok(inputs.includes(moduleHash) && !inputs.includes(executableHash));
    // A damaged input memo: the general facts are still recalled, and nothing is rewritten.
    writeFileSync(join(cacheDir, INPUT_MEMO_FILE), "not json");
    const later = new FileHashIndex(cacheDir);
    assert.equal(await later.hashFile(executable), executableHash);
    assert.equal(await later.save(), true);
    assert.equal(readFileSync(join(cacheDir, INPUT_MEMO_FILE), "utf8"), "not json", "rewritten unasked");
  });

  test("logs: the newest few are kept, old ones go", () => {
    const { cacheDir } = makeStore();
    const logs = join(cacheDir, "logs");
    mkdirSync(logs);
    const nowS = Date.now() / 1000;
    for (let i = 0; i < KEPT_LOGS + 5; i++) {
      const path = join(logs, `restore-${i}.log`);
      writeFileSync(path, "x");
      utimesSync(path, nowS - i * 60, nowS - i * 60);
    }
    const ancient = join(logs, "dump-old.log");
    writeFileSync(ancient, "x");
    utimesSync(ancient, nowS - 30 * 86400, nowS - 30 * 86400);
    const removed = pruneLogs(logs).sort();
    assert.equal(removed.length, 6);
    assert.ok(removed.includes("dump-old.log"));
    assert.equal(readdirSync(logs).length, KEPT_LOGS);
  });
});
