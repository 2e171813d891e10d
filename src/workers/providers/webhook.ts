import { Webhook } from "standardwebhooks";
import type { WebhookProviderConfig } from "../../config-delivery.js";
import { createHttpProvider } from "./http-provider.js";
import { PermanentError } from "../../errors.js";
import { type Provider, type RenderedMessage } from "./provider.js";
import { systemClock, type Clock } from "../../clock.js";
import { createEgressPolicy, describeRefusal, type EgressPolicy } from "../../domain/egress.js";
import { createEgressFetch, EgressRefusedError } from "./egress-fetch.js";

// Signed HTTP POSTs to the recipient's URL, per Standard Webhooks
// (https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md):
// webhook-id (the idempotency key, so a receiver drops a retry it has seen), webhook-timestamp in
// seconds, webhook-signature "v1,<base64 HMAC-SHA256 of id.timestamp.body>" with the tenant's
// whsec_ secret. The library's own sign() computes it, so receivers using its verify() agree with us.

export type WebhookConfig = Extract<WebhookProviderConfig, { kind: "http" }>;

export interface WebhookOptions {
  /** The signed timestamp and Retry-After dates. @defaultValue systemClock */
  clock?: Clock;
  /** Where webhooks may go (HERALD_WEBHOOK_ALLOW_CIDRS). @defaultValue public addresses only */
  egress?: EgressPolicy;
}

/** The JSON body every receiver gets. */
export interface WebhookPayload {
  type: "notification.delivery";
  /** ISO 8601, the same instant as webhook-timestamp. */
  timestamp: string;
  data: {
    notification_id: string;
    subject: string;
    text: string;
    data: Record<string, string>;
    labels: Record<string, string>;
  };
}

export function webhookPayload(message: RenderedMessage, at: Date): WebhookPayload {
  return {
    type: "notification.delivery",
    timestamp: at.toISOString(),
    data: { notification_id: message.notificationId, subject: message.subject, text: message.text, data: message.data, labels: message.labels },
  };
}

function targetUrl(raw: string, egress: EgressPolicy): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new PermanentError("webhook: the recipient's webhook URL is not a valid URL");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new PermanentError(`webhook: the recipient's webhook URL is not http(s) (${url.protocol})`);
  // An IP literal is never looked up, so the connect-time check would not see it: judged here.
  const verdict = egress.checkHost(url.hostname);
  if (verdict && !verdict.allowed) {
    throw new EgressRefusedError(`webhook: ${describeRefusal(verdict)}; webhooks may reach only public addresses`);
  }
  return url.href;
}

export function createWebhookProvider(config: WebhookConfig, opts: WebhookOptions = {}): Provider {
  const clock = opts.clock ?? systemClock;
  const egress = opts.egress ?? createEgressPolicy();
  const guarded = createEgressFetch(egress);
  // Decoding a secret is not free; one signer per tenant, made on first use.
  const signers = new Map<string, Webhook>();
  const signer = (tenant: string): Webhook => {
    let s = signers.get(tenant);
    if (s) return s;
    const secret = config.secrets.get(tenant);
    if (!secret) throw new PermanentError(`webhook: no webhook signing secret for tenant "${tenant}"`);
    try {
      s = new Webhook(secret);
    } catch {
      throw new PermanentError(`webhook: the webhook signing secret for tenant "${tenant}" is not valid base64 after whsec_`);
    }
    signers.set(tenant, s);
    return s;
  };

  return createHttpProvider({
    name: "webhook",
    timeoutMs: config.timeoutMs,
    // With and without the whsec_ prefix: the key proper is the base64 part.
    secrets: [...config.secrets.values()].flatMap((s) => [s, s.replace(/^whsec_/, "")]),
    clock,
    request(message) {
      const { address } = message.recipient;
      if (address.case !== "webhookUrl") throw new PermanentError(`webhook: the recipient has no webhook URL (got ${address.case ?? "none"})`);
      const url = targetUrl(address.value, egress);
      const sign = signer(message.tenant);
      const at = new Date(clock.now());
      const body = JSON.stringify(webhookPayload(message, at));
      return {
        url,
        headers: {
          "content-type": "application/json",
          "user-agent": "Herald-Webhooks/1",
          "webhook-id": message.idempotencyKey,
          "webhook-timestamp": String(Math.floor(at.getTime() / 1000)),
          "webhook-signature": sign.sign(message.idempotencyKey, at, body),
        },
        body,
      };
    },
    // The receiver is the destination: its 2xx is the delivery itself (DELIVERED, not only SENT).
    accepted(_json, message) {
      return { providerMessageId: message.idempotencyKey, delivered: true };
    },
    // The receiver is whoever the tenant named: what it answers is never stored or shown (it
    // would let a tenant read a host's replies through Get.last_error), only its status.
    describe: () => "",
    fetch: guarded.fetch,
    closed: () => guarded.close(),
  });
}
