import type { SmsProviderConfig } from "../../config-delivery.js";
import { systemClock, type Clock } from "../../clock.js";
import { PermanentError, TransientError } from "../../errors.js";
import { createHttpProvider } from "./http-provider.js";
import type { Provider } from "./provider.js";

// SMS through Vonage's (Nexmo's) SMS API, or anything that speaks it: POST {base}/sms/json with
// form fields. Unlike Twilio, a refused message usually comes back as HTTP 200 whose
// `messages[].status` is non-zero, so the class is decided here, from that status, not from HTTP.
// https://developer.vonage.com/messaging/sms/guides/troubleshooting-sms

export type VonageConfig = Extract<SmsProviderConfig, { kind: "vonage" }>;

export interface VonageOptions {
  /** For Retry-After dates. @defaultValue systemClock */
  clock?: Clock;
}

/**
 * Statuses that may pass if tried again: 1 throttled, 5 internal error, 10 too many binds (and
 * any status not listed here). Every other documented status is about the request, the account or the number (2 missing and
 * 3 invalid parameters, 4 invalid credentials, 6 unroutable message, 7 barred number, 8 barred
 * account, 9 out of credit, 12 too long, 15 invalid sender, 29 non-whitelisted destination, ...):
 * the same request fails the same way until someone changes something.
 */
const PERMANENT_STATUSES = new Set(["2", "3", "4", "6", "7", "8", "9", "11", "12", "14", "15", "16", "19", "20", "22", "23", "29", "32", "33"]);

interface VonageMessage {
  status?: unknown;
  "message-id"?: unknown;
  "error-text"?: unknown;
}

/** The class of a non-zero status; one we do not know is retried (a new platform condition, not a verdict on the message). */
export function vonageStatusClass(status: string): "transient" | "permanent" {
  return PERMANENT_STATUSES.has(status) ? "permanent" : "transient";
}

export function createVonageProvider(config: VonageConfig, opts: VonageOptions = {}): Provider {
  const url = `${config.baseUrl}/sms/json`;
  return createHttpProvider({
    name: "vonage",
    timeoutMs: config.timeoutMs,
    // The secret travels in the form body: an echoing proxy must not leak it into an error.
    secrets: [config.apiSecret],
    clock: opts.clock ?? systemClock,
    request(message) {
      const { address } = message.recipient;
      if (address.case !== "phone") throw new PermanentError(`vonage: the recipient has no phone number (got ${address.case ?? "none"})`);
      const text = message.text || message.subject;
      if (!text) throw new PermanentError("vonage: nothing to send (text and subject are empty)");
      return {
        url,
        headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json" },
        body: new URLSearchParams({
          api_key: config.apiKey,
          api_secret: config.apiSecret,
          from: config.from,
          // Vonage takes the number without the leading "+" of E.164.
          to: address.value.replace(/^\+/, ""),
          text,
          // Herald's key, the same on every attempt: a repeat is recognisable as one.
          "client-ref": message.idempotencyKey,
        }).toString(),
      };
    },
    describe: (f) => {
      const err = f.json as { "error-title"?: unknown; title?: unknown } | undefined;
      const title = err?.["error-title"] ?? err?.title;
      return typeof title === "string" ? title : undefined;
    },
    accepted(json) {
      const messages = (json as { messages?: unknown } | undefined)?.messages;
      const first = Array.isArray(messages) ? (messages[0] as VonageMessage | undefined) : undefined;
      // 200 without a message entry: we cannot tell what was accepted; the retry carries the same client-ref.
      if (!first || typeof first.status !== "string") throw new TransientError("vonage: answered 200 without a message status");
      if (first.status !== "0") {
        const text = first["error-text"];
        const said = typeof text === "string" ? `: ${text.slice(0, 200)}` : "";
        const message = `vonage: status ${first.status}${said}`;
        if (vonageStatusClass(first.status) === "permanent") throw new PermanentError(message);
        throw new TransientError(message);
      }
      const id = first["message-id"];
      if (typeof id !== "string" || !id) throw new TransientError("vonage: accepted the message but answered without a message-id");
      return { providerMessageId: id };
    },
  });
}
