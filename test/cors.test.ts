import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KEY_A, startTestHerald, type TestHerald } from "./support/herald.js";

// Browsers call the HTTP listener cross-origin; only configured origins may.

let herald: TestHerald;
const ORIGIN = "https://app.example.com";

beforeAll(async () => {
  herald = await startTestHerald({ roles: ["server"], env: { HERALD_CORS_ORIGINS: ORIGIN } });
});
afterAll(async () => {
  await herald?.stop();
});

const preflight = (origin: string) =>
  fetch(`${herald.httpUrl}/herald.v1.NotificationService/Create`, {
    method: "OPTIONS",
    headers: {
      origin,
      "access-control-request-method": "POST",
      "access-control-request-headers": "authorization,content-type,connect-protocol-version",
    },
  });

describe("CORS", () => {
  it("answers a preflight from a configured origin, allowing the Connect and auth headers", async () => {
    const res = await preflight(ORIGIN);
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-origin")).toBe(ORIGIN);
    const allowed = (res.headers.get("access-control-allow-headers") ?? "").toLowerCase();
    for (const h of ["authorization", "content-type", "connect-protocol-version"]) expect(allowed).toContain(h);
  });

  it("gives no allow-origin to other origins", async () => {
    const res = await preflight("https://evil.example.net");
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("a cross-origin Connect call carries the allow-origin header", async () => {
    const res = await fetch(`${herald.httpUrl}/herald.v1.NotificationService/Get`, {
      method: "POST",
      headers: { origin: ORIGIN, "content-type": "application/json", authorization: `Bearer ${KEY_A}` },
      body: JSON.stringify({ id: "0190b6a4-0000-7000-8000-000000000000" }),
    });
    expect(res.status).toBe(404);
    expect(res.headers.get("access-control-allow-origin")).toBe(ORIGIN);
    expect(await res.json()).toMatchObject({ code: "not_found" });
  });
});
