import type { IncomingMessage, ServerResponse } from "node:http";

/**
 * Runs Node's own HTTP server code through a few requests right before the dump, on a
 * throwaway server fed from memory, when the app has loaded node:http. A snapshot is taken
 * when the app is ready, before its first request: in every restored copy that first request
 * was the first run of Node's HTTP glue (IncomingMessage, ServerResponse, the headers, the
 * Date header), compiled lazily over pages the copy touches for the first time. Measured with
 * serve --spare (tiny server, 4 runs of 6 first answers, alternating with a build without
 * it): medians 10.5-11.6 ms against 14.0-14.5 in three runs, 14.1 both in the fourth; an app
 * that requested itself before the dump gained no more.
 *
 * The app's servers, sockets and handlers take no part: no fd is opened, no port is bound. A
 * request that something watching HTTP servers would see (an APM agent: a diagnostics_channel
 * subscriber, a patched Server.prototype.emit) is not made. Never fails a checkpoint: any
 * error, or no answer within WARM_UP_TIMEOUT_MS, ends it.
 */
export async function warmUpHttpServer(): Promise<"warmed" | "not-loaded" | "watched" | "failed"> {
  if (!isHttpServerLoaded()) return "not-loaded";
  const http = require("node:http") as typeof import("node:http");
  const { EventEmitter } = require("node:events") as typeof import("node:events");
  const channels = require("node:diagnostics_channel") as typeof import("node:diagnostics_channel");
  if (
    http.Server.prototype.emit !== EventEmitter.prototype.emit ||
    WATCHED_CHANNELS.some((name) => channels.hasSubscribers(name))
  )
    return "watched";
  try {
    for (const request of WARM_UP_REQUESTS) await answerFromMemory(http, request);
    return "warmed";
  } catch {
    return "failed";
  }
}

const WARM_UP_TIMEOUT_MS = 200;
const WATCHED_CHANNELS = ["http.server.request.start", "http.server.response.finish"];
const WARM_UP_PATH = "/.well-known/warmstart-warm-up";
// Keep-alive (HTTP/1.1's default) and close: the two ways a first client connects.
const WARM_UP_REQUESTS = [
  `GET ${WARM_UP_PATH} HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n`,
  `GET ${WARM_UP_PATH} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`,
];

/** Node lists the built-in modules it has loaded; an app without node:http is not warmed
 * (loading it would only grow the snapshot). */
function isHttpServerLoaded(): boolean {
  const loaded = (process as unknown as { moduleLoadList?: readonly string[] }).moduleLoadList;
  return loaded?.includes("NativeModule _http_server") ?? false;
}

/** One request through a throwaway server on an in-memory connection; resolves once the
 * response is finished (or the time is up). */
function answerFromMemory(http: typeof import("node:http"), request: string): Promise<void> {
  const { Duplex } = require("node:stream") as typeof import("node:stream");
  return new Promise<void>((resolve, reject) => {
    let written = "";
    let isFinished = false;
    const connection = new Duplex({
      read() {},
      write(chunk: Buffer, _encoding, callback) {
        written += chunk.toString("latin1");
        callback();
      },
    });
    // The server handles its connection's errors; should a Node version not, an unhandled
    // "error" event would end the app at its checkpoint.
    connection.on("error", () => {});
    // What the server asks of a net.Socket, as no-ops.
    Object.assign(connection, {
      setTimeout: () => connection,
      setNoDelay: () => connection,
      setKeepAlive: () => connection,
      remoteAddress: "127.0.0.1",
    });
    const finish = () => {
      if (isFinished) return;
      isFinished = true;
      clearTimeout(timer);
      connection.destroy();
      if (written.startsWith("HTTP/1.1 200")) resolve();
      else reject(new Error("no answer"));
    };
    const timer = setTimeout(finish, WARM_UP_TIMEOUT_MS);
    const server = new http.Server((_req: IncomingMessage, res: ServerResponse) => {
      res.on("finish", finish);
      res.setHeader("content-type", "application/json");
      res.writeHead(200);
      res.end(JSON.stringify({ warmUp: true }));
    });
    server.emit("connection", connection);
    connection.push(request);
  });
}
