import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { expandInputGlobs, parseInputPattern } from "../../src/cache/input-files.js";

const root = mkdtempSync(join(tmpdir(), "warmstart-inputs-"));
after(() => rmSync(root, { recursive: true, force: true }));

function touch(path: string): void {
  mkdirSync(join(root, path, ".."), { recursive: true });
  writeFileSync(join(root, path), "x");
}

describe("input globs", () => {
  test("* stays in a directory, ** crosses any depth, ? is one character, classes and braces work", () => {
    const matches = (glob: string, path: string) => parseInputPattern(glob, "/r").matches(join("/r", path));
    assert.equal(matches("*.js", "a.js"), true);
    assert.equal(matches("*.js", "lib/a.js"), false);
    assert.equal(matches("src/**/*.js", "src/a.js"), true);
    assert.equal(matches("src/**/*.js", "src/x/y/a.js"), true);
    assert.equal(matches("src/**", "src/x/y"), true);
    assert.equal(matches("v?.json", "v1.json"), true);
    assert.equal(matches("v?.json", "v10.json"), false);
    assert.equal(matches("v[0-9].json", "v7.json"), true);
    assert.equal(matches("v[0-9].json", "vx.json"), false);
    assert.equal(matches("config/*.{json,yaml}", "config/app.yaml"), true);
    assert.equal(matches("config/*.{json,yaml}", "config/app.toml"), false);
    assert.equal(matches("*", ".env"), true, "dot files are inputs too");
    assert.equal(matches("a+b.js", "a+b.js"), true);
    assert.equal(parseInputPattern("src/**/*.{js,ts}", "/r").base, "/r/src");
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
    assert.deepEqual(expandInputGlobs(["src/{a,lib/b}.js"], root), [
      join(root, "src/a.js"),
      join(root, "src/lib/b.js"),
    ]);
  });
});
