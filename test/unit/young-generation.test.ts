import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { PerformanceObserver } from "node:perf_hooks";
import { test } from "node:test";
import { runInNewContext } from "node:vm";

// The runtime is bundled to CommonJS, where `require` is the module's own; here it is given.
(globalThis as { require?: NodeJS.Require }).require = createRequire(import.meta.url);
const { scavengeYoungGeneration } = await import("../../src/runtime/app/young-generation.js");

test("the young generation is scavenged, and no context made afterwards sees gc()", async () => {
  const kinds: number[] = [];
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries())
      kinds.push((entry as unknown as { detail: { kind: number } }).detail.kind);
  });
  observer.observe({ entryTypes: ["gc"] });
  scavengeYoungGeneration();
  // gc entries are delivered asynchronously.
  await new Promise((resolve) => setTimeout(resolve, 50));
  observer.disconnect();
  const { constants } = await import("node:perf_hooks");
  assert.ok(kinds.includes(constants.NODE_PERFORMANCE_GC_MINOR), `gc kinds seen: ${kinds.join(", ")}`);
  assert.equal(runInNewContext("typeof gc"), "undefined");
  assert.equal(typeof (globalThis as { gc?: unknown }).gc, "undefined");
});
