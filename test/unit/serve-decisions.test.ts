// serve's decisions and parsers are pure: tested here without root, CRIU or a socket.
import assert from "node:assert/strict";
import { once } from "node:events";
import { readdirSync, readlinkSync } from "node:fs";
import { type AddressInfo, connect, createServer } from "node:net";
import { describe, test } from "node:test";
import { parseDurationMs } from "../../src/commands/serve.js";
import { parseInetDiagReply, readConnections } from "../../src/serve/activity.js";
import { mappedFileRanges } from "../../src/serve/fault-in.js";
import { formatListener, isAtAddress, parseListenAddress } from "../../src/serve/listen-address.js";
import {
  decideScaleUp,
  isIdle,
  isSpareWanted,
  measureQuietMs,
  retryDelayMs,
} from "../../src/serve/serve-decisions.js";
import { ServeMetrics } from "../../src/serve/serve-metrics.js";

const connection = (lastReceivedMs: number, lastSentMs: number, sendQueueBytes = 0) => ({
  inode: "1",
  lastReceivedMs,
  lastSentMs,
  sendQueueBytes,
});

/** A netlink message as the kernel writes it: header (length, type, flags, seq, pid), payload. */
function netlinkMessage(type: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(16);
  header.writeUInt32LE(16 + payload.length, 0);
  header.writeUInt16LE(type, 4);
  return Buffer.concat([header, payload, Buffer.alloc((4 - (payload.length % 4)) % 4)]);
}

/** A SOCK_DIAG_BY_FAMILY reply: inet_diag_msg, then INET_DIAG_INFO (tcp_info) when times are given. */
function diagMessage(socket: {
  port: number;
  inode: number;
  writeQueue: number;
  lastSent?: number;
  lastReceived?: number;
}): Buffer {
  const message = Buffer.alloc(72);
  message.writeUInt8(2, 0);
  message.writeUInt8(1, 1);
  message.writeUInt16BE(socket.port, 4);
  message.writeUInt16BE(50_000, 6);
  message.writeUInt32LE(socket.writeQueue, 60);
  message.writeUInt32LE(socket.inode, 68);
  if (socket.lastSent === undefined) return netlinkMessage(20, message);
  const info = Buffer.alloc(4 + 232);
  info.writeUInt16LE(info.length, 0);
  info.writeUInt16LE(2, 2);
  info.writeUInt32LE(socket.lastSent, 4 + 44);
  info.writeUInt32LE(socket.lastReceived ?? 0, 4 + 52);
  return netlinkMessage(20, Buffer.concat([message, info]));
}

describe("serve decisions", () => {
  test("an open keep-alive connection that carries nothing does not keep an instance up", () => {
    const quietMs = measureQuietMs({
      sinceServingMs: 600_000,
      queued: 0,
      connections: [connection(400_000, 400_000)],
    });
    assert.equal(quietMs, 400_000);
    assert.equal(isIdle(quietMs, 300_000), true);
  });

  test("traffic, a queued connection or an answer still going out keeps it up", () => {
    assert.equal(
      measureQuietMs({ sinceServingMs: 600_000, queued: 0, connections: [connection(50, 9000)] }),
      50,
    );
    assert.equal(measureQuietMs({ sinceServingMs: 600_000, queued: 1, connections: [] }), 0);
    assert.equal(
      measureQuietMs({
        sinceServingMs: 600_000,
        queued: 0,
        connections: [connection(500_000, 500_000, 1024)],
      }),
      0,
    );
    assert.equal(measureQuietMs({ sinceServingMs: 2000, queued: 0, connections: [] }), 2000);
  });

  test("--idle 0 never stops an instance", () => {
    assert.equal(isIdle(10 ** 9, 0), false);
  });

  test("a copy is added only when connections queue on every running one, with room, one at a time", () => {
    const facts = { running: 1, starting: 0, maxInstances: 2, queuedTicks: 2 };
    assert.equal(decideScaleUp(facts), true);
    assert.equal(decideScaleUp({ ...facts, queuedTicks: 1 }), false);
    assert.equal(decideScaleUp({ ...facts, maxInstances: 1 }), false);
    assert.equal(decideScaleUp({ ...facts, starting: 1 }), false);
    assert.equal(
      decideScaleUp({ ...facts, running: 0 }),
      false,
      "the first instance comes from a connection",
    );
  });

  test("a spare is kept while there is room beside the running copies", () => {
    const facts = {
      isSpareEnabled: true,
      hasSpare: false,
      isSpareStarting: false,
      running: 0,
      maxInstances: 1,
      isDraining: false,
    };
    assert.equal(isSpareWanted(facts), true);
    assert.equal(isSpareWanted({ ...facts, running: 1 }), false);
    assert.equal(isSpareWanted({ ...facts, hasSpare: true }), false);
    assert.equal(isSpareWanted({ ...facts, isDraining: true }), false);
    assert.equal(isSpareWanted({ ...facts, isSpareEnabled: false }), false);
  });

  test("retries back off from 1 s to 30 s", () => {
    assert.deepEqual([1, 2, 3, 6, 20].map(retryDelayMs), [1000, 2000, 4000, 30_000, 30_000]);
  });
});

describe("serve's parsers", () => {
  test("sock_diag replies: inode, last data received and sent, the send queue; other ports and inode 0 left out", () => {
    const reply = Buffer.concat([
      diagMessage({ port: 3000, inode: 2328707, writeQueue: 0, lastSent: 316, lastReceived: 412 }),
      diagMessage({ port: 3000, inode: 2328709, writeQueue: 512 }),
      diagMessage({ port: 4000, inode: 2328711, writeQueue: 0, lastSent: 1, lastReceived: 1 }),
      diagMessage({ port: 3000, inode: 0, writeQueue: 0, lastSent: 1, lastReceived: 1 }),
      netlinkMessage(3, Buffer.alloc(4)),
      diagMessage({ port: 3000, inode: 99, writeQueue: 0, lastSent: 1, lastReceived: 1 }),
    ]);
    assert.deepEqual(parseInetDiagReply(reply, new Set([3000])), [
      { inode: "2328707", lastReceivedMs: 412, lastSentMs: 316, sendQueueBytes: 0 },
      {
        inode: "2328709",
        lastReceivedMs: Number.POSITIVE_INFINITY,
        lastSentMs: Number.POSITIVE_INFINITY,
        sendQueueBytes: 512,
      },
    ]);
    // A reply cut short ends the parse where it is cut.
    assert.deepEqual(parseInetDiagReply(reply.subarray(0, 50), new Set([3000])), []);
  });

  test("sock_diag, asked for real: an open connection to a port, with its server side's inode", async () => {
    const server = createServer((socket) => socket.write("hello"));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    const client = connect(port, "127.0.0.1");
    await once(client, "data");
    try {
      const connections = readConnections([port]);
      assert.equal(connections.length, 1, "the server side only: the client's local port is another");
      const [accepted] = connections;
      const inodes = readdirSync("/proc/self/fd").map((fd) => {
        try {
          return readlinkSync(`/proc/self/fd/${fd}`);
        } catch {
          return "";
        }
      });
      assert.ok(
        inodes.includes(`socket:[${accepted?.inode}]`),
        "the inode is none of this process's sockets",
      );
      assert.ok((accepted?.lastSentMs ?? Number.NaN) < 5000, "it sent its greeting just now");
      assert.deepEqual(readConnections([1]), []);
    } finally {
      client.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  test("--listen: a port, host:port, [v6]:port; bad ones name the option and the value", () => {
    assert.equal(parseListenAddress("3000").text, "127.0.0.1:3000");
    assert.equal(parseListenAddress("0.0.0.0:80").host, "0.0.0.0");
    const v6 = parseListenAddress("[::]:3000");
    assert.equal(v6.family, 6);
    assert.deepEqual([...v6.hostBytes], new Array(16).fill(0));
    assert.equal(parseListenAddress("[::1]:3000").hostBytes[15], 1);
    assert.throws(
      () => parseListenAddress("localhost:3000"),
      /Expected --listen to be \[host:\]port.*got "localhost:3000"/,
    );
    assert.throws(() => parseListenAddress("70000"), /got "70000"/);
  });

  test("a JVM's dual-stack listener: the kernel's spelling matches [::ffff:127.0.0.1], and is named so", () => {
    const mapped = parseListenAddress("[::ffff:127.0.0.1]:8080");
    assert.equal(isAtAddress(mapped, "0:0:0:0:0:ffff:7f00:1", 8080), true);
    assert.equal(isAtAddress(parseListenAddress("127.0.0.1:8080"), "0:0:0:0:0:ffff:7f00:1", 8080), false);
    assert.equal(isAtAddress(parseListenAddress("127.0.0.1:8080"), "127.0.0.1", 8080), true);
    assert.equal(formatListener("0:0:0:0:0:ffff:7f00:1", 8080), "[::ffff:127.0.0.1]:8080");
    assert.equal(formatListener("::", 80), "[::]:80");
    assert.equal(formatListener("127.0.0.1", 80), "127.0.0.1:80");
  });

  test("--idle: ms, s, m, h, 0; a bare number is seconds", () => {
    assert.deepEqual(
      ["500ms", "30s", "5m", "1h", "0", "2", "1.5s"].map((text) => parseDurationMs(text, "--idle")),
      [500, 30_000, 300_000, 3_600_000, 0, 2000, 1500],
    );
    assert.throws(() => parseDurationMs("soon", "--idle"), /Expected --idle to be a duration/);
  });

  test("metrics render in the Prometheus text format", () => {
    const metrics = new ServeMetrics();
    metrics.restores = 2;
    metrics.observeStartSeconds(0.02);
    const text = metrics.render({ instances: 1, spares: 0, queued: 3 });
    assert.match(text, /^# TYPE warmstart_serve_instances gauge\nwarmstart_serve_instances 1$/m);
    assert.match(text, /^warmstart_serve_restores_total 2$/m);
    assert.match(text, /^warmstart_serve_queued_connections 3$/m);
    assert.match(text, /^warmstart_serve_restore_latency_seconds_bucket\{le="0.01"\} 0$/m);
    assert.match(text, /^warmstart_serve_restore_latency_seconds_bucket\{le="0.025"\} 1$/m);
    assert.match(text, /^warmstart_serve_restore_latency_seconds_count 1$/m);
  });
});

describe("mappedFileRanges", () => {
  test("keeps the readable file-backed mappings, not anonymous memory, specials or unreadable ones", () => {
    const maps = [
      "00400000-00600000 r-xp 00000000 08:01 1234   /usr/bin/node",
      "00600000-00601000 ---p 00200000 08:01 1234   /usr/bin/node",
      "00601000-00602000 rw-p 00201000 08:01 1234   /usr/bin/node",
      "01000000-02000000 rw-p 00000000 00:00 0      [heap]",
      "7f0000000000-7f0000100000 rw-p 00000000 00:00 0 ",
      "7f0000200000-7f0000210000 r--s 00000000 00:05 99   /memfd:shared (deleted)",
      "7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0      [vdso]",
      "",
    ].join("\n");
    assert.deepEqual(mappedFileRanges(maps), [
      [0x400000, 0x600000],
      [0x601000, 0x602000],
      [0x7f0000200000, 0x7f0000210000],
    ]);
  });
});
