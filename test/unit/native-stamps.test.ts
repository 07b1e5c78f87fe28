import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import {
  describeNativeStampsUnavailable,
  encodeStamps,
  findMovedLines,
  STAMPS_FILE,
} from "../../src/inputs/native-stamps.js";

const root = mkdtempSync(join(tmpdir(), "warmstart-unit-stamps-"));
after(() => rmSync(root, { recursive: true, force: true }));

/** A manifest line as sealDiscoveredInputs writes it, from the path's stat now. */
function lineOf(kind: "f" | "d", path: string): string {
  const { dev, ino, size, mtimeMs, ctimeMs } = statSync(path);
  return `${kind} ${dev} ${ino} ${size} ${mtimeMs} ${ctimeMs} ${"0".repeat(64)} ${path}`;
}

function absentLine(path: string): string {
  return `a 0 0 0 0 0 - ${path}`;
}

/** What the statSync path decides, line by line: the native call must agree with it. */
function movedByStatSync(lines: readonly string[]): number[] {
  const moved: number[] = [];
  lines.forEach((line, index) => {
    const fields = line.split(" ");
    const path = fields.slice(7).join(" ");
    let stat: ReturnType<typeof statSync> | undefined;
    try {
      stat = statSync(path, { throwIfNoEntry: false });
    } catch {
      moved.push(index);
      return;
    }
    const isUnchanged =
      fields[0] === "a"
        ? stat === undefined
        : stat !== undefined &&
          stat.dev === Number(fields[1]) &&
          stat.ino === Number(fields[2]) &&
          stat.size === Number(fields[3]) &&
          stat.mtimeMs === Number(fields[4]) &&
          stat.ctimeMs === Number(fields[5]);
    if (!isUnchanged) moved.push(index);
  });
  return moved;
}

describe("the native input check", () => {
  test("is built for these tests (npm run build with a C compiler)", () => {
    assert.equal(describeNativeStampsUnavailable(), undefined);
  });

  test("reports exactly the lines statSync would find moved", async () => {
    const dir = mkdtempSync(join(root, "app-"));
    const file = (name: string, content = "x") => {
      const path = join(dir, name);
      writeFileSync(path, content);
      return path;
    };
    const same = file("same.js");
    const odd = file("a b\nc\u00e9.js");
    // Nanoseconds that a millisecond double rounds: the times must be computed as Node does.
    const fine = file("fine.js");
    execFileSync("touch", ["-m", "-d", "@1700000000.987654321", fine]);
    const touched = file("touched.js");
    const grown = file("grown.js");
    const gone = file("gone.js");
    const target = file("target.js");
    const link = join(dir, "link.js");
    symlinkSync(target, link);
    const folder = join(dir, "plugins");
    mkdirSync(folder);
    const grownFolder = join(dir, "more-plugins");
    mkdirSync(grownFolder);
    const stillAbsent = join(dir, "node_modules/lib");
    const appeared = join(dir, "appeared");
    const underFile = join(same, "child");
    const locked = join(dir, "locked");
    mkdirSync(locked);
    const lockedFile = join(locked, "inside.js");
    writeFileSync(lockedFile, "x");
    const lines = [
      lineOf("f", same),
      lineOf("f", odd),
      lineOf("f", fine),
      lineOf("f", touched),
      lineOf("f", grown),
      lineOf("f", gone),
      lineOf("f", link),
      lineOf("d", folder),
      lineOf("d", grownFolder),
      absentLine(stillAbsent),
      absentLine(appeared),
      absentLine(underFile),
      lineOf("f", lockedFile),
      "f not a line",
    ];
    const later = new Date(Date.now() + 10_000);
    utimesSync(touched, later, later);
    writeFileSync(grown, "xx");
    rmSync(gone);
    writeFileSync(target, "changed through the link");
    writeFileSync(join(grownFolder, "new.js"), "");
    writeFileSync(appeared, "");
    // Root reads it anyway; as another user, the stat fails with EACCES: moved either way.
    chmodSync(locked, 0o000);
    try {
      const native = findMovedLines(lines);
      assert.deepEqual(native, movedByStatSync(lines));
      // What that is, spelled out: touched, grown, gone, through the link, the grown folder,
      // the appeared path, the path under a file (ENOTDIR), the malformed line.
      const moved = [3, 4, 5, 6, 8, 10, 11, 13];
      if (process.getuid?.() !== 0) moved.splice(7, 0, 12);
      assert.deepEqual(native, moved);
      assert.deepEqual(findMovedLines([]), []);
    } finally {
      chmodSync(locked, 0o700);
    }
  });

  test("agrees with statSync through runs of lines whose directory is gone, replaced or a link", () => {
    // The library opens each directory once for the run of (sorted) lines in it: every way that
    // directory can differ from its recording must give the answer stat(2) of the whole path gives.
    const dir = mkdtempSync(join(root, "dirs-"));
    const filesIn = (sub: string, names: string[]) => {
      mkdirSync(join(dir, sub), { recursive: true });
      return names.map((name) => {
        const path = join(dir, sub, name);
        writeFileSync(path, name);
        return path;
      });
    };
    const [keptA = "", keptB = ""] = filesIn("kept", ["a.js", "b.js"]);
    const [goneA = "", goneB = ""] = filesIn("gone", ["a.js", "b.js"]);
    const [fileA = ""] = filesIn("now-a-file", ["a.js"]);
    const [swappedA = "", swappedB = ""] = filesIn("swapped", ["a.js", "b.js"]);
    const [realA = ""] = filesIn("real", ["a.js"]);
    symlinkSync(join(dir, "real"), join(dir, "linked"));
    const lines = [
      lineOf("f", keptA),
      lineOf("f", keptB),
      absentLine(join(dir, "kept", "c.js")),
      lineOf("f", goneA),
      absentLine(join(dir, "gone", "absent.js")),
      lineOf("f", goneB),
      lineOf("f", join(dir, "linked", "a.js")),
      absentLine(join(dir, "missing", "x.js")),
      lineOf("f", fileA),
      absentLine(join(dir, "now-a-file", "b.js")),
      lineOf("f", realA),
      lineOf("f", swappedA),
      lineOf("f", swappedB),
      lineOf("f", "/"),
    ];
    rmSync(join(dir, "gone"), { recursive: true });
    rmSync(join(dir, "now-a-file"), { recursive: true });
    writeFileSync(join(dir, "now-a-file"), "");
    // Same names, other inodes: a directory put back in place (a reinstall).
    rmSync(join(dir, "swapped"), { recursive: true });
    filesIn("swapped", ["b.js", "a.js"]);
    const native = findMovedLines(lines);
    assert.deepEqual(native, movedByStatSync(lines));
    // Spelled out: the gone directory's two files (its absent path stays absent), the file
    // where a directory was (its absent path now fails with ENOTDIR), the swapped files.
    assert.deepEqual(native, [3, 5, 8, 9, 11, 12]);
  });

  test("an entry's stamps file is read when it is private and holds as many lines; otherwise the lines are", async () => {
    const dir = mkdtempSync(join(root, "stamps-"));
    const path = join(dir, "server.js");
    writeFileSync(path, "old");
    const recorded = lineOf("f", path);
    writeFileSync(path, "new code");
    // The manifest's line is moved; a stamps file written for the file as it is now is not.
    const lines = [recorded];
    const current = encodeStamps([lineOf("f", path)]);
    const stampsFile = join(dir, STAMPS_FILE);
    writeFileSync(stampsFile, current, { mode: 0o600 });
    assert.deepEqual(findMovedLines(lines, stampsFile), [], "the stamps file was not read");
    assert.deepEqual(findMovedLines(lines), [0]);
    // Others could write it: not read.
    chmodSync(stampsFile, 0o644);
    assert.deepEqual(findMovedLines(lines, stampsFile), [0]);
    chmodSync(stampsFile, 0o600);
    // A symlink to it: not followed.
    const link = join(dir, "link.stamps");
    symlinkSync(stampsFile, link);
    assert.deepEqual(findMovedLines(lines, link), [0]);
    // Another count of lines: written for another manifest.
    writeFileSync(stampsFile, encodeStamps([lineOf("f", path), lineOf("f", path)]));
    assert.deepEqual(findMovedLines(lines, stampsFile), [0]);
    // Not NUL-terminated.
    writeFileSync(stampsFile, current.subarray(0, current.length - 1));
    assert.deepEqual(findMovedLines(lines, stampsFile), [0]);
    // The text lines of entries made before the binary form.
    writeFileSync(stampsFile, `${lineOf("f", path)}\0`);
    assert.deepEqual(findMovedLines(lines, stampsFile), [0]);
    // Written on a machine of the other byte order: its 1.0 is not ours.
    const swapped = Buffer.from(current);
    swapped.writeDoubleBE(1, 8);
    writeFileSync(stampsFile, swapped);
    assert.deepEqual(findMovedLines(lines, stampsFile), [0]);
    assert.deepEqual(findMovedLines(lines, join(dir, "missing.stamps")), [0]);
  });
});
