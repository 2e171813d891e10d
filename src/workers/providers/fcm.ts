import type { PushProviderConfig } from "../../config-delivery.js";
import { createHttpProvider } from "./http-provider.js";
import type { HttpFailure } from "./http-response.js";
import { PermanentError, TransientError } from "../../errors.js";
import { type Provider } from "./provider.js";
import { systemClock, type Clock } from "../../clock.js";

// Push through the FCM HTTP v1 API (base URL configurable).
// https://firebase.google.com/docs/reference/fcm/rest/v1/projects.messages/send
// The access token is taken as configured: minting it from a service account is the operator's job.

export type FcmConfig = Extract<PushProviderConfig, { kind: "fcm" }>;

export interface FcmOptions {
  /** For Retry-After dates. @defaultValue systemClock */
  clock?: Clock;
}

/** Google's error body: `{ error: { code, status, message, details: [{ "@type", errorCode }] } }`. */
interface GoogleError {
  status?: string;
  message?: string;
  /** FCM's own code from the FcmError detail (UNREGISTERED, QUOTA_EXCEEDED, ...). */
  fcmCode?: string;
}

function googleError(f: HttpFailure): GoogleError | undefined {
  const error = (f.json as { error?: unknown } | undefined)?.error;
  if (typeof error !== "object" || error === null) return undefined;
  const e = error as { status?: unknown; message?: unknown; details?: unknown };
  const details = Array.isArray(e.details) ? (e.details as Array<{ errorCode?: unknown }>) : [];
  const fcmCode = details.map((d) => d?.errorCode).find((c): c is string => typeof c === "string");
  return {
    status: typeof e.status === "string" ? e.status : undefined,
    message: typeof e.message === "string" ? e.message : undefined,
    fcmCode,
  };
}

// FCM's error codes (https://firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode) and the
// canonical statuses it answers with. Not listed: decided by the HTTP status.
const TRANSIENT = new Set(["UNAVAILABLE", "INTERNAL", "QUOTA_EXCEEDED", "RESOURCE_EXHAUSTED"]);
const PERMANENT = new Set([
  "UNREGISTERED", "INVALID_ARGUMENT", "NOT_FOUND", "SENDER_ID_MISMATCH", "THIRD_PARTY_AUTH_ERROR",
  "PERMISSION_DENIED", "UNAUTHENTICATED",
]);

export function createFcmProvider(config: FcmConfig, opts: FcmOptions = {}): Provider {
  const url = `${config.baseUrl}/v1/projects/${encodeURIComponent(config.projectId)}/messages:send`;
  const authorization = `Bearer ${config.accessToken}`;

  return createHttpProvider({
    name: "fcm",
    timeoutMs: config.timeoutMs,
    secrets: [config.accessToken],
    clock: opts.clock ?? systemClock,
    request(message) {
      const { address } = message.recipient;
      if (address.case !== "deviceToken") throw new PermanentError(`fcm: the recipient has no device token (got ${address.case ?? "none"})`);
      const key = message.idempotencyKey;
      const notification = message.subject || message.text ? { title: message.subject, body: message.text } : undefined;
      const body = {
        message: {
          token: address.value,
          notification,
          // The key travels in the data too, so the app can drop a push it has already shown.
          data: { ...message.data, herald_notification_id: key },
          // A retried push replaces, rather than joins, one already on the device.
          android: { collapse_key: key },
          apns: { headers: { "apns-collapse-id": key } },
        },
      };
      return {
        url,
        headers: { authorization, "content-type": "application/json; charset=utf-8", accept: "application/json" },
        body: JSON.stringify(body),
      };
    },
    describe(f) {
      const e = googleError(f);
      if (!e) return undefined;
      return [e.fcmCode ?? e.status, e.message].filter(Boolean).join(": ");
    },
    classify(f) {
      const e = googleError(f);
      for (const code of [e?.fcmCode, e?.status]) {
        if (code && TRANSIENT.has(code)) return "transient";
        if (code && PERMANENT.has(code)) return "permanent";
      }
      return undefined;
    },
    accepted(json) {
      const name = (json as { name?: unknown } | undefined)?.name;
      if (typeof name !== "string" || !name) throw new TransientError("fcm: accepted the request but answered without a message name");
      return { providerMessageId: name };
    },
  });
}
