import type { SmsProviderConfig } from "../../config-delivery.js";
import { createHttpProvider } from "./http-provider.js";
import { PermanentError, TransientError } from "../../errors.js";
import { type Provider } from "./provider.js";
import { systemClock, type Clock } from "../../clock.js";

// SMS through Twilio's Programmable Messaging API (or anything that speaks it: the base URL is
// configurable). https://www.twilio.com/docs/messaging/api/message-resource#create-a-message-resource

export type TwilioConfig = Extract<SmsProviderConfig, { kind: "twilio" }>;

export interface TwilioOptions {
  /** For Retry-After dates. @defaultValue systemClock */
  clock?: Clock;
}

/** Twilio's error body `{ code, message, more_info, status }` as "error <code>: <message>". */
function describeTwilioError(json: unknown): string | undefined {
  if (typeof json !== "object" || json === null) return undefined;
  const { code, message } = json as { code?: unknown; message?: unknown };
  if (typeof code !== "number" && typeof code !== "string") return undefined;
  return `error ${code}${typeof message === "string" ? `: ${message}` : ""}`;
}

export function createTwilioProvider(config: TwilioConfig, opts: TwilioOptions = {}): Provider {
  const url = `${config.baseUrl}/2010-04-01/Accounts/${encodeURIComponent(config.accountSid)}/Messages.json`;
  const authorization = `Basic ${Buffer.from(`${config.accountSid}:${config.authToken}`).toString("base64")}`;

  return createHttpProvider({
    name: "twilio",
    timeoutMs: config.timeoutMs,
    // The encoded form too: a proxy that echoes the request back must not leak it either.
    secrets: [config.authToken, authorization],
    clock: opts.clock ?? systemClock,
    request(message) {
      const { address } = message.recipient;
      if (address.case !== "phone") throw new PermanentError(`twilio: the recipient has no phone number (got ${address.case ?? "none"})`);
      // An SMS has no subject line: a message that has only a subject sends the subject.
      const body = message.text || message.subject;
      if (!body) throw new PermanentError("twilio: nothing to send (text and subject are empty)");
      return {
        url,
        headers: {
          authorization,
          "content-type": "application/x-www-form-urlencoded",
          accept: "application/json",
          // Stable across attempts, so a retry of a send whose answer was lost is a repeat, not a second SMS.
          "i-twilio-idempotency-token": message.idempotencyKey,
        },
        body: new URLSearchParams({
          To: address.value,
          From: config.from,
          Body: body,
          // Twilio POSTs the message's status changes there, signed (src/receipts/twilio.ts). The
          // notification id binds the callback to this notification: a callback naming another
          // message of it, or another notification, changes nothing.
          ...(config.statusCallbackUrl ? { StatusCallback: `${config.statusCallbackUrl}?n=${message.notificationId}` } : {}),
        }).toString(),
      };
    },
    describe: (f) => describeTwilioError(f.json),
    accepted(json) {
      const sid = (json as { sid?: unknown } | undefined)?.sid;
      // 2xx without a sid: we cannot tell what was accepted. The idempotency token makes the retry safe.
      if (typeof sid !== "string" || !sid) throw new TransientError("twilio: accepted the request but answered without a message sid");
      return { providerMessageId: sid };
    },
  });
}
