import assert from "node:assert/strict";
import { test } from "node:test";
import type { TcpSocket } from "../../src/launch/proc-sockets.js";
import { parseListenAddress } from "../../src/serve/listen-address.js";
import { explainPortInUse } from "../../src/serve/port-in-use.js";

const socket = (localPort: number, state: string): TcpSocket => ({
  localAddress: "127.0.0.1",
  localPort,
  local: `0100007F:${localPort.toString(16).toUpperCase()}`,
  remote: "0100007F:9C40",
  state,
  inode: "1",
});

test("a port taken by a listener names its process; one taken by a connection's local end says it frees itself", () => {
  const address = parseListenAddress("127.0.0.1:40000");
  assert.equal(
    explainPortInUse(
      address,
      [socket(40000, "0A")],
      () => "port 40000 is held by pid 7 (node)",
      "32768-60999",
    ),
    "port 40000 is held by pid 7 (node) without SO_REUSEPORT (an app started without serve?); stop it, or give serve another --listen",
  );
  assert.equal(
    explainPortInUse(
      address,
      [socket(40000, "06"), socket(40000, "01"), socket(3000, "0A")],
      () => undefined,
      "32768-60999",
    ),
    "port 40000 is the local end of a connection (TIME_WAIT, ESTABLISHED), not a listener: it is free once that connection has closed " +
      "(TIME_WAIT lasts a minute); try again then, or listen on a port outside the ephemeral range " +
      "(32768-60999 here, net.ipv4.ip_local_port_range), which clients' connections never take",
  );
  // Nothing seen on the port (another network namespace's view, a race): the usual advice.
  assert.match(
    explainPortInUse(address, [], () => undefined, undefined),
    /^another process holds the port without/,
  );
});
