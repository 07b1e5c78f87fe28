import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { FileHashIndex } from "../../src/cache/file-hash.js";
import {
  contentOf,
  createInputFilter,
  type DiscoveredInputs,
  findChangedInput,
  listDiscoveredPaths,
  sealDiscoveredInputs,
} from "../../src/inputs/discovered-inputs.js";
import { encodeStamps, findMovedLines, STAMPS_FILE } from "../../src/inputs/native-stamps.js";
import type { RecordingOutcome } from "../../src/inputs/recorder.js";
import { toStamp } from "../../src/inputs/stamp.js";

const root = mkdtempSync(join(tmpdir(), "warmstart-unit-inputs-"));
after(() => rmSync(root, { recursive: true, force: true }));

function recordingOf(paths: { path: string; kind: "file" | "dir" }[]): RecordingOutcome {
  return {
    isComplete: true,
    mode: "fanotify",
    files: paths.map(({ path, kind }) => ({ path, kind, stamp: toStamp(statSync(path)) })),
    outputs: [],
  };
}

/**
 * Every way inputs are checked: one native call (the library is built for the tests) on the
 * entry's stamps file or on the lines encoded on the spot, and a statSync per input.
 */
const CHECKERS = [
  {
    name: "native, stamps file",
    findMoved: (lines: readonly string[]) => {
      const file = join(mkdtempSync(join(root, "stamps-")), STAMPS_FILE);
      writeFileSync(file, encodeStamps(lines), { mode: 0o600 });
      return findMovedLines(lines, file);
    },
  },
  { name: "native", findMoved: (lines: readonly string[]) => findMovedLines(lines) },
  { name: "statSync", findMoved: () => undefined },
] as const;

describe("discovered inputs", () => {
  for (const { name, findMoved } of CHECKERS)
    test(`${name}: a touch stays valid, a changed byte, a new plugin or a removed file does not`, async () => {
      const check = (discovered: DiscoveredInputs, hashes: FileHashIndex) =>
        findChangedInput(discovered, hashes, { findMoved });
      const dir = mkdtempSync(join(root, "app-"));
      const cache = mkdtempSync(join(root, "cache-"));
      mkdirSync(join(dir, "plugins"));
      writeFileSync(join(dir, "a b.js"), "one");
      writeFileSync(join(dir, "plugins/p1.js"), "p1");
      const sealed = await sealDiscoveredInputs(
        recordingOf([
          { path: join(dir, "a b.js"), kind: "file" },
          { path: join(dir, "plugins"), kind: "dir" },
        ]),
        [],
        () => true,
        new FileHashIndex(cache),
      );
      assert.ok(sealed.isComplete);
      const { discovered } = sealed;
      assert.deepEqual(listDiscoveredPaths(discovered), [join(dir, "a b.js"), join(dir, "plugins")]);
      assert.equal(await check(discovered, new FileHashIndex(cache)), undefined);

      const later = new Date(Date.now() + 10_000);
      utimesSync(join(dir, "a b.js"), later, later);
      assert.equal(await check(discovered, new FileHashIndex(cache)), undefined);

      writeFileSync(join(dir, "plugins/p2.js"), "p2");
      assert.deepEqual(await check(discovered, new FileHashIndex(cache)), {
        path: join(dir, "plugins"),
        how: "changed",
      });
      rmSync(join(dir, "plugins/p2.js"));
      // Edited in place, same size: the bytes decide.
      writeFileSync(join(dir, "a b.js"), "two");
      assert.deepEqual(await check(discovered, new FileHashIndex(cache)), {
        path: join(dir, "a b.js"),
        how: "changed",
      });
      rmSync(join(dir, "a b.js"));
      assert.deepEqual(await check(discovered, new FileHashIndex(cache)), {
        path: join(dir, "a b.js"),
        how: "is gone",
      });
      // The entry key names content, not stamps: a touch does not make another entry.
      assert.deepEqual(
        contentOf(discovered).map((line) => line.split(" ")[0]),
        ["f", "d"],
      );
    });

  test("a file that changed since the app opened it leaves the list incomplete", async () => {
    const path = join(root, "config.json");
    writeFileSync(path, "{}");
    const recording = recordingOf([{ path, kind: "file" }]);
    writeFileSync(path, '{"changed": true}');
    const sealed = await sealDiscoveredInputs(recording, [], () => true, new FileHashIndex(root));
    assert.deepEqual(sealed, { isComplete: false, reason: `${path} changed while the app started` });
  });

  for (const { name, findMoved } of CHECKERS)
    test(`${name}: a module path that was absent must stay absent; one that appeared while the app started leaves the list incomplete`, async () => {
      const dir = mkdtempSync(join(root, "absent-"));
      const nearer = join(dir, "sub/node_modules/lib");
      const ignored = join(dir, "ignored/node_modules/lib");
      const sealed = await sealDiscoveredInputs(
        recordingOf([]),
        [nearer, ignored],
        (path) => path !== ignored,
        new FileHashIndex(root),
      );
      assert.ok(sealed.isComplete);
      assert.deepEqual(listDiscoveredPaths(sealed.discovered), [nearer]);
      assert.deepEqual(contentOf(sealed.discovered), [`a - ${nearer}`]);
      assert.equal(
        await findChangedInput(sealed.discovered, new FileHashIndex(root), { findMoved }),
        undefined,
      );
      mkdirSync(nearer, { recursive: true });
      assert.deepEqual(await findChangedInput(sealed.discovered, new FileHashIndex(root), { findMoved }), {
        path: nearer,
        how: "appeared",
      });
      assert.deepEqual(
        await sealDiscoveredInputs(recordingOf([]), [nearer], () => true, new FileHashIndex(root)),
        {
          isComplete: false,
          reason: `${nearer} appeared while the app started`,
        },
      );
    });

  test("the filter leaves out warmstart's and the kernel's directories, known inputs and ignored globs", () => {
    const isInput = createInputFilter({
      dirs: ["/var/cache/warmstart"],
      files: ["/usr/bin/node"],
      ignore: ["logs/**", "/srv/app/tmp-*.json"],
      cwd: "/srv/app",
    });
    for (const path of ["/srv/app/server.js", "/etc/ssl/openssl.cnf", "/srv/app/logs.js"])
      assert.equal(isInput(path), true, path);
    for (const path of [
      "/proc/self/maps",
      "/sys/fs/cgroup/memory.max",
      "/dev/urandom",
      "/var/cache/warmstart/v2/x/manifest.json",
      "/usr/bin/node",
      "/srv/app/logs/today/app.log",
      "/srv/app/tmp-1.json",
    ])
      assert.equal(isInput(path), false, path);
  });
});
