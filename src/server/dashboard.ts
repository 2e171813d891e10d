import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { HttpRoute } from "../health/route.js";

// The dashboard (web/, bundled into dist/web/ by scripts/build-web.mjs) served
// by the HTTP listener. The files are a fixed list read once at start: no
// request path ever reaches the file system, so there is nothing to traverse.

/** URL path → file in the bundle folder. Everything else under /assets/ is 404. */
const FILES: ReadonlyMap<string, { file: string; type: string }> = new Map([
  ["/", { file: "index.html", type: "text/html; charset=utf-8" }],
  ["/assets/app.js", { file: "app.js", type: "text/javascript; charset=utf-8" }],
  ["/assets/style.css", { file: "style.css", type: "text/css; charset=utf-8" }],
  ["/assets/icon.svg", { file: "icon.svg", type: "image/svg+xml" }],
]);

// The page loads only its own script, style and icon and talks only to this
// server; nothing inline, nothing from another origin, and no framing.
const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

const NOT_BUILT = "The dashboard is not built: run `npm run build` (it writes dist/web/), then restart the server.\n";

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

export interface DashboardOptions {
  /**
   * The built bundle. @defaultValue dist/web/, found from this module's own
   * place once compiled (dist/src/server/dashboard.js)
   */
  dir?: string;
}

/** `GET /` (the page) and `GET /assets/*` (its bundle); 503 on those paths while the bundle is not built. */
export function dashboardRoute(opts: DashboardOptions = {}): HttpRoute {
  const dir = opts.dir ?? fileURLToPath(new URL("../../web/", import.meta.url));
  const assets = load(dir);
  return (req, res) => {
    const path = (req.url ?? "").split("?")[0] ?? "";
    if (path !== "/" && !path.startsWith("/assets/")) return false;
    // HEAD gets the headers a GET would, and no body.
    const end = (body: string | Buffer) => (req.method === "HEAD" ? res.end() : res.end(body));
    const text = (status: number, body: string, headers: Record<string, string> = {}) => {
      res.writeHead(status, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store", ...headers });
      end(body);
    };
    if (req.method !== "GET" && req.method !== "HEAD") {
      text(405, "method not allowed\n", { allow: "GET, HEAD" });
      return true;
    }
    if (!FILES.has(path)) {
      text(404, "not found\n");
      return true;
    }
    const asset = assets?.get(path);
    if (!asset) {
      text(503, NOT_BUILT);
      return true;
    }
    const headers = {
      "content-type": asset.type,
      // File names carry no content hash, so browsers revalidate each time; the ETag makes that a 304.
      "cache-control": "no-cache",
      etag: asset.etag,
      "content-security-policy": CSP,
      "x-content-type-options": "nosniff",
      "referrer-policy": "no-referrer",
    };
    if (req.headers["if-none-match"] === asset.etag) {
      res.writeHead(304, headers);
      res.end();
      return true;
    }
    res.writeHead(200, { ...headers, "content-length": String(asset.body.length) });
    end(asset.body);
    return true;
  };
}

/** Every file of the bundle, or undefined when any is missing: a half-built page is not served. */
function load(dir: string): Map<string, Asset> | undefined {
  const assets = new Map<string, Asset>();
  for (const [path, { file, type }] of FILES) {
    let body: Buffer;
    try {
      body = readFileSync(join(dir, file));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw err;
    }
    const etag = `"${createHash("sha256").update(body).digest("base64url").slice(0, 22)}"`;
    assets.set(path, { body, type, etag });
  }
  return assets;
}
