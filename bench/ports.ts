// Ports on 127.0.0.1 only. A restored app listens on the port it had when it was dumped, so
// each workload keeps one port for all its modes, and every run waits until the previous
// one has released it.
import { createServer } from "node:net";

const HOST = "127.0.0.1";

/** A port the kernel just handed out, so nothing else on the machine was using it. */
export function findFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, HOST, () => {
      const address = server.address();
      server.close(() => {
        if (typeof address === "object" && address !== null) resolve(address.port);
        else reject(new Error(`no port from ${String(address)}`));
      });
    });
  });
}

/** Resolves once a listen on the port succeeds (Node sets SO_REUSEADDR, as the apps do). */
export async function waitForPortFree(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await canListen(port))) {
    if (performance.now() > deadline) throw new Error(`port ${port} still in use after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, HOST, () => server.close(() => resolve(true)));
  });
}
