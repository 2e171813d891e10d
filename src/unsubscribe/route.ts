import type { UnsubscribeClaims, UnsubscribeTokens } from "../domain/unsubscribe-token.js";
import type { HttpRoute, NodeRequest, NodeResponse } from "../health/route.js";
import type { Logger } from "../log.js";
import type { UnsubscribeMetrics } from "../metrics/unsubscribes.js";
import { BodyTooLargeError, readBody } from "../receipts/body.js";
import type { UnsubscribeRequest, UnsubscribeResult } from "../store/unsubscribes.js";
import { confirmPage, donePage, failedPage, invalidPage, requiredPage } from "./page.js";

// /unsubscribe/<token> on the API's HTTP listener (README "One-click unsubscribe"):
//  - POST (RFC 8058 one-click, from a mailbox provider's button or the page's form) records the
//    opt-out and answers 200 at once; a repeat is 200 too. The signed token is the authority:
//    no cookie, no session, no key. The body is read (bounded) but its content is not required:
//    RFC 8058 lets the provider send `List-Unsubscribe=One-Click` as multipart/form-data or
//    urlencoded, and a form field proves nothing the token does not.
//  - GET shows a page with a form that POSTs: mail scanners and link previews GET every link of a
//    message, so a GET changes nothing.
// A token that is not ours (malformed, altered, another key's) is 403 with nothing changed, as is
// one for a category the tenant has made required. A database failure is 503: a mailbox provider
// posts again later, and the POST is idempotent. Nothing here throws past the route.

export interface UnsubscribeRouteDeps {
  tokens: UnsubscribeTokens;
  record(req: UnsubscribeRequest): Promise<UnsubscribeResult>;
  metrics: UnsubscribeMetrics;
  log: Logger;
  /** A one-click body is 26 bytes; a form's a little more. @defaultValue 4096 */
  maxBodyBytes?: number;
}

const PREFIX = "/unsubscribe/";

export function unsubscribeRoute(deps: UnsubscribeRouteDeps): HttpRoute {
  const maxBodyBytes = deps.maxBodyBytes ?? 4096;
  const log = deps.log.child({ component: "unsubscribe" });

  const answer = (res: NodeResponse, status: number, html: string, extra: Record<string, string> = {}) => {
    if (res.headersSent) return;
    res.writeHead(status, {
      "content-type": "text/html; charset=utf-8",
      "cache-control": "no-store",
      // Nothing to load, nothing to run, and the token never leaves in a Referer.
      "content-security-policy": "default-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
      "referrer-policy": "no-referrer",
      "x-content-type-options": "nosniff",
      "x-robots-tag": "noindex",
      ...extra,
    });
    res.end(html);
  };

  async function unsubscribe(req: NodeRequest, res: NodeResponse, claims: UnsubscribeClaims | undefined): Promise<void> {
    // Read (and bound) the body before answering, so the connection is left clean for the next request.
    await readBody(req, maxBodyBytes);
    if (!claims) {
      deps.metrics("invalid");
      log.warn({ remote: req.socket?.remoteAddress }, "unsubscribe refused: not a link of ours");
      return answer(res, 403, invalidPage());
    }
    const { tenant, userId, category, notificationId } = claims;
    const result = await deps.record({ tenant, userId, category, notificationId });
    deps.metrics(result.kind);
    if (result.kind === "required") {
      log.warn({ tenant, category, notificationId }, "unsubscribe refused: the category is required");
      return answer(res, 403, requiredPage(category));
    }
    if (result.kind === "recorded") log.info({ tenant, category, notificationId }, "recipient unsubscribed by one-click link");
    answer(res, 200, donePage(category));
  }

  return (req, res) => {
    const path = (req.url ?? "").split("?", 1)[0] ?? "";
    if (!path.startsWith(PREFIX)) return false;
    const token = path.slice(PREFIX.length);
    // open() bounds the token's length and checks its alphabet before any crypto.
    const claims = deps.tokens.open(token);
    if (req.method === "GET" || req.method === "HEAD") {
      if (!claims) answer(res, 403, invalidPage());
      // Relative: the page is at .../unsubscribe/<token>, whatever prefix a proxy puts in front.
      else answer(res, 200, confirmPage(claims.category, token));
      return true;
    }
    if (req.method !== "POST") {
      answer(res, 405, invalidPage(), { allow: "GET, HEAD, POST" });
      return true;
    }
    unsubscribe(req, res, claims).catch((err: unknown) => {
      if (err instanceof BodyTooLargeError) {
        deps.metrics("invalid");
        return answer(res, 413, invalidPage());
      }
      log.error({ err, tenant: claims?.tenant, notificationId: claims?.notificationId }, "unsubscribe not stored");
      answer(res, 503, failedPage(), { "retry-after": "60" });
    });
    return true;
  };
}
