import {
  findNetlinkAttribute,
  INET_DIAG_INFO,
  NLMSG_DONE,
  NLMSG_ERROR,
  splitNetlinkMessages,
} from "./netlink.js";
import { queryEstablishedTcp } from "./socket-calls.js";

/** An established connection on a served port, as sock_diag reports it. */
export interface ConnectionActivity {
  readonly inode: string;
  /** Milliseconds since it last received data (since it was set up, when it never did). */
  readonly lastReceivedMs: number;
  /** Milliseconds since it last sent data. */
  readonly lastSentMs: number;
  /** Bytes the app wrote that the peer has not acknowledged yet: an answer still going out. */
  readonly sendQueueBytes: number;
}

/**
 * The established connections on these local ports (empty if the kernel cannot say), asked of
 * sock_diag directly: spawning `ss` for it, once a second while an instance runs, cost serve
 * ~7 ms of its main thread each time and the machine a process.
 */
export function readConnections(ports: readonly number[]): ConnectionActivity[] {
  const wanted = new Set(ports);
  const replies = queryEstablishedTcp();
  return replies ? replies.flatMap((reply) => parseInetDiagReply(reply, wanted)) : [];
}

const INET_DIAG_MSG_BYTES = 72;
// struct inet_diag_msg: the socket id (source port big-endian at 4), then the queues and inode.
const SOURCE_PORT_OFFSET = 4;
const WRITE_QUEUE_OFFSET = 60;
const INODE_OFFSET = 68;
// struct tcp_info: the "times" (ms since the last data sent and received).
const LAST_DATA_SENT_OFFSET = 44;
const LAST_DATA_RECEIVED_OFFSET = 52;
const TCP_INFO_MIN_BYTES = 56;

/**
 * The connections on `ports` in one recv()'s worth of a SOCK_DIAG_BY_FAMILY dump: netlink
 * messages, each an inet_diag_msg with its attributes (INET_DIAG_INFO: struct tcp_info).
 * Stops at NLMSG_DONE or NLMSG_ERROR.
 */
export function parseInetDiagReply(reply: Buffer, ports: ReadonlySet<number>): ConnectionActivity[] {
  const connections: ConnectionActivity[] = [];
  for (const { type, payload: message } of splitNetlinkMessages(reply)) {
    if (type === NLMSG_DONE || type === NLMSG_ERROR) break;
    if (message.length < INET_DIAG_MSG_BYTES) continue;
    if (!ports.has(message.readUInt16BE(SOURCE_PORT_OFFSET))) continue;
    const inode = message.readUInt32LE(INODE_OFFSET);
    if (inode === 0) continue;
    const info = findNetlinkAttribute(message.subarray(INET_DIAG_MSG_BYTES), INET_DIAG_INFO);
    const hasTimes = info !== undefined && info.length >= TCP_INFO_MIN_BYTES;
    connections.push({
      inode: String(inode),
      lastReceivedMs: hasTimes ? info.readUInt32LE(LAST_DATA_RECEIVED_OFFSET) : Number.POSITIVE_INFINITY,
      lastSentMs: hasTimes ? info.readUInt32LE(LAST_DATA_SENT_OFFSET) : Number.POSITIVE_INFINITY,
      sendQueueBytes: message.readUInt32LE(WRITE_QUEUE_OFFSET),
    });
  }
  return connections;
}
