// The launch's decisions are pure functions: tested here without root, CRIU or a process.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { CacheEntry, LookupOutcome } from "../../src/cache/entry-store.js";
import type { Manifest } from "../../src/cache/manifest.js";
import {
  decideAfterLookup,
  decideAfterRestoredNotReady,
  decideAfterRestoredPorts,
  decideAfterRestoreFailure,
  decideCheckpoint,
  judgeCriu,
  type LookupFacts,
} from "../../src/launch/decisions.js";

const MiB = 1024 * 1024;

function entry(imageBytes: number): CacheEntry {
  return {
    dir: "/c/v1/k",
    imagesDir: "/c/v1/k/images",
    manifest: { imageBytes } as Manifest,
  };
}

function facts(found: LookupOutcome, extra: Partial<LookupFacts> = {}): LookupFacts {
  return {
    found,
    neverSlower: { action: "restore", isRemeasure: false },
    portHolders: [],
    isLazy: undefined,
    lazyMinImageBytes: 100 * MiB,
    explainMiss: () => "input /srv/app/db.js changed",
    ...extra,
  };
}

describe("launch decisions", () => {
  test("a hit restores, lazily from the size threshold on unless told", () => {
    assert.deepEqual(decideAfterLookup(facts({ hit: true, entry: entry(10 * MiB) })), {
      action: "restore",
      entry: entry(10 * MiB),
      isLazy: false,
      isRemeasure: false,
    });
    const large = decideAfterLookup(facts({ hit: true, entry: entry(200 * MiB) }));
    assert.equal(large.action === "restore" && large.isLazy, true);
    const forced = decideAfterLookup(facts({ hit: true, entry: entry(200 * MiB) }, { isLazy: false }));
    assert.equal(forced.action === "restore" && forced.isLazy, false);
  });

  test("a miss starts cold and snapshots, saying why in -v only", () => {
    assert.deepEqual(decideAfterLookup(facts({ hit: false, reason: "missing" })), {
      action: "start-cold",
      fallback: null,
      isEvicted: false,
      isSnapshotWanted: true,
      cacheUse: "miss",
      detail: "miss: input /srv/app/db.js changed",
    });
  });

  test("a refused entry is kept and never replaced; a damaged one is evicted and replaced", () => {
    const refused = decideAfterLookup(
      facts({ hit: false, reason: "refused", detail: "/c/v1/k is owned by uid 7", dir: "/c/v1/k" }),
    );
    assert.deepEqual(refused, {
      action: "start-cold",
      fallback: {
        reason: "entry-refused",
        message: "cache entry refused: /c/v1/k is owned by uid 7; starting cold without a snapshot",
      },
      isEvicted: false,
      isSnapshotWanted: false,
      cacheUse: "unavailable",
    });
    const corrupt = decideAfterLookup(
      facts({ hit: false, reason: "corrupt", detail: "pages-1.img has 4096 bytes", dir: "/c/v1/k" }),
    );
    assert.equal(corrupt.action === "start-cold" && corrupt.isEvicted && corrupt.isSnapshotWanted, true);
    assert.equal(corrupt.action === "start-cold" && corrupt.fallback?.reason, "entry-corrupt");
  });

  test("never slower: the rule's verdict starts cold, keeps the entry, takes no new snapshot", () => {
    const decision = decideAfterLookup(
      facts(
        { hit: true, entry: entry(MiB) },
        { neverSlower: { action: "start-cold", warmMs: 700, coldMs: 400 } },
      ),
    );
    assert.deepEqual(decision, {
      action: "start-cold",
      fallback: {
        reason: "warm-not-faster",
        message:
          "a warm start of this app was not faster (median warm 700 ms, cold 400 ms): starting it cold; it is measured again now and then, --refresh measures now",
      },
      isEvicted: false,
      isSnapshotWanted: false,
      cacheUse: "miss",
      ruleEntryDir: "/c/v1/k",
    });
    const remeasure = decideAfterLookup(
      facts({ hit: true, entry: entry(MiB) }, { neverSlower: { action: "restore", isRemeasure: true } }),
    );
    assert.equal(remeasure.action === "restore" && remeasure.isRemeasure, true);
  });

  test("a port the snapshot listens on is held: no restore, the snapshot kept, the holder named", () => {
    const decision = decideAfterLookup(
      facts({ hit: true, entry: entry(MiB) }, { portHolders: [{ port: 3000, pid: 42, command: "node" }] }),
    );
    assert.equal(decision.action, "start-cold");
    assert.equal(decision.action === "start-cold" && decision.isEvicted, false);
    assert.equal(
      decision.action === "start-cold" && decision.fallback?.message,
      "port 3000 is held by pid 42 (node), where the snapshot listens: kept the snapshot, starting cold (a restored app needs its listening ports free)",
    );
  });

  test("a failed restore evicts, unless a port was in the way", () => {
    const failed = decideAfterRestoreFailure(["(00.1) Error (criu/cr-restore.c:1): Restoring FAILED."], "/l");
    assert.equal(failed.isEvicted, true);
    assert.equal(failed.fallback.reason, "restore-failed");
    assert.match(
      failed.fallback.message,
      /^restore failed: .*evicted the snapshot, starting cold \(CRIU log: \/l\)$/,
    );
    const port = decideAfterRestoreFailure(["Error: Can't bind inet socket: Address already in use"], "/l");
    assert.deepEqual([port.isEvicted, port.fallback.reason], [false, "port-taken"]);
    const fds = decideAfterRestoreFailure(
      ["Error (criu/servicefd.c:282): sfd: Can't chose service_fd_base: 0 73"],
      "/l",
    );
    assert.deepEqual([fds.isEvicted, fds.fallback.reason], [false, "restore-not-started"]);
    assert.match(
      fds.fallback.message,
      /ran out of file descriptors \(raise `ulimit -n`\); kept the snapshot/,
    );
    // Set-up failures (no fds for the pipes, images not staged) say nothing against the snapshot,
    // and point at no CRIU log: CRIU never ran.
    const notStarted = decideAfterRestoreFailure(
      ["could not make the restored app's pipes: EMFILE"],
      "/l",
      false,
    );
    assert.deepEqual(notStarted, {
      fallback: {
        reason: "restore-not-started",
        message:
          "the restore could not be set up (could not make the restored app's pipes: EMFILE); kept the snapshot, starting cold",
      },
      isEvicted: false,
    });
    assert.deepEqual(decideAfterRestoredNotReady("tcp:localhost:3000"), {
      fallback: {
        reason: "restored-not-ready",
        message:
          "the restored app did not pass tcp:localhost:3000 after restore; evicted the snapshot, starting cold",
      },
      isEvicted: true,
    });
  });

  test("a restored copy beside another listener: stopped unless ports are shared on purpose", () => {
    const holders = [{ port: 3000, pid: 42, command: "node" }];
    assert.deepEqual(decideAfterRestoredPorts(holders, "exclusive"), {
      fallback: {
        reason: "port-taken",
        message:
          "the restored app would share its port with another listener (port 3000 is held by pid 42 (node)); stopped it and kept the snapshot, starting cold",
      },
      isEvicted: false,
    });
    assert.equal(decideAfterRestoredPorts(holders, "shared"), null);
    assert.equal(decideAfterRestoredPorts([], "exclusive"), null);
  });

  test("checkpoint: only when wanted, possible and not stopped; a foreign port is said", () => {
    const base = {
      isCacheUsable: true,
      isSnapshotWanted: true,
      isSnapshotDisabled: false,
      foreignPorts: [],
      isAborted: false,
    };
    assert.deepEqual(decideCheckpoint(base), { isTaken: true });
    for (const change of [
      { isCacheUsable: false },
      { isSnapshotWanted: false },
      { isSnapshotDisabled: true },
      { isAborted: true },
    ]) {
      assert.deepEqual(decideCheckpoint({ ...base, ...change }), { isTaken: false }, JSON.stringify(change));
    }
    assert.deepEqual(decideCheckpoint({ ...base, foreignPorts: [3000] }), {
      isTaken: false,
      warning:
        "port 3000 answered the readiness probe, but the app does not listen on it: another process holds it, so the app may not be ready; no snapshot taken",
    });
  });

  test("CRIU: missing or too old rules snapshots out, with what to run", () => {
    assert.equal(
      judgeCriu({
        found: true,
        criu: { path: "/c", version: { major: 4, minor: 2, patch: 1, text: "4.2.1" } },
      }),
      null,
    );
    assert.equal(judgeCriu({ found: false, reason: "missing", searched: [] })?.reason, "criu-missing");
    assert.match(
      judgeCriu({
        found: false,
        reason: "too-old",
        path: "/usr/sbin/criu",
        version: { major: 3, minor: 17, patch: 1, text: "3.17.1" },
      })?.message ?? "",
      /^\/usr\/sbin\/criu is version 3\.17\.1, warmstart needs CRIU >= 4\.2/,
    );
  });
});
