import http from "node:http";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dashboardRoute } from "../../src/server/dashboard.js";
import type { HttpRoute } from "../../src/health/route.js";

// The dashboard route behind a real HTTP server, with raw request paths (a
// fetch would normalise "/assets/../x" before sending it).

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

async function serve(route: HttpRoute) {
  const server = http.createServer((req, res) => {
    if (route(req, res)) return;
    // What the listener does next: hand it to the Connect adapter.
    res.writeHead(418);
    res.end("passed on");
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as { port: number };
  const request = (path: string, opts: { method?: string; headers?: Record<string, string> } = {}) =>
    new Promise<Reply>((resolve, reject) => {
      const req = http.request({ host: "127.0.0.1", port, path, method: opts.method ?? "GET", headers: opts.headers }, (res) => {
        let body = "";
        res.setEncoding("utf8").on("data", (c: string) => (body += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      });
      req.on("error", reject);
      req.end();
    });
  return { request, close: () => new Promise((r) => server.close(r)) };
}

const dirs: string[] = [];
/** <tmp>/web/ holding `files`, beside <tmp>/secret.txt, which must never be reachable. */
function bundle(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), "herald-web-"));
  dirs.push(root);
  writeFileSync(join(root, "secret.txt"), "secret");
  const dir = join(root, "web");
  mkdirSync(dir);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const BUILT = {
  "index.html": "<!doctype html><title>Herald</title>",
  "app.js": "console.log('app')",
  "style.css": "body{}",
  "icon.svg": "<svg/>",
};

describe("dashboard route", () => {
  let site: Awaited<ReturnType<typeof serve>>;
  beforeAll(async () => {
    site = await serve(dashboardRoute({ dir: bundle(BUILT) }));
  });
  afterAll(() => site.close());

  it("serves the page and its assets with their content types, revalidation and a strict CSP", async () => {
    const page = await site.request("/");
    expect(page).toMatchObject({ status: 200, body: BUILT["index.html"] });
    expect(page.headers["content-type"]).toBe("text/html; charset=utf-8");
    expect(page.headers["cache-control"]).toBe("no-cache");
    expect(page.headers["x-content-type-options"]).toBe("nosniff");
    const csp = page.headers["content-security-policy"] ?? "";
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("connect-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toMatch(/unsafe|\*|https?:/);

    const types = await Promise.all(
      ["/assets/app.js", "/assets/style.css", "/assets/icon.svg"].map(async (p) => [p, (await site.request(p)).headers["content-type"]]),
    );
    expect(types).toEqual([
      ["/assets/app.js", "text/javascript; charset=utf-8"],
      ["/assets/style.css", "text/css; charset=utf-8"],
      ["/assets/icon.svg", "image/svg+xml"],
    ]);
    expect((await site.request("/assets/app.js")).body).toBe(BUILT["app.js"]);
    expect((await site.request("/?key=1")).status).toBe(200);
  });

  it("answers a matching If-None-Match with 304, and HEAD without a body", async () => {
    const first = await site.request("/assets/app.js");
    const again = await site.request("/assets/app.js", { headers: { "if-none-match": String(first.headers.etag) } });
    expect(again).toMatchObject({ status: 304, body: "" });
    const head = await site.request("/", { method: "HEAD" });
    expect(head).toMatchObject({ status: 200, body: "" });
    expect(head.headers["content-length"]).toBe(String(BUILT["index.html"].length));
  });

  it("404s anything else under /assets/, traversal attempts included, and leaves other paths alone", async () => {
    for (const path of [
      "/assets/",
      "/assets/index.html",
      "/assets/app.js.map",
      "/assets/../secret.txt",
      "/assets/..%2fsecret.txt",
      "/assets/%2e%2e/%2e%2e/etc/passwd",
      "/assets//app.js",
    ]) {
      const reply = await site.request(path);
      expect([path, reply.status]).toEqual([path, 404]);
      expect(reply.body).not.toContain("secret");
    }
    expect((await site.request("/index.html")).status).toBe(418);
    expect((await site.request("/healthz")).status).toBe(418);
    expect((await site.request("/herald.v1.NotificationService/Create", { method: "POST" })).status).toBe(418);
    expect((await site.request("/", { method: "POST" })).status).toBe(405);
  });

  it("answers 503 telling to build when the bundle is missing or half there", async () => {
    for (const dir of [bundle({}), bundle({ "index.html": BUILT["index.html"] })]) {
      const missing = await serve(dashboardRoute({ dir }));
      try {
        for (const path of ["/", "/assets/app.js"]) {
          const reply = await missing.request(path);
          expect(reply.status).toBe(503);
          expect(reply.body).toContain("npm run build");
        }
        expect((await missing.request("/assets/nope.js")).status).toBe(404);
      } finally {
        await missing.close();
      }
    }
  });
});
