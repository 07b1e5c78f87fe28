// The smallest Node.js HTTP server: no startup work at all. It answers the same JSON
// shape as node-slow-server so that benchmarks can use it as their baseline.
//
// Env: PORT (default 3001; 0 picks a free port).

import { createHash } from "node:crypto";
import { createServer } from "node:http";

const HOST = "127.0.0.1";
const startedAt = Date.now();
const fingerprint = createHash("sha256").update("tiny-server").digest("hex").slice(0, 16);
const port = Number(process.env.PORT || 3001);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`PORT must be an integer from 0 to 65535, got ${JSON.stringify(process.env.PORT)}`);
  process.exit(2);
}
let readyAt = 0;
let requests = 0;

const server = createServer((req, res) => {
  requests++;
  const path = (req.url ?? "/").split("?")[0];
  if (req.method === "GET" && path === "/") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ pid: process.pid, fingerprint, startedAt, readyAt, requests }));
  } else if (req.method === "GET" && path === "/healthz") {
    res.writeHead(200, { "content-type": "text/plain" });
    res.end("ok");
  } else {
    res.writeHead(404, { "content-type": "text/plain" });
    res.end("not found");
  }
});

const shutdown = () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
};
process.once("SIGTERM", shutdown);
process.once("SIGINT", shutdown);

server.listen(port, HOST, () => {
  readyAt = Date.now();
  console.log(`listening on http://${HOST}:${server.address().port}`);
});
