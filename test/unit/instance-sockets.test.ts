import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { after, test } from "node:test";
import { holdListeners, readHeldQueue, releaseListeners } from "../../src/serve/instance-sockets.js";
import { parseListenAddress } from "../../src/serve/listen-address.js";

const children: ChildProcess[] = [];
after(() => {
  for (const child of children) child.kill("SIGKILL");
});

/** A real process listening on two loopback ports and holding a connection of its own. */
async function startListener(): Promise<{ pid: number; ports: [number, number] }> {
  const script = `
    const net = require("node:net");
    const a = net.createServer().listen(0, "127.0.0.1", () => {
      const b = net.createServer().listen(0, "127.0.0.1", () => {
        const client = net.connect(a.address().port, "127.0.0.1", () =>
          console.log(JSON.stringify([a.address().port, b.address().port])));
      });
    });`;
  const child = spawn(process.execPath, ["-e", script], { stdio: ["ignore", "pipe", "inherit"] });
  children.push(child);
  const [line] = (await once(child.stdout, "data")) as [Buffer];
  return { pid: child.pid as number, ports: JSON.parse(line.toString()) as [number, number] };
}

test("holdListeners duplicates the listener at each address asked, and names the others", async () => {
  const { pid, ports } = await startListener();
  const asked = parseListenAddress(`127.0.0.1:${ports[0]}`);
  const absent = parseListenAddress("127.0.0.1:1");
  const taken = holdListeners(pid, [asked, absent]);
  try {
    assert.deepEqual(
      taken.held.map((listener) => listener.address),
      [asked],
    );
    assert.deepEqual(taken.missing, [absent]);
    // Both of its listeners, not the connection's ends.
    assert.deepEqual([...taken.listening].sort(), [`127.0.0.1:${ports[0]}`, `127.0.0.1:${ports[1]}`].sort());
    // The duplicate is the listener itself: its accept queue is the app's (the app accepts).
    assert.equal(readHeldQueue(taken.held), 0);
  } finally {
    releaseListeners(taken.held);
  }
});
