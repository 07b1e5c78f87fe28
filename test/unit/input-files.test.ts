import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { expandInputGlobs, globToRegExp } from "../../src/cache/input-files.js";

const root = mkdtempSync(join(tmpdir(), "warmstart-inputs-"));
after(() => rmSync(root, { recursive: true, force: true }));

function touch(path: string): void {
  mkdirSync(join(root, path, ".."), { recursive: true });
  writeFileSync(join(root, path), "x");
}

describe("input globs", () => {
  test("* stays in a directory, ** crosses any depth, ? is one character", () => {
    assert.equal(globToRegExp("*.js").test("a.js"), true);
    assert.equal(globToRegExp("*.js").test("lib/a.js"), false);
    assert.equal(globToRegExp("src/**/*.js").test("src/a.js"), true);
    assert.equal(globToRegExp("src/**/*.js").test("src/x/y/a.js"), true);
    assert.equal(globToRegExp("src/**").test("src/x/y"), true);
    assert.equal(globToRegExp("v?.json").test("v1.json"), true);
    assert.equal(globToRegExp("v?.json").test("v10.json"), false);
    assert.equal(globToRegExp("a+b.(js)").test("a+b.(js)"), true, "regex characters are literal");
  });

  test("expand to sorted absolute files; node_modules and .git only when named; plain paths too", () => {
    for (const path of [
      "src/a.js",
      "src/lib/b.js",
      "src/node_modules/dep/c.js",
      ".git/config",
      "app.jar",
      "README.md",
    ]) {
      touch(path);
    }
    assert.deepEqual(expandInputGlobs(["src/**/*.js", "app.jar", "missing.txt"], root), [
      join(root, "app.jar"),
      join(root, "src/a.js"),
      join(root, "src/lib/b.js"),
    ]);
    assert.deepEqual(expandInputGlobs(["src/node_modules/**/*.js"], root), [
      join(root, "src/node_modules/dep/c.js"),
    ]);
    assert.deepEqual(expandInputGlobs([join(root, "*.md")], "/"), [join(root, "README.md")]);
  });
});
