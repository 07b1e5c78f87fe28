import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { loadConfigFile, validateConfig } from "../../src/launch/config-file.js";

const dirs: string[] = [];
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});
function dirWith(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), "warmstart-config-"));
  dirs.push(dir);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

describe("config file", () => {
  test("warmstart.config.json wins over package.json; none is undefined", () => {
    const dir = dirWith({
      "warmstart.config.json": '{"ready": ["tcp:3000"], "readyTimeout": 30}',
      "package.json": '{"warmstart": {"ready": ["tcp:4000"]}}',
    });
    assert.deepEqual(loadConfigFile(dir), {
      ready: ["tcp:3000"],
      readyTimeout: 30,
      source: join(dir, "warmstart.config.json"),
    });
    const fromPackage = dirWith({ "package.json": '{"name": "x", "warmstart": {"inputs": ["src/**"]}}' });
    assert.deepEqual(loadConfigFile(fromPackage)?.inputs, ["src/**"]);
    assert.equal(loadConfigFile(dirWith({ "package.json": '{"name": "x"}' })), undefined);
  });

  test("bad config: errors name the field and the value", () => {
    assert.throws(() => validateConfig({ readyTimeout: -1 }, "c.json"), {
      code: "invalid-config",
      shortMessage: 'Expected "readyTimeout" in c.json to be a positive number of seconds, got -1.',
    });
    assert.throws(() => validateConfig({ ready: "tcp:3000" }, "c.json"), {
      shortMessage: 'Expected "ready" in c.json to be a list of probes (strings), got "tcp:3000".',
    });
    // A probe the parser refuses is blamed on the field, not on the --ready flag.
    assert.throws(() => validateConfig({ ready: ["tcp:3000", "tcp://localhost:4101"] }, "c.json"), {
      code: "invalid-config",
      shortMessage:
        'Expected "ready" in c.json to be tcp:<host>:<port> without "//", as in tcp:localhost:4101, got "tcp://localhost:4101".',
    });
    assert.throws(() => validateConfig({ readyTimout: 5 }, "c.json"), {
      shortMessage: 'Unknown field "readyTimout" in c.json.',
      hint: "known fields: ready, readyTimeout, inputs, inputIgnore, envIgnore, maxCacheSize, runtime, hookTimeout, beforeCheckpoint, afterRestore, strictHooks",
    });
    assert.throws(() => loadConfigFile(dirWith({ "warmstart.config.json": "{ready:" })), {
      code: "invalid-config",
      shortMessage: /warmstart\.config\.json is not valid JSON: /,
    });
  });
});
