import type { ClientRequest } from "node:http";
import { type Attempt, describeNetworkError, failed, PASSED } from "./attempt.js";

/**
 * One GET: passed on a 2xx answer. No connection may outlive the attempt (CRIU cannot dump
 * an established one, and the dump follows readiness at once), hence no agent, no
 * keep-alive, and the promise settles only once the socket is closed.
 *
 * HTTPS certificates are not verified: the probe asks an app on this machine whether it
 * answers, and its certificate is often self-signed or issued for a public name; a
 * verified certificate would prove nothing more about readiness.
 */
export async function requestOnce(url: string, timeoutMs: number, signal: AbortSignal): Promise<Attempt> {
  // Imported on first use: node:http and node:https (TLS) cost ~16 ms to load, which a warm
  // launch with a tcp: probe would pay for nothing.
  const isHttps = url.startsWith("https:");
  const { request: send } = isHttps ? await import("node:https") : await import("node:http");
  return new Promise((resolve) => {
    let isOk = false;
    let detail = "connection closed";
    const options = { agent: false, headers: { connection: "close", "user-agent": "warmstart-readiness" } };
    const request: ClientRequest = send(url, isHttps ? { ...options, rejectUnauthorized: false } : options);
    const stop = () => request.destroy();
    signal.addEventListener("abort", stop, { once: true });
    // Bounds the whole exchange, not just silences: a 2xx whose body never ends still settles.
    const timer = setTimeout(() => {
      if (detail === "connection closed") detail = `no answer in ${timeoutMs} ms`;
      stop();
    }, timeoutMs);
    const finish = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", stop);
      resolve(isOk ? PASSED : failed(detail));
    };
    // "close" can come before the socket's own close (or without a socket, when destroyed
    // before it was assigned); only a closed socket is a connection CRIU will not find.
    request.once("close", () => {
      const { socket } = request;
      if (socket && !socket.closed) socket.once("close", finish);
      else finish();
    });
    request.once("response", (response) => {
      const status = response.statusCode ?? 0;
      isOk = status >= 200 && status < 300;
      detail = `HTTP ${status}`;
      // Read the body to its end, so the app does not log a reset mid-answer, and only then close.
      response.resume();
      response.once("end", stop);
      response.once("error", () => {});
    });
    // Refused, reset, TLS failures: the app is not ready yet, which the socket's "close" reports.
    request.on("error", (error: NodeJS.ErrnoException) => {
      if (detail === "connection closed") detail = describeNetworkError(error);
    });
    request.end();
  });
}
