import { pino } from "pino";
import { describe, expect, it, onTestFinished } from "vitest";
import { createHealthChecks } from "../../src/health/checks.js";
import { startHealthPort } from "../../src/health/port.js";
import { probeRoutes } from "../../src/health/probes.js";
import type { HttpRoute } from "../../src/health/route.js";

// The health port of relay, scheduler and worker processes: the probes over the process's
// health checks, plus any route added (issue 14's /metrics), on a real socket.

async function serve(routes: HttpRoute[]) {
  const port = await startHealthPort({ host: "127.0.0.1", port: 0, routes, log: pino({ level: "silent" }) });
  onTestFinished(() => port.close());
  return { port, url: (path: string) => `http://127.0.0.1:${port.port}${path}` };
}

describe("health port", () => {
  it("/healthz is 200 while /readyz is 503 and says what it waits for; /readyz is 200 once released and checked", async () => {
    let dbUp = false;
    const health = createHealthChecks({
      checks: [
        {
          name: "postgres",
          check: async () => {
            if (!dbUp) throw new Error("ECONNREFUSED");
          },
        },
      ],
      intervalMs: 60_000,
    });
    onTestFinished(() => health.close());
    const starting = health.hold("starting");
    const { url } = await serve([probeRoutes(health)]);

    expect((await fetch(url("/healthz"))).status).toBe(200);
    const before = await fetch(url("/readyz"));
    expect(before.status).toBe(503);
    expect(await before.json()).toEqual({ status: "not ready", checks: { postgres: { ok: false } }, waiting: ["starting"] });

    await health.start();
    expect((await fetch(url("/readyz"))).status).toBe(503); // the check fails and the hold is on
    dbUp = true;
    await health.refresh();
    expect((await fetch(url("/readyz"))).status).toBe(503); // checks pass; still starting
    starting();
    const after = await fetch(url("/readyz"));
    expect(after.status).toBe(200);
    expect(await after.json()).toMatchObject({ status: "ready", checks: { postgres: { ok: true } } });

    health.setShuttingDown();
    expect((await fetch(url("/readyz"))).status).toBe(503);
    expect((await fetch(url("/healthz"))).status).toBe(200);
  });

  it("serves routes added besides the probes, and 404 for anything else", async () => {
    const health = createHealthChecks({ checks: [] });
    const metrics: HttpRoute = (req, res) => {
      if (req.url !== "/metrics") return false;
      res.writeHead(200, { "content-type": "text/plain" });
      res.end("herald_up 1\n");
      return true;
    };
    const { url } = await serve([probeRoutes(health), metrics]);
    const res = await fetch(url("/metrics"));
    expect([res.status, await res.text()]).toEqual([200, "herald_up 1\n"]);
    expect((await fetch(url("/nope"))).status).toBe(404);
  });

  it("close() is idempotent and ends keep-alive connections", async () => {
    const { port, url } = await serve([probeRoutes(createHealthChecks({ checks: [] }))]);
    expect((await fetch(url("/healthz"))).status).toBe(200); // leaves a keep-alive socket open
    await Promise.all([port.close(), port.close()]);
    await expect(fetch(url("/healthz"))).rejects.toThrow();
  });
});
