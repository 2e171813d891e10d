import type { KeyObject } from "node:crypto";
import { Status } from "../../gen/herald/v1/notification_pb.js";
import { systemClock, type Clock } from "../clock.js";
import type { HttpRoute, NodeRequest, NodeResponse } from "../health/route.js";
import type { Logger } from "../log.js";
import type { ReceiptMetrics, ReceiptOutcome } from "../metrics/receipts.js";
import type { Receipt, ReceiptStore } from "../store/receipts.js";
import { BodyTooLargeError, readBody } from "./body.js";
import { sendgridEvent, verifySendgridSignature } from "./sendgrid.js";
import { twilioCallback, verifyTwilioSignature } from "./twilio.js";

// POST /receipts/twilio and POST /receipts/sendgrid on the API's HTTP listener: provider
// callbacks, authenticated by the provider's signature before anything is read from them.
// A refused callback (unsigned, wrongly signed, stale) is answered 403 and logged at warn;
// nothing is changed. One that names nothing of ours is answered 200 (the provider would only
// retry it) and counted as unmatched. A database failure is answered 503, so the provider
// retries later: every receipt is idempotent, a repeat changes nothing.

export interface ReceiptRouteDeps {
  store: ReceiptStore;
  /** The SMS provider's account: its auth token signs the callbacks. Undefined: not served. */
  twilio?: { accountSid: string; authToken: string; callbackUrl: string };
  /** SendGrid's verification key. Undefined: not served. */
  sendgrid?: { publicKey: KeyObject; maxAgeMs: number };
  metrics: ReceiptMetrics;
  log: Logger;
  /** @defaultValue systemClock */
  clock?: Clock;
  /** @defaultValue 1 MiB */
  maxBodyBytes?: number;
}

export function receiptRoutes(deps: ReceiptRouteDeps): HttpRoute {
  const clock = deps.clock ?? systemClock;
  const maxBodyBytes = deps.maxBodyBytes ?? 1024 * 1024;
  const log = deps.log.child({ component: "receipts" });

  const answer = (res: NodeResponse, status: number, text = "") => {
    if (res.headersSent) return;
    res.writeHead(status, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" });
    res.end(text);
  };

  /** Applies one receipt and counts what came of it; rejects when the database failed. */
  async function apply(receipt: Receipt): Promise<void> {
    const result = await deps.store.apply(receipt);
    const count = (o: ReceiptOutcome) => deps.metrics(receipt.provider, o);
    if (result.kind === "unmatched") {
      count("unmatched");
      log.info({ provider: receipt.provider, notificationId: receipt.notificationId }, "receipt for no message of ours; nothing changed");
      return;
    }
    if (result.suppressed) count("suppressed");
    if (result.kind === "applied") count(result.status === Status.DELIVERED ? "delivered" : "failed");
    else count(result.kind);
  }

  async function twilio(req: NodeRequest, res: NodeResponse, query: string) {
    const t = deps.twilio!;
    const params = new URLSearchParams((await readBody(req, maxBodyBytes)).toString("utf8"));
    const signature = req.headers["x-twilio-signature"];
    // Twilio signs the URL it called: our StatusCallback, query included.
    if (!verifyTwilioSignature(t.authToken, t.callbackUrl + query, params, typeof signature === "string" ? signature : undefined)) {
      deps.metrics("twilio", "refused");
      log.warn({ signed: typeof signature === "string", remote: req.socket?.remoteAddress }, "twilio status callback refused: bad or missing X-Twilio-Signature");
      return answer(res, 403, "invalid signature\n");
    }
    const parsed = twilioCallback(params, { accountSid: t.accountSid, notificationId: new URLSearchParams(query).get("n"), at: new Date(clock.now()) });
    if (parsed.kind !== "receipt") {
      deps.metrics("twilio", parsed.kind);
      return answer(res, 200);
    }
    await apply(parsed.receipt);
    answer(res, 200);
  }

  async function sendgrid(req: NodeRequest, res: NodeResponse) {
    const s = deps.sendgrid!;
    const body = await readBody(req, maxBodyBytes);
    const signature = req.headers["x-twilio-email-event-webhook-signature"];
    const timestamp = req.headers["x-twilio-email-event-webhook-timestamp"];
    const refuse = (why: string) => {
      deps.metrics("sendgrid", "refused");
      log.warn({ why, remote: req.socket?.remoteAddress }, "sendgrid event webhook refused");
      answer(res, 403, `${why}\n`);
    };
    if (typeof signature !== "string" || typeof timestamp !== "string" || !/^\d{1,12}$/.test(timestamp)) return refuse("missing signature or timestamp");
    if (!verifySendgridSignature(s.publicKey, timestamp, body, signature)) return refuse("invalid signature");
    // Signed, but a replay of an old batch (or a clock far off) is refused all the same.
    if (Math.abs(clock.now() - Number(timestamp) * 1000) > s.maxAgeMs) return refuse("stale timestamp");
    let events: unknown;
    try {
      events = JSON.parse(body.toString("utf8"));
    } catch {
      events = undefined;
    }
    if (!Array.isArray(events)) {
      deps.metrics("sendgrid", "refused");
      return answer(res, 400, "expected a JSON array of events\n");
    }
    // Each event on its own: one that names nothing of ours, or fails, does not lose the others.
    // A database failure still answers 503 at the end, so SendGrid posts the batch again.
    const at = new Date(clock.now());
    let failed = 0;
    for (const item of events) {
      const parsed = sendgridEvent(item, at);
      if (parsed.kind !== "receipt") {
        deps.metrics("sendgrid", parsed.kind);
        continue;
      }
      try {
        await apply(parsed.receipt);
      } catch (err) {
        failed++;
        log.error({ err, notificationId: parsed.receipt.notificationId }, "sendgrid event not stored");
      }
    }
    answer(res, failed > 0 ? 503 : 200, failed > 0 ? "some events were not stored; post them again\n" : "");
  }

  return (req, res) => {
    const [path = "", rest] = (req.url ?? "").split("?", 2);
    const query = rest === undefined ? "" : `?${rest}`;
    const handler =
      path === "/receipts/twilio" && deps.twilio ? (r: NodeRequest, s: NodeResponse) => twilio(r, s, query)
      : path === "/receipts/sendgrid" && deps.sendgrid ? sendgrid
      : undefined;
    if (!handler) return false;
    if (req.method !== "POST") {
      answer(res, 405, "POST only\n");
      return true;
    }
    handler(req, res).catch((err: unknown) => {
      if (err instanceof BodyTooLargeError) return answer(res, 413, "request body too large\n");
      log.error({ err, path }, "receipt not stored");
      answer(res, 503, "not stored; try again\n");
    });
    return true;
  };
}
