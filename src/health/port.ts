import http from "node:http";
import type { Logger } from "../log.js";
import type { HttpRoute } from "./route.js";

// The small HTTP server of roles without an API listener (relay, scheduler, worker; one for all
// of them in `herald dev`): /healthz and /readyz for a supervisor, and whatever routes are added
// (issue 14's /metrics). Plain HTTP/1.1: probes and scrapers speak nothing else. It listens
// before the roles wait for their dependencies, so a starting role answers "alive, not ready"
// instead of refusing connections like a dead one.

export interface HealthPortOptions {
  host: string;
  /** 0 takes any free port (see `port` on the result). */
  port: number;
  /** Tried in order; a request none of them takes gets 404. */
  routes: HttpRoute[];
  log: Logger;
}

export interface HealthPort {
  port: number;
  /** Stops listening and ends every connection. Idempotent. */
  close(): Promise<void>;
}

export async function startHealthPort(opts: HealthPortOptions): Promise<HealthPort> {
  const server = http.createServer({ requestTimeout: 10_000, headersTimeout: 10_000, keepAliveTimeout: 5_000 }, (req, res) => {
    try {
      for (const route of opts.routes) if (route(req, res)) return;
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("not found\n");
    } catch (err) {
      opts.log.error({ err }, "health port handler failed");
      if (!res.headersSent) res.writeHead(500);
      res.end();
    }
  });
  server.on("clientError", (_err, socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  server.on("error", (err) => opts.log.error({ err }, "health port error"));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : opts.port;
  let closing: Promise<void> | undefined;
  return {
    port,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        // A probe's keep-alive socket would hold close() open for its whole idle timeout.
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
