import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  baseKeySuffix,
  type CacheKeyFields,
  computeBaseKey,
  computeEntryKey,
  diffKeyFields,
  digestEnvironment,
  IMAGE_FORMAT_VERSION,
  isVolatileEnv,
} from "../../src/cache/key.js";
import { fakeHost } from "./fake-entries.js";

const SECRET = Buffer.alloc(32, 7);

function fields(overrides: Partial<CacheKeyFields> = {}): CacheKeyFields {
  return {
    formatVersion: IMAGE_FORMAT_VERSION,
    executableSha256: "a".repeat(64),
    executablePath: "/usr/bin/node",
    args: ["server.js"],
    cwd: "/srv/app",
    inputPatterns: ["src/**/*.js"],
    inputs: { "/srv/app/src/a.js": "1".repeat(64) },
    env: digestEnvironment({ PORT: "3000", NODE_ENV: "production" }, SECRET),
    inputIgnore: [],
    uid: 0,
    gid: 0,
    host: fakeHost(),
    ...overrides,
  };
}

describe("cache key", () => {
  test("is a sha256 that does not depend on the order fields were written in", () => {
    const a = fields();
    const reordered = Object.fromEntries(Object.entries(a).reverse()) as unknown as CacheKeyFields;
    assert.match(computeBaseKey(a), /^[0-9a-f]{64}$/);
    assert.equal(computeBaseKey(reordered), computeBaseKey(a));
  });

  test("the base key changes with each field of what the app is", () => {
    const base = computeBaseKey(fields());
    const variants: Partial<CacheKeyFields>[] = [
      { executableSha256: "b".repeat(64) },
      { args: ["server.js", "--flag"] },
      { cwd: "/srv/other" },
      { inputs: { "/srv/app/src/a.js": "2".repeat(64) } },
      { env: digestEnvironment({ PORT: "3001", NODE_ENV: "production" }, SECRET) },
      { uid: 1000 },
      { inputIgnore: ["*.log"] },
      { formatVersion: IMAGE_FORMAT_VERSION + 1 },
    ];
    for (const variant of variants)
      assert.notEqual(computeBaseKey(fields(variant)), base, JSON.stringify(variant));
  });

  test("the host part is not in the base key but in the entry key, which ends with the base key's half", () => {
    const host = fields().host;
    const otherHost = { ...host, memoryLimitBytes: 512 * 1024 ** 2 };
    assert.equal(computeBaseKey(fields({ host: otherHost })), computeBaseKey(fields()));
    const baseKey = computeBaseKey(fields());
    const entryKey = computeEntryKey(baseKey, host, ["f aaa /srv/app/server.js"]);
    assert.match(entryKey, /^[0-9a-f]{64}$/);
    assert.ok(entryKey.endsWith(baseKeySuffix(baseKey)));
    assert.notEqual(computeEntryKey(baseKey, otherHost, ["f aaa /srv/app/server.js"]), entryKey);
    assert.notEqual(computeEntryKey(baseKey, host, ["f bbb /srv/app/server.js"]), entryKey);
    assert.equal(computeEntryKey(baseKey, host, ["f aaa /srv/app/server.js"]), entryKey);
  });

  test("volatile variables are left out, and so are names the user adds", () => {
    const env = {
      PORT: "3000",
      SHLVL: "3",
      OLDPWD: "/tmp",
      _: "/usr/bin/node",
      WARMSTART_X: "1",
      BUILD_ID: "42",
    };
    assert.deepEqual(Object.keys(digestEnvironment(env, SECRET)).sort(), ["BUILD_ID", "PORT"]);
    assert.deepEqual(Object.keys(digestEnvironment(env, SECRET, new Set(["BUILD_ID"]))), ["PORT"]);
    assert.equal(isVolatileEnv("SSH_CONNECTION"), true);
    assert.equal(isVolatileEnv("DATABASE_URL"), false);
  });

  test("environment values never appear, and their digests depend on the cache's secret", () => {
    const digests = digestEnvironment({ API_TOKEN: "hunter2" }, SECRET);
    assert.doesNotMatch(JSON.stringify(digests), /hunter2/);
    assert.match(digests.API_TOKEN ?? "", /^[0-9a-f]{32}$/);
    assert.notEqual(
      digestEnvironment({ API_TOKEN: "hunter2" }, Buffer.alloc(32, 8)).API_TOKEN,
      digests.API_TOKEN,
    );
  });

  test("diffKeyFields names what changed, down to the variable and the file", () => {
    const before = fields();
    const after = fields({
      args: ["server.js", "-v"],
      env: digestEnvironment({ PORT: "3001", DEBUG: "1" }, SECRET),
      inputs: { "/srv/app/src/a.js": "2".repeat(64), "/srv/app/src/b.js": "3".repeat(64) },
    });
    assert.deepEqual(diffKeyFields(before, after), [
      "args changed",
      "input /srv/app/src/a.js changed",
      "input /srv/app/src/b.js appeared",
      "env NODE_ENV is gone",
      "env PORT changed",
      "env DEBUG appeared",
    ]);
    assert.deepEqual(diffKeyFields(before, fields()), []);
    const smaller = fields({ host: { ...before.host, cpusAllowed: 1, memoryLimitBytes: 1024 } });
    assert.deepEqual(diffKeyFields(before, smaller), [
      "cpusAllowed changed (2 -> 1)",
      "memoryLimitBytes changed (unlimited -> 1024)",
    ]);
  });
});
