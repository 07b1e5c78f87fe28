import { isIPv4, isIPv6 } from "node:net";
import { invalidOption } from "../errors.js";

/** An address serve listens on: the one the app listens on, so that both share the port. */
export interface ListenAddress {
  readonly host: string;
  readonly port: number;
  readonly family: 4 | 6;
  /** The address in network order (4 or 16 bytes). */
  readonly hostBytes: Uint8Array;
  /** As the user reads it: "127.0.0.1:3000", "[::]:3000". */
  readonly text: string;
}

/**
 * The host when `--listen` gives only a port. The front must bind the address the app binds
 * (sockets join one reuseport group only on the same address), and the examples, like most
 * development servers, listen on loopback; a front on every address by default would also
 * expose a port the user did not ask to expose.
 */
export const DEFAULT_LISTEN_HOST = "127.0.0.1";

/** `3000`, `127.0.0.1:3000`, `0.0.0.0:3000`, `[::]:3000`, `[::1]:3000`, `[::ffff:127.0.0.1]:3000`
 * (where a JVM listens on "127.0.0.1": Java's sockets are IPv6 ones, dual-stack). */
export function parseListenAddress(text: string, option = "--listen"): ListenAddress {
  const expected = "[host:]port, e.g. 3000, 127.0.0.1:3000, 0.0.0.0:3000 or [::]:3000";
  const match = /^(?:\[([0-9a-fA-F:.]+)\]:|([0-9.]+):)?(\d{1,5})$/.exec(text);
  const port = Number(match?.[3]);
  if (!match || !Number.isInteger(port) || port < 1 || port > 65535)
    throw invalidOption(option, expected, text);
  const host = match[1] ?? match[2] ?? DEFAULT_LISTEN_HOST;
  if (isIPv4(host)) {
    return {
      host,
      port,
      family: 4,
      hostBytes: Uint8Array.from(host.split(".").map(Number)),
      text: `${host}:${port}`,
    };
  }
  if (isIPv6(host)) return { host, port, family: 6, hostBytes: ipv6Bytes(host), text: `[${host}]:${port}` };
  throw invalidOption(option, expected, text);
}

/** A socket's own address (from LISTEN_FDS) in the same form. */
export function toListenAddress(local: { host: string; port: number; family: 4 | 6 }): ListenAddress {
  return parseListenAddress(
    local.family === 6 ? `[${local.host}]:${local.port}` : `${local.host}:${local.port}`,
  );
}

/** The address as bytes (4 or 16), for comparing the kernel's spelling with the user's. */
export function addressBytes(host: string): Uint8Array | undefined {
  if (isIPv4(host)) return Uint8Array.from(host.split(".").map(Number));
  return isIPv6(host) ? ipv6Bytes(host) : undefined;
}

function ipv6Bytes(text: string): Uint8Array {
  // An IPv4-mapped address ends in a dotted quad (::ffff:127.0.0.1): two groups.
  const quad = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  const host = quad
    ? text.slice(0, quad.index) +
      [
        ((Number(quad[1]) << 8) | Number(quad[2])).toString(16),
        ((Number(quad[3]) << 8) | Number(quad[4])).toString(16),
      ].join(":")
    : text;
  const [head = "", tail] = host.split("::");
  const parse = (part: string) => (part === "" ? [] : part.split(":"));
  const headGroups = parse(head);
  const tailGroups = tail === undefined ? [] : parse(tail);
  const zeros = 8 - headGroups.length - tailGroups.length;
  const groups = [...headGroups, ...Array<string>(Math.max(0, zeros)).fill("0"), ...tailGroups];
  const bytes = new Uint8Array(16);
  groups.slice(0, 8).forEach((group, index) => {
    const value = Number.parseInt(group, 16);
    bytes[index * 2] = value >> 8;
    bytes[index * 2 + 1] = value & 0xff;
  });
  return bytes;
}

/** Whether a listener the kernel shows (`0:0:0:0:0:ffff:7f00:1`, port) is at this address. */
export function isAtAddress(address: ListenAddress, host: string, port: number): boolean {
  const bytes = addressBytes(host);
  return (
    port === address.port && bytes !== undefined && Buffer.from(bytes).equals(Buffer.from(address.hostBytes))
  );
}

/** How a listener the kernel shows reads as a --listen value. */
export function formatListener(host: string, port: number): string {
  const bytes = addressBytes(host);
  if (!bytes || bytes.length === 4) return `${host}:${port}`;
  const isMapped =
    bytes.subarray(0, 10).every((byte) => byte === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
  if (isMapped) return `[::ffff:${[...bytes.subarray(12)].join(".")}]:${port}`;
  return `[${host}]:${port}`;
}
