import { createPublicKey, verify, type KeyObject } from "node:crypto";
import { Status } from "../../gen/herald/v1/notification_pb.js";
import { isUuid } from "../domain/ids.js";
import type { Receipt } from "../store/receipts.js";

// SendGrid's Event Webhook, signed (the Signed Event Webhook): a JSON array of events, POSTed with
// X-Twilio-Email-Event-Webhook-Timestamp and X-Twilio-Email-Event-Webhook-Signature, the base64
// ECDSA P-256 / SHA-256 signature (DER) of the timestamp followed by the raw body, verified with
// the public key SendGrid shows (base64 DER). Each event carries the unique_args the SMTP provider
// set in X-SMTPAPI (workers/providers/smtp.ts): they name the notification and its tenant.
// https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/getting-started-event-webhook-security-features

/** The key as SendGrid shows it (checked at config time). */
export function sendgridPublicKey(base64Der: string): KeyObject {
  return createPublicKey({ key: Buffer.from(base64Der, "base64"), format: "der", type: "spki" });
}

/** Whether `signature` signs timestamp + body with the key. */
export function verifySendgridSignature(key: KeyObject, timestamp: string, body: Buffer, signature: string): boolean {
  try {
    return verify("sha256", Buffer.concat([Buffer.from(timestamp, "utf8"), body]), key, Buffer.from(signature, "base64"));
  } catch {
    // A signature that is not DER at all.
    return false;
  }
}

export type SendgridEvent =
  | { kind: "receipt"; receipt: Receipt }
  /** An event that changes nothing here: processed, deferred, open, click, unsubscribes... */
  | { kind: "ignored" }
  /** Not bound to a notification of ours (no unique_args), or not an event object. */
  | { kind: "unmatched" };

const short = (s: unknown, n = 200) => (typeof s === "string" ? s.replace(/\s+/g, " ").trim().slice(0, n) : "");

/**
 * One event of the batch. Mapping (README, "Receipts"):
 * - delivered → DELIVERED;
 * - bounce → FAILED, and the address suppressed (hard_bounce): the receiving server refused
 *   the mailbox for good. A bounce of type "blocked" (and the legacy "blocked" event) is a refusal
 *   of this message (reputation, content, a full mailbox): FAILED, the address NOT suppressed,
 *   since the next message may well arrive. Soft bounces SendGrid keeps retrying come as
 *   "deferred" and change nothing;
 * - dropped → FAILED; the address suppressed when SendGrid dropped it because it bounced
 *   (hard_bounce) or complained (complaint) before;
 * - spamreport → the address suppressed (complaint), the status left as it is (DELIVERED);
 * - anything else → ignored.
 */
export function sendgridEvent(item: unknown, at: Date): SendgridEvent {
  if (typeof item !== "object" || item === null || Array.isArray(item)) return { kind: "unmatched" };
  const e = item as Record<string, unknown>;
  const id = e.herald_notification_id;
  const tenant = e.herald_tenant;
  if (typeof id !== "string" || !isUuid(id) || typeof tenant !== "string") return { kind: "unmatched" };
  const base = { provider: "sendgrid", notificationId: id, tenant, providerMessageId: typeof e["smtp-id"] === "string" ? e["smtp-id"] : "", at };
  const reason = short(e.reason);
  switch (e.event) {
    case "delivered":
      return { kind: "receipt", receipt: { ...base, status: Status.DELIVERED, detail: "sendgrid: delivered" } };
    case "bounce":
    case "blocked": {
      const blocked = e.event === "blocked" || e.type === "blocked";
      const code = short(e.status, 16);
      const detail = `sendgrid: ${blocked ? "blocked" : "bounced"}${code ? ` ${code}` : ""}${reason ? `: ${reason}` : ""}`;
      return {
        kind: "receipt",
        receipt: { ...base, status: Status.FAILED, detail, suppress: blocked ? undefined : { reason: "hard_bounce", detail } },
      };
    }
    case "dropped": {
      const detail = `sendgrid: dropped${reason ? `: ${reason}` : ""}`;
      const suppress = /bounced address/i.test(reason)
        ? { reason: "hard_bounce" as const, detail }
        : /spam report/i.test(reason)
          ? { reason: "complaint" as const, detail }
          : undefined;
      return { kind: "receipt", receipt: { ...base, status: Status.FAILED, detail, suppress } };
    }
    case "spamreport":
      return { kind: "receipt", receipt: { ...base, detail: "sendgrid: spam report", suppress: { reason: "complaint", detail: "sendgrid: spam report" } } };
    default:
      return { kind: "ignored" };
  }
}
