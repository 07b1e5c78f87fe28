import { readFileSync } from "node:fs";
import {
  describePortHolder,
  describeTcpState,
  findPortHolders,
  readTcpSockets,
  TCP_LISTEN,
  type TcpSocket,
} from "../launch/proc-sockets.js";
import type { ListenAddress } from "./listen-address.js";

/**
 * What to tell the user when serve's bind found the port in use. A listener of another
 * process is the usual case; but a port inside the ephemeral range can also be taken by a
 * connection's local end (a client that connected to the closed port and reached itself, or
 * one that just closed: TIME_WAIT), which is no listener to stop, and which is free again
 * once the connection has closed.
 */
export function explainPortInUse(
  address: ListenAddress,
  sockets: readonly TcpSocket[],
  describeListener: () => string | undefined,
  ephemeralRange: string | undefined,
): string {
  const onPort = sockets.filter((socket) => socket.localPort === address.port);
  if (onPort.some((socket) => socket.state === TCP_LISTEN) || onPort.length === 0) {
    const who = describeListener();
    return `${who ?? "another process holds the port"} without SO_REUSEPORT (an app started without serve?); stop it, or give serve another --listen`;
  }
  const states = [...new Set(onPort.map((socket) => describeTcpState(socket.state)))].join(", ");
  const range = ephemeralRange ? ` (${ephemeralRange} here, net.ipv4.ip_local_port_range)` : "";
  return (
    `port ${address.port} is the local end of a connection (${states}), not a listener: it is free once that connection has closed ` +
    `(TIME_WAIT lasts a minute); try again then, or listen on a port outside the ephemeral range${range}, ` +
    "which clients' connections never take"
  );
}

/** explainPortInUse on this network namespace's sockets. */
export function explainPortInUseHere(address: ListenAddress): string {
  let range: string | undefined;
  try {
    range = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().replace(/\s+/, "-");
  } catch {
    range = undefined;
  }
  const wanted = [{ address: address.host, port: address.port }];
  return explainPortInUse(
    address,
    readTcpSockets("self"),
    () => {
      const [holder] = findPortHolders(wanted);
      return holder ? describePortHolder(holder) : undefined;
    },
    range,
  );
}
