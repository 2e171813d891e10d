import { createHmac, timingSafeEqual } from "node:crypto";
import { Status } from "../../gen/herald/v1/notification_pb.js";
import { isUuid } from "../domain/ids.js";
import type { Receipt } from "../store/receipts.js";

// Twilio's message status callbacks: a form-encoded POST to the StatusCallback the provider
// gave with the message (workers/providers/twilio.ts), signed in X-Twilio-Signature:
// base64(HMAC-SHA1(auth token, the full URL Twilio called + every POST parameter's name and
// value, sorted by name)). https://www.twilio.com/docs/usage/webhooks/webhooks-security

/** The X-Twilio-Signature Twilio computes for a POST of `params` to `url`. */
export function twilioSignature(authToken: string, url: string, params: URLSearchParams): string {
  const sorted = [...params].sort(([a, va], [b, vb]) => (a < b ? -1 : a > b ? 1 : va < vb ? -1 : va > vb ? 1 : 0));
  const hmac = createHmac("sha1", authToken).update(url);
  for (const [name, value] of sorted) hmac.update(name + value);
  return hmac.digest("base64");
}

/** Whether `signature` is Twilio's for this request, compared in constant time. */
export function verifyTwilioSignature(authToken: string, url: string, params: URLSearchParams, signature: string | undefined): boolean {
  if (!signature) return false;
  const expected = Buffer.from(twilioSignature(authToken, url, params));
  const given = Buffer.from(signature);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

export type TwilioCallback =
  | { kind: "receipt"; receipt: Receipt }
  /** A status on the way (queued, sending, sent, accepted...): nothing to record. */
  | { kind: "ignored" }
  /** Not about a message of ours: another account, no notification binding, no message sid. */
  | { kind: "unmatched" };

/**
 * What a signed callback says. `notificationId` is the `n` of our StatusCallback's query: the
 * signature covers it, so it binds the callback to the notification the message was sent for.
 */
export function twilioCallback(params: URLSearchParams, opts: { accountSid: string; notificationId: string | null; at: Date }): TwilioCallback {
  const sid = params.get("MessageSid") ?? params.get("SmsSid") ?? "";
  const status = (params.get("MessageStatus") ?? params.get("SmsStatus") ?? "").toLowerCase();
  if (params.get("AccountSid") !== opts.accountSid || !sid || !opts.notificationId || !isUuid(opts.notificationId)) return { kind: "unmatched" };
  const base = { provider: "twilio", notificationId: opts.notificationId, providerMessageId: sid, at: opts.at };
  if (status === "delivered") return { kind: "receipt", receipt: { ...base, status: Status.DELIVERED, detail: "twilio: delivered" } };
  if (status === "undelivered" || status === "failed") {
    const code = (params.get("ErrorCode") ?? "").replace(/[^0-9A-Za-z]/g, "").slice(0, 16);
    return { kind: "receipt", receipt: { ...base, status: Status.FAILED, detail: `twilio: ${status}${code ? `, error ${code}` : ""}` } };
  }
  return { kind: "ignored" };
}
