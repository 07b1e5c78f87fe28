/** One netlink message of a reply: its type and what follows its header. */
export interface NetlinkMessage {
  readonly type: number;
  readonly payload: Buffer;
}

export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
const HEADER_BYTES = 16;

/**
 * The messages in one recv() of a netlink socket (struct nlmsghdr: u32 length with the header,
 * u16 type, u16 flags, u32 sequence, u32 port; in the host's byte order, little-endian on
 * every platform warmstart runs on; each message 4-byte aligned). A message cut short ends
 * the list.
 */
export function splitNetlinkMessages(reply: Buffer): NetlinkMessage[] {
  const messages: NetlinkMessage[] = [];
  let offset = 0;
  while (offset + HEADER_BYTES <= reply.length) {
    const length = reply.readUInt32LE(offset);
    if (length < HEADER_BYTES || offset + length > reply.length) break;
    messages.push({
      type: reply.readUInt16LE(offset + 4),
      payload: reply.subarray(offset + HEADER_BYTES, offset + length),
    });
    offset += (length + 3) & ~3;
  }
  return messages;
}
