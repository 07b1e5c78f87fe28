import type { IncomingMessage, ServerResponse } from "node:http";

/**
 * Runs Node's own HTTP server code through a few requests right before the dump, on a
 * throwaway server whose connections are the two ends of a Unix socketpair, when the app has
 * loaded node:http. A snapshot is taken when the app is ready, before its first request: in
 * every restored copy that first request was the first run of Node's HTTP glue
 * (IncomingMessage, ServerResponse, the headers, the Date header), compiled lazily over pages
 * the copy touches for the first time. Measured with serve --spare (tiny server, 4 runs of 6
 * first answers, alternating with a build without it): medians 10.5-11.6 ms against 14.0-14.5
 * in three runs, 14.1 both in the fourth. A real socket, not the stream in memory it first
 * was: a copy's first request still ran, for the first time, the native parser's path
 * (onParserExecute), the socket's writev, its timeouts and Node's timer list (node
 * --log-function-events); over the socketpair, medians 14.5 and 13.5 ms against 16.1 and
 * 14.6 (two runs of 30 and 24 alternating first answers).
 *
 * The app's servers, sockets and handlers take no part: no port is bound, and both ends are
 * closed before the dump. A request that something watching HTTP servers would see (an APM
 * agent: a diagnostics_channel subscriber, a patched Server.prototype.emit) is not made.
 * Never fails a checkpoint: any error, or no answer within WARM_UP_TIMEOUT_MS, ends it.
 */
export async function warmUpHttpServer(
  socketPair: () => [number, number],
): Promise<"warmed" | "not-loaded" | "watched" | "failed"> {
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
    for (const request of WARM_UP_REQUESTS) await answerOverSocketPair(http, socketPair, request);
    // Node's timer list: a copy's first timer (its Date header's, a socket's timeout) was
    // its first run.
    await new Promise((resolve) => setTimeout(resolve, 1));
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

/** One request through a throwaway server over a socketpair; resolves once the response has
 * reached the client's end and both ends are closed (or the time is up). */
function answerOverSocketPair(
  http: typeof import("node:http"),
  socketPair: () => [number, number],
  request: string,
): Promise<void> {
  const { Socket } = require("node:net") as typeof import("node:net");
  const [serverFd, clientFd] = socketPair();
  return new Promise<void>((resolve, reject) => {
    const serverEnd = new Socket({ fd: serverFd, readable: true, writable: true });
    const clientEnd = new Socket({ fd: clientFd, readable: true, writable: true });
    let answer = "";
    let isFinished = false;
    const finish = () => {
      if (isFinished) return;
      isFinished = true;
      clearTimeout(timer);
      let open = 2;
      const closed = () => {
        if (--open > 0) return;
        if (answer.startsWith("HTTP/1.1 200") && answer.endsWith(LAST_CHUNK)) resolve();
        else reject(new Error("no answer"));
      };
      for (const end of [serverEnd, clientEnd]) {
        // The server may have closed its end already (Connection: close).
        if (end.closed) closed();
        else end.once("close", closed).destroy();
      }
    };
    // The server handles its connection's errors; should a Node version not, an unhandled
    // "error" event would end the app at its checkpoint.
    for (const end of [serverEnd, clientEnd]) end.on("error", finish);
    clientEnd.on("data", (chunk: Buffer) => {
      answer += chunk.toString("latin1");
      if (answer.endsWith(LAST_CHUNK)) finish();
    });
    clientEnd.on("end", finish);
    const timer = setTimeout(finish, WARM_UP_TIMEOUT_MS);
    const server = new http.Server((_req: IncomingMessage, res: ServerResponse) => {
      res.setHeader("content-type", "application/json");
      res.writeHead(200);
      res.end(BODY);
    });
    server.emit("connection", serverEnd);
    clientEnd.write(request);
  });
}

const BODY = JSON.stringify({ warmUp: true });
/** The headers go first (writeHead), so the body is chunked: this ends the response. */
const LAST_CHUNK = "\r\n0\r\n\r\n";
