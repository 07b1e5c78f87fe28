/** One netlink message of a reply: its type and what follows its header. */
export interface NetlinkMessage {
  readonly type: number;
  readonly payload: Buffer;
}

export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
/** sock_diag's attribute (and request flag bit, less one) for struct tcp_info. */
export const INET_DIAG_INFO = 2;
const HEADER_BYTES = 16;
const ATTRIBUTE_HEADER_BYTES = 4;

/** Netlink pads every message and attribute to 4 bytes. */
const align = (length: number) => (length + 3) & ~3;

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
    offset += align(length);
  }
  return messages;
}

/**
 * The payload of the attribute of type `wanted` among a message's attributes (struct rtattr:
 * u16 length with its 4-byte header, u16 type), or undefined; one cut short ends the search.
 */
export function findNetlinkAttribute(attributes: Buffer, wanted: number): Buffer | undefined {
  let offset = 0;
  while (offset + ATTRIBUTE_HEADER_BYTES <= attributes.length) {
    const length = attributes.readUInt16LE(offset);
    const type = attributes.readUInt16LE(offset + 2);
    if (length < ATTRIBUTE_HEADER_BYTES || offset + length > attributes.length) return undefined;
    if (type === wanted) return attributes.subarray(offset + ATTRIBUTE_HEADER_BYTES, offset + length);
    offset += align(length);
  }
  return undefined;
}
