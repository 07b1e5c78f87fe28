// The runtime's HTTP warm-up before a dump (src/runtime/app/http-warm-up.ts): Node's server
// code runs over a socketpair closed afterwards, or not at all where something watches HTTP
// servers.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import http from "node:http";
import { createRequire } from "node:module";
import { test } from "node:test";
import { makeSocketPair } from "../../src/exec/pipes.js";

// The runtime is bundled to CommonJS, where `require` is the module's own; here it is given.
(globalThis as { require?: NodeJS.Require }).require = createRequire(import.meta.url);
const moduleUrl = new URL("../../src/runtime/app/http-warm-up.js", import.meta.url).href;
const { warmUpHttpServer } = await import(moduleUrl);

type AnyMethod = (...args: unknown[]) => unknown;

/** Replaces `name` on `prototype` with a wrapper that calls `before` first; returns the undo. */
function wrap(prototype: object, name: string, before: () => void): () => void {
  const methods = prototype as Record<string, AnyMethod>;
  const original = methods[name] as AnyMethod;
  methods[name] = function (this: unknown, ...args: unknown[]) {
    before();
    return original.apply(this, args);
  };
  return () => {
    methods[name] = original;
  };
}

/** Counts the responses Node's ServerResponse writes while `run` runs. */
async function countResponses(run: () => Promise<unknown>): Promise<{ result: unknown; responses: number }> {
  let responses = 0;
  const undo = wrap(http.ServerResponse.prototype, "writeHead", () => responses++);
  try {
    return { result: await run(), responses };
  } finally {
    undo();
  }
}

test("with node:http loaded, Node's server answers over a socketpair, which is closed after", async () => {
  const fds = execFileSync("ls", [`/proc/${process.pid}/fd`], { encoding: "utf8" });
  let pairs = 0;
  const socketPair = () => {
    pairs++;
    return makeSocketPair();
  };
  const { result, responses } = await countResponses(() => warmUpHttpServer(socketPair));
  assert.equal(result, "warmed");
  assert.equal(responses, 2, "a keep-alive request and a closing one");
  assert.equal(pairs, 2);
  assert.equal(execFileSync("ls", [`/proc/${process.pid}/fd`], { encoding: "utf8" }), fds);
});

test("an HTTP server watched (a diagnostics channel, a patched emit) gets no request", async () => {
  const onStart = () => {};
  subscribe("http.server.request.start", onStart);
  try {
    const { result, responses } = await countResponses(() => warmUpHttpServer(makeSocketPair));
    assert.deepEqual([result, responses], ["watched", 0]);
  } finally {
    unsubscribe("http.server.request.start", onStart);
  }
  // What an APM agent does (shimmer): Server.prototype.emit wrapped.
  const undo = wrap(http.Server.prototype, "emit", () => {});
  try {
    const { result, responses } = await countResponses(() => warmUpHttpServer(makeSocketPair));
    assert.deepEqual([result, responses], ["watched", 0]);
  } finally {
    undo();
  }
});

test("an app that never loaded node:http is not warmed, and still has not loaded it", () => {
  const script = `
    globalThis.require = (await import("node:module")).createRequire(${JSON.stringify(moduleUrl)});
    const { warmUpHttpServer } = await import(${JSON.stringify(moduleUrl)});
    const result = await warmUpHttpServer(() => { throw new Error("no socketpair wanted"); });
    console.log(result, process.moduleLoadList.includes("NativeModule _http_server"));`;
  const output = execFileSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8" });
  assert.equal(output.trim(), "not-loaded false");
});
