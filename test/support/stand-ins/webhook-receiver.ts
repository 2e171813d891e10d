import { Webhook } from "standardwebhooks";
import { startHttpStandIn, type HttpAnswer, type HttpStandIn, type RecordedRequest } from "./behaviour.js";

// A webhook receiver as a careful customer writes one: it verifies every request with the
// standardwebhooks library (signature, and a timestamp within its 5-minute tolerance), answers
// 401 to one that does not verify and 204 to one that does. Any path is accepted.

export interface WebhookReceiverOptions {
  /** The tenant's signing secret, whsec_<base64>. */
  secret: string;
}

/** A request that verified. */
export interface WebhookDelivery {
  /** webhook-id: the notification's idempotency key. */
  id: string;
  /** webhook-timestamp, seconds. */
  timestamp: number;
  /** The verified JSON body. */
  payload: unknown;
  request: RecordedRequest;
}

export interface WebhookReceiver extends HttpStandIn {
  /** A URL to give as the recipient's webhook_url (any path under `url` works too). */
  hookUrl: string;
  /** Requests that verified, in order, repeats included. */
  deliveries: WebhookDelivery[];
  /** Requests that did not, with the library's reason. */
  rejected: Array<{ reason: string; request: RecordedRequest }>;
}

/** The library's verify, for tests that check a signature themselves; throws when it does not verify. */
export function verifyWebhook(secret: string, rawBody: string, headers: Record<string, string>): unknown {
  return new Webhook(secret).verify(rawBody, headers);
}

export async function startWebhookReceiver(opts: WebhookReceiverOptions): Promise<WebhookReceiver> {
  const deliveries: WebhookDelivery[] = [];
  const rejected: WebhookReceiver["rejected"] = [];

  function handle(req: RecordedRequest): HttpAnswer {
    if (req.method !== "POST") return { status: 405, body: "method not allowed" };
    let payload: unknown;
    try {
      payload = verifyWebhook(opts.secret, req.rawBody, req.headers);
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      rejected.push({ reason, request: req });
      return { status: 401, body: `invalid webhook: ${reason}` };
    }
    deliveries.push({ id: req.headers["webhook-id"] ?? "", timestamp: Number(req.headers["webhook-timestamp"]), payload, request: req });
    return { status: 204 };
  }

  const server = await startHttpStandIn(handle);
  return Object.assign(server, { hookUrl: `${server.url}/hooks/herald`, deliveries, rejected });
}
