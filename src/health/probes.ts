import type { HealthReport } from "./checks.js";
import type { HttpRoute } from "./route.js";

/** What the probes need from the health checks. */
export interface ReadinessSource {
  report(): HealthReport;
}

/**
 * GET /healthz: the process is up (liveness; never depends on other systems, so a database
 * outage, or a role still waiting for one at start, does not get every instance restarted).
 * GET /readyz: 200 when the required dependencies answer and the roles have started, else
 * 503, with each check's state and what readiness still waits for.
 */
export function probeRoutes(health: ReadinessSource): HttpRoute {
  return (req, res) => {
    if (req.method !== "GET" && req.method !== "HEAD") return false;
    const path = (req.url ?? "").split("?")[0];
    if (path === "/healthz") {
      res.writeHead(200, { "content-type": "application/json", "cache-control": "no-store" });
      res.end('{"status":"ok"}\n');
      return true;
    }
    if (path === "/readyz") {
      const report = health.report();
      res.writeHead(report.serving ? 200 : 503, { "content-type": "application/json", "cache-control": "no-store" });
      // Each check's state but not its error text: that stays in the logs.
      const checks = Object.fromEntries(
        Object.entries(report.checks).map(([name, c]) => [name, { ok: c.ok, checkedAt: c.checkedAt }]),
      );
      const waiting = report.waiting ? { waiting: report.waiting } : {};
      res.end(JSON.stringify({ status: report.serving ? "ready" : "not ready", checks, ...waiting }) + "\n");
      return true;
    }
    return false;
  };
}
