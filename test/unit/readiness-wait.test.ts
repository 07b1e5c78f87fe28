import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { createServer as createTcpServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { promisify } from "node:util";
import { describePendingProbes, LineBuffer, parseProbe, waitUntilReady } from "../../src/readiness/index.js";

/** A port nothing listens on (right now): bound, noted, released. */
async function findFreePort(): Promise<number> {
  const server = createTcpServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  assert.ok(address && typeof address === "object");
  return address.port;
}

async function listen(server: Server, port = 0): Promise<number> {
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  const address = server.address();
  assert.ok(address && typeof address === "object");
  return address.port;
}

/** Counts the connections a server accepted, and closes them all when the test ends. */
function trackConnections(server: Server): { seen: () => number; close: () => Promise<void> } {
  let seen = 0;
  const sockets = new Set<import("node:net").Socket>();
  server.on("connection", (socket) => {
    seen += 1;
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  return {
    seen: () => seen,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      if (server.listening) await new Promise((resolve) => server.close(resolve));
    },
  };
}

/**
 * A probe's connection must be gone by the time the app is checkpointed. The server may
 * see the probe's close a moment later, so allow it a few event loop turns (300 ms: less
 * than the probe's 1 s attempt timeout, far less than HTTP keep-alive's 5 s).
 */
async function assertNoOpenConnections(server: Server, seen: () => number): Promise<void> {
  const deadlineMs = performance.now() + 300;
  for (;;) {
    const open = await new Promise<number>((resolve, reject) =>
      server.getConnections((error, count) => (error ? reject(error) : resolve(count))),
    );
    if (seen() > 0 && open === 0) return;
    if (performance.now() > deadlineMs)
      assert.fail(`the server still has ${open} open of ${seen()} connections`);
    await delay(5);
  }
}

describe("waitUntilReady: tcp", () => {
  test("passes once a server starts listening 200 ms later", async (t) => {
    const port = await findFreePort();
    const server = createTcpServer();
    const connections = trackConnections(server);
    t.after(connections.close);
    const listening = delay(200).then(() => listen(server, port));
    const outcome = await waitUntilReady({
      probes: [parseProbe(`tcp:127.0.0.1:${port}`, "/")],
      timeoutMs: 10_000,
      output: new LineBuffer(),
    });
    await listening;
    assert.equal(outcome.ready, true);
    assert.ok(outcome.elapsedMs >= 150, `ready after ${outcome.elapsedMs} ms, before the server listened`);
    await assertNoOpenConnections(server, connections.seen);
  });

  test("tcp:<port> reaches a server on 127.0.0.1 and leaves no connection open", async (t) => {
    const server = createTcpServer();
    const connections = trackConnections(server);
    t.after(connections.close);
    const port = await listen(server);
    const outcome = await waitUntilReady({
      probes: [parseProbe(`tcp:${port}`, "/")],
      timeoutMs: 5000,
      output: new LineBuffer(),
    });
    assert.equal(outcome.ready, true);
    await assertNoOpenConnections(server, connections.seen);
  });
});

describe("waitUntilReady: http", () => {
  test("retries a 500 until a 200, without keep-alive, and leaves no connection open", async (t) => {
    const statuses = [500, 500, 200];
    const seenRequests: { status: number; connection: string | undefined }[] = [];
    const server: HttpServer = createHttpServer((request, response) => {
      const status = statuses[seenRequests.length] ?? 200;
      seenRequests.push({ status, connection: request.headers.connection });
      response.writeHead(status, { "content-type": "text/plain" }).end("hello\n");
    });
    const connections = trackConnections(server);
    t.after(connections.close);
    const port = await listen(server);
    const outcome = await waitUntilReady({
      probes: [parseProbe(`http://127.0.0.1:${port}/health`, "/")],
      timeoutMs: 10_000,
      output: new LineBuffer(),
    });
    assert.equal(outcome.ready, true);
    assert.deepEqual(seenRequests, [
      { status: 500, connection: "close" },
      { status: 500, connection: "close" },
      { status: 200, connection: "close" },
    ]);
    await assertNoOpenConnections(server, connections.seen);
  });

  test("https to a self-signed certificate passes", async (t) => {
    const dir = await mkdtemp(join(tmpdir(), "warmstart-readiness-"));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const keyPath = join(dir, "key.pem");
    const certPath = join(dir, "cert.pem");
    try {
      await promisify(execFile)("openssl", [
        ...["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"],
        ...["-keyout", keyPath, "-out", certPath],
      ]);
    } catch (error) {
      return t.skip(`openssl could not make a certificate: ${(error as Error).message}`);
    }
    const server = createHttpsServer(
      { key: await readFile(keyPath), cert: await readFile(certPath) },
      (_, response) => response.end("ok"),
    );
    const connections = trackConnections(server);
    t.after(connections.close);
    const port = await listen(server);
    const outcome = await waitUntilReady({
      probes: [parseProbe(`https://127.0.0.1:${port}/`, "/")],
      timeoutMs: 10_000,
      output: new LineBuffer(),
    });
    assert.equal(outcome.ready, true);
    await assertNoOpenConnections(server, connections.seen);
  });
});

describe("waitUntilReady: log", () => {
  test("matches a line printed before the wait began", async () => {
    const output = new LineBuffer();
    output.push("starting\nlistening on port 8080\n");
    const outcome = await waitUntilReady({
      probes: [parseProbe("log:listening on port \\d+", "/")],
      timeoutMs: 5000,
      output,
    });
    assert.equal(outcome.ready, true);
  });

  test("matches a later line, not an earlier one that does not match", async () => {
    const output = new LineBuffer();
    output.push("listening soon\n");
    const probe = parseProbe("log:^listening on port \\d+$", "/");
    setTimeout(() => output.push("compiling\nlistening on "), 50);
    setTimeout(() => output.push("port 8080\n"), 100);
    const lines: string[] = [];
    output.onLine((line) => lines.push(line));
    const outcome = await waitUntilReady({ probes: [probe], timeoutMs: 5000, output });
    assert.equal(outcome.ready, true);
    assert.deepEqual(lines, ["compiling", "listening on port 8080"]);
  });
});

describe("waitUntilReady: file", () => {
  test("passes when the file appears", async (t) => {
    const dir = await mkdtemp(join(tmpdir(), "warmstart-readiness-"));
    t.after(() => rm(dir, { recursive: true, force: true }));
    let isWriteStarted = false;
    setTimeout(() => {
      isWriteStarted = true;
      void writeFile(join(dir, "ready.flag"), "");
    }, 100);
    const outcome = await waitUntilReady({
      probes: [parseProbe("file:ready.flag", dir)],
      timeoutMs: 10_000,
      output: new LineBuffer(),
    });
    assert.equal(outcome.ready, true);
    assert.equal(isWriteStarted, true);
  });
});

describe("waitUntilReady: outcomes", () => {
  test("a timeout lists the probes that had not passed, in order", async (t) => {
    const dir = await mkdtemp(join(tmpdir(), "warmstart-readiness-"));
    t.after(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, "present"), "");
    const server = createHttpServer((_, response) => response.writeHead(404).end());
    const connections = trackConnections(server);
    t.after(connections.close);
    const httpPort = await listen(server);
    const closedPort = await findFreePort();
    const probes = [
      parseProbe(`tcp:127.0.0.1:${closedPort}`, "/"),
      parseProbe("file:present", dir),
      parseProbe(`http://127.0.0.1:${httpPort}/`, "/"),
      parseProbe("log:never printed", "/"),
    ];
    const output = new LineBuffer();
    output.push("something else\n");
    const outcome = await waitUntilReady({ probes, timeoutMs: 300, output });
    assert.equal(outcome.ready, false);
    assert.equal(outcome.reason, "timeout");
    assert.ok(outcome.elapsedMs >= 300, `timed out after ${outcome.elapsedMs} ms`);
    assert.ok(outcome.reason === "timeout");
    assert.deepEqual(outcome.pending, [probes[0], probes[2], probes[3]]);
    // What each one saw last: the user is told why, not only which.
    assert.deepEqual(outcome.lastResults, [
      "last try: connection refused",
      "last try: HTTP 404",
      "no line of output matched",
    ]);
    assert.equal(
      describePendingProbes(outcome),
      `tcp:127.0.0.1:${closedPort} (last try: connection refused), http://127.0.0.1:${httpPort}/ (last try: HTTP 404), log:never printed (no line of output matched)`,
    );
    await assertNoOpenConnections(server, connections.seen);
  });

  test("a timeout says what tcp:<port> (both loopback addresses) and a missing file saw last", async () => {
    const closedPort = await findFreePort();
    const probes = [parseProbe(`tcp:${closedPort}`, "/"), parseProbe("file:/nonexistent/ready.flag", "/")];
    const outcome = await waitUntilReady({ probes, timeoutMs: 200, output: new LineBuffer() });
    assert.ok(outcome.ready === false && outcome.reason === "timeout");
    assert.equal(
      describePendingProbes(outcome),
      `tcp:localhost:${closedPort} (last try: connection refused), file:/nonexistent/ready.flag (last try: no such file)`,
    );
  });

  test("a wait that ends mid-request closes the probe's connection before it returns", async (t) => {
    const server = createHttpServer(() => {}); // accepts, never answers
    const connections = trackConnections(server);
    t.after(connections.close);
    const port = await listen(server);
    const outcome = await waitUntilReady({
      probes: [parseProbe(`http://127.0.0.1:${port}/`, "/")],
      timeoutMs: 200,
      output: new LineBuffer(),
    });
    assert.equal(outcome.ready === false && outcome.reason, "timeout");
    await assertNoOpenConnections(server, connections.seen);
  });

  test("an abort ends the wait", async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    const outcome = await waitUntilReady({
      probes: [parseProbe(`tcp:127.0.0.1:${await findFreePort()}`, "/"), parseProbe("log:never", "/")],
      timeoutMs: 10_000,
      output: new LineBuffer(),
      signal: controller.signal,
    });
    assert.equal(outcome.ready, false);
    assert.equal(outcome.reason, "aborted");
  });

  test("an already aborted signal ends it at once, even with every probe passing", async () => {
    const output = new LineBuffer();
    output.push("ready\n");
    const outcome = await waitUntilReady({
      probes: [parseProbe("log:ready", "/")],
      timeoutMs: 10_000,
      output,
      signal: AbortSignal.abort(),
    });
    assert.equal(outcome.ready === false && outcome.reason, "aborted");
  });

  test("no probes: ready at once", async () => {
    const outcome = await waitUntilReady({ probes: [], timeoutMs: 0, output: new LineBuffer() });
    assert.equal(outcome.ready, true);
  });

  test("option errors name the option", async () => {
    const output = new LineBuffer();
    await assert.rejects(waitUntilReady({ probes: [], timeoutMs: -1, output }), {
      code: "invalid-option",
      message: "Expected timeoutMs to be a non-negative number of milliseconds, got -1.",
    });
    await assert.rejects(waitUntilReady({ probes: [], timeoutMs: 1, output, pollIntervalMs: 0 }), {
      code: "invalid-option",
      message: "Expected pollIntervalMs to be a positive number of milliseconds, got 0.",
    });
    await assert.rejects(waitUntilReady({ probes: [parseProbe("notify", "/")], timeoutMs: 1, output }), {
      code: "invalid-option",
      message:
        "Expected notify to be a NotifyListener (from createNotifyListener) when a notify probe is used, got nothing.",
    });
  });
});
