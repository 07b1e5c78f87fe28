import { createServer, type Server } from "node:http";
import type { ListenAddress } from "./listen-address.js";

/** GET /metrics on `address`, in the Prometheus text format; everything else is 404. */
export function startMetricsServer(address: ListenAddress, render: () => string): Promise<Server> {
  const server = createServer((request, response) => {
    if (request.method === "GET" && (request.url ?? "").split("?")[0] === "/metrics") {
      response.writeHead(200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" });
      response.end(render());
      return;
    }
    response.writeHead(404, { "content-type": "text/plain" });
    response.end("not found: serve's metrics are at /metrics\n");
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(address.port, address.host, () => {
      server.off("error", reject);
      resolve(server);
    });
  });
}
