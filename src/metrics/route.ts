import type { Registry } from "prom-client";
import type { Logger } from "../log.js";
import type { HttpRoute } from "../health/route.js";

/**
 * GET /metrics in the Prometheus text format. Gauges that read PostgreSQL or Kafka are collected
 * during the scrape (each bounds its own wait), so the answer may take a moment; a collector
 * that fails is logged and answered 500, and the scraper's `up` and its own alert say so.
 */
export function metricsRoute(registry: Registry, log: Logger): HttpRoute {
  return (req, res) => {
    if (req.method !== "GET" && req.method !== "HEAD") return false;
    if ((req.url ?? "").split("?")[0] !== "/metrics") return false;
    registry.metrics().then(
      (text) => {
        res.writeHead(200, { "content-type": registry.contentType, "cache-control": "no-store" });
        if (req.method === "HEAD") res.end();
        else res.end(text);
      },
      (err: unknown) => {
        log.error({ err }, "metrics collection failed");
        if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" });
        res.end("metrics collection failed\n");
      },
    );
    return true;
  };
}
