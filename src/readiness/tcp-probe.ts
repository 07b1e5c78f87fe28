import { connect } from "node:net";
import { type Attempt, describeNetworkError, failed, PASSED } from "./attempt.js";

/** How long the app gets to close its side before the probe resets the connection. */
const GRACEFUL_CLOSE_MS = 200;

/**
 * One connect attempt: passed when the port accepted a connection. The socket is closed
 * as soon as it connects and the promise settles only once it is closed: the app is
 * checkpointed right after readiness, and CRIU cannot dump an established connection.
 */
export async function connectOnce(
  host: string,
  port: number,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<Attempt> {
  if (host !== "localhost") return connectTo(host, port, timeoutMs, signal);
  // "localhost" without the resolver: Node's first getaddrinfo starts its thread pool
  // (~19 ms here, on every warm launch). Both loopback addresses are tried, so an app
  // that listens on ::1 only is still found; a refused loopback connect fails at once.
  const details: string[] = [];
  for (const address of LOOPBACK_ADDRESSES) {
    const attempt = await connectTo(address, port, timeoutMs, signal);
    if (attempt.isPassed) return attempt;
    details.push(attempt.detail);
    if (signal.aborted) break;
  }
  const [first, second] = details;
  return failed(
    second === undefined || second === first
      ? (first ?? "not tried")
      : `${first} on 127.0.0.1, ${second} on ::1`,
  );
}

const LOOPBACK_ADDRESSES = ["127.0.0.1", "::1"];

function connectTo(host: string, port: number, timeoutMs: number, signal: AbortSignal): Promise<Attempt> {
  return new Promise((resolve) => {
    let isConnected = false;
    let detail = "connection closed";
    const socket = connect({ host, port, timeout: timeoutMs });
    const stop = () => socket.destroy();
    signal.addEventListener("abort", stop, { once: true });
    socket.once("connect", () => {
      isConnected = true;
      // Close with a FIN and drain what the app sends: destroying a socket with unread
      // data sends an RST, which an app without a socket error handler dies of.
      socket.resume();
      socket.end();
      setTimeout(stop, GRACEFUL_CLOSE_MS).unref();
    });
    socket.once("timeout", () => {
      detail = `no answer in ${timeoutMs} ms`;
      stop();
    });
    // ECONNREFUSED and the like: the port is not ready yet, which "close" reports.
    socket.on("error", (error: NodeJS.ErrnoException) => {
      detail = describeNetworkError(error);
    });
    socket.once("close", () => {
      signal.removeEventListener("abort", stop);
      resolve(isConnected ? PASSED : failed(detail));
    });
  });
}
