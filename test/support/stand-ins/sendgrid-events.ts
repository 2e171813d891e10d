import { generateKeyPairSync, sign, type KeyObject } from "node:crypto";
import { postWithRetries, type CallbackRetries } from "./callback-retry.js";

// SendGrid's Signed Event Webhook as a poster: an ECDSA P-256 key pair made here (SendGrid makes
// its own and shows the public half, base64 DER), and POSTs of event batches (a JSON array) signed
// over timestamp + body in X-Twilio-Email-Event-Webhook-Signature, with the timestamp in
// X-Twilio-Email-Event-Webhook-Timestamp, as SendGrid posts them.

export interface SendgridEventPoster {
  /** For HERALD_SENDGRID_WEBHOOK_PUBLIC_KEY: base64 of the DER SubjectPublicKeyInfo. */
  publicKey: string;
  /**
   * POSTs `events` to `url`; resolves with the HTTP status. `signature`: "wrong" signs with
   * another key, "unsigned" sends no signature headers. `timestamp` in seconds, default now.
   */
  post(url: string, events: unknown[], opts?: { signature?: "wrong" | "unsigned"; timestamp?: number; body?: string; retries?: CallbackRetries }): Promise<number>;
}

/** One SendGrid event for a message Herald sent, with the unique_args its X-SMTPAPI header carried. */
export function sendgridEventFor(
  mail: { messageId: string; to: string; headers: Record<string, string> },
  event: string,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  const smtpApi = JSON.parse(mail.headers["x-smtpapi"] ?? "{}") as { unique_args?: Record<string, string> };
  return {
    email: mail.to,
    timestamp: Math.floor(Date.now() / 1000),
    "smtp-id": mail.messageId,
    event,
    sg_event_id: `sg-${Math.random().toString(36).slice(2)}`,
    sg_message_id: `${Math.random().toString(36).slice(2)}.filter0001`,
    ...smtpApi.unique_args,
    ...extra,
  };
}

const pair = () => generateKeyPairSync("ec", { namedCurve: "prime256v1" });

export function createSendgridEventPoster(): SendgridEventPoster {
  const { publicKey, privateKey } = pair();
  const other: KeyObject = pair().privateKey;
  return {
    publicKey: publicKey.export({ format: "der", type: "spki" }).toString("base64"),
    async post(url, events, opts = {}) {
      const body = opts.body ?? JSON.stringify(events);
      const timestamp = String(opts.timestamp ?? Math.floor(Date.now() / 1000));
      const headers: Record<string, string> = { "content-type": "application/json", "user-agent": "SendGrid Event API" };
      if (opts.signature !== "unsigned") {
        const key = opts.signature === "wrong" ? other : privateKey;
        headers["x-twilio-email-event-webhook-signature"] = sign("sha256", Buffer.from(timestamp + body), key).toString("base64");
        headers["x-twilio-email-event-webhook-timestamp"] = timestamp;
      }
      // SendGrid posts a batch again while the answer is not 2xx (for up to a day).
      return postWithRetries(async () => {
        const res = await fetch(url, { method: "POST", headers, body });
        await res.arrayBuffer();
        return res.status;
      }, opts.retries);
    },
  };
}
