import { ssEstablished } from "../exec/command-lines.js";
import { runToCompletion } from "../exec/owned-process.js";

/** An established connection on a served port, as sock_diag (ss) reports it. */
export interface ConnectionActivity {
  readonly inode: string;
  /** Milliseconds since it last received data (since it was set up, when it never did). */
  readonly lastReceivedMs: number;
  /** Milliseconds since it last sent data. */
  readonly lastSentMs: number;
  /** Bytes the app wrote that the peer has not acknowledged yet: an answer still going out. */
  readonly sendQueueBytes: number;
}

/** The established connections on these local ports (empty if ss cannot say). */
export async function readConnections(ports: readonly number[]): Promise<ConnectionActivity[]> {
  const result = await runToCompletion(ssEstablished(ports), { timeoutMs: 5000 });
  return result.code === 0 ? parseSsConnections(result.stdout) : [];
}

/** `ss -H -t -n -i -e -O state established`: one line per socket, TCP info inline. */
export function parseSsConnections(text: string): ConnectionActivity[] {
  const connections: ConnectionActivity[] = [];
  for (const line of text.split("\n")) {
    const inode = /\bino:(\d+)/.exec(line)?.[1];
    if (!inode || inode === "0") continue;
    const [, sendQueue] = line.trim().split(/\s+/);
    const number = (name: string) => {
      const match = new RegExp(`\\b${name}:(\\d+)`).exec(line)?.[1];
      return match === undefined ? Number.POSITIVE_INFINITY : Number(match);
    };
    connections.push({
      inode,
      lastReceivedMs: number("lastrcv"),
      lastSentMs: number("lastsnd"),
      sendQueueBytes: Number(sendQueue) || 0,
    });
  }
  return connections;
}
