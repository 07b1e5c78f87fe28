import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { runCheckpointHooks, runRestoreHooks } from "../../src/runtime/app/hooks.js";
import { parseHookSpec } from "../../src/runtime/external-hooks.js";
import { formatUpMessage, parseUpMessage, type UpMessage } from "../../src/runtime/protocol.js";
import type { Registry } from "../../src/runtime/registry.js";
import { resolveRuntimeOptions } from "../../src/runtime/runtime-options.js";

function registry(): Registry {
  return { protocol: 1, checkpointHooks: [], restoreHooks: [], isManaged: true, restoreCount: 0 };
}

describe("runtime protocol", () => {
  test("every message survives a round trip, as one line", () => {
    const messages: UpMessage[] = [
      { type: "hello", pid: 12, kind: "node", protocol: 1 },
      { type: "hello", pid: 13, kind: "jvm", protocol: 1 },
      { type: "checkpoint-ready", pid: 12 },
      { type: "checkpoint-failed", pid: 12, detail: 'hook "a" threw:\nno' },
      {
        type: "resumed",
        pid: 12,
        verdict: "restored",
        report: { isReseeded: true, failures: ["restore hook 1 threw: x y"], reseedMs: 0.5 },
      },
    ];
    for (const message of messages) {
      const line = formatUpMessage(message);
      assert.equal(line.indexOf("\n"), line.length - 1, line);
      assert.deepEqual(parseUpMessage(line.slice(0, -1)), message);
    }
    assert.equal(parseUpMessage("resumed 12 later {}"), undefined);
    assert.equal(parseUpMessage("garbage"), undefined);
  });

  test("a long failure is clipped below PIPE_BUF", () => {
    const line = formatUpMessage({ type: "checkpoint-failed", pid: 1, detail: "x".repeat(10_000) });
    assert.ok(line.length < 4096, String(line.length));
  });
});

describe("hook runners", () => {
  test("checkpoint hooks run newest first and stop at the first failure", async () => {
    const calls: string[] = [];
    const hooks = registry();
    hooks.checkpointHooks.push(
      () => calls.push("first"),
      async () => {
        calls.push("second");
        throw new Error("no");
      },
      () => calls.push("third"),
    );
    assert.equal(await runCheckpointHooks(hooks, 1000), "checkpoint hook 2 (newest first) threw: no");
    assert.deepEqual(calls, ["third", "second"]);
  });

  test("checkpoint hooks share one timeout", async () => {
    const hooks = registry();
    hooks.checkpointHooks.push(() => new Promise(() => {}));
    assert.equal(
      await runCheckpointHooks(hooks, 20),
      "checkpoint hook 1 (newest first) timed out (the hooks have 20 ms)",
    );
  });

  test("restore hooks run oldest first; every failure is kept; the info reaches them", async () => {
    const calls: string[] = [];
    const hooks = registry();
    hooks.restoreHooks.push(
      (info) => {
        calls.push(`first ${info.outcome}`);
        throw new Error("a");
      },
      async (info) => {
        calls.push(`second ${info.isRestored}`);
      },
      () => Promise.reject(new Error("c")),
    );
    const failures = await runRestoreHooks(hooks, { outcome: "restored", isRestored: true }, 1000);
    assert.deepEqual(calls, ["first restored", "second true"]);
    assert.deepEqual(failures, ["restore hook 1 threw: a", "restore hook 3 threw: c"]);
  });
});

describe("runtime options", () => {
  test("a hook is a command or an http(s) URL", () => {
    assert.deepEqual(parseHookSpec("curl -X POST x", "--after-restore"), {
      kind: "command",
      command: "curl -X POST x",
    });
    const http = parseHookSpec("http://127.0.0.1:8080/_warm/restore", "--after-restore");
    assert.equal(http.kind === "http" && http.url.port, "8080");
    assert.throws(() => parseHookSpec("  ", "--before-checkpoint"), {
      shortMessage: 'Expected --before-checkpoint to be a command or an http:// URL, got "  ".',
    });
  });

  test("defaults, and a bad timeout named", () => {
    const resolved = resolveRuntimeOptions();
    assert.equal(resolved.isEnabled, true);
    assert.equal(resolved.hookTimeoutMs, 10_000);
    assert.equal(resolved.isStrictHooks, false);
    assert.throws(() => resolveRuntimeOptions({ hookTimeoutMs: 0 }), {
      shortMessage: "Expected --hook-timeout to be a positive number of seconds, got 0.",
    });
  });
});
