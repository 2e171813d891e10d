import type { PushProviderConfig } from "../../config-delivery.js";
import { createHttpProvider } from "./http-provider.js";
import type { HttpFailure } from "./http-response.js";
import { PermanentError, TransientError } from "../../errors.js";
import { type Provider } from "./provider.js";
import { systemClock, type Clock } from "../../clock.js";
import type { FetchLike } from "./egress-fetch.js";
import { serviceAccountTokens, staticAccessToken, type AccessTokens } from "./fcm-tokens.js";

// Push through the FCM HTTP v1 API (base URL configurable).
// https://firebase.google.com/docs/reference/fcm/rest/v1/projects.messages/send
// Authenticated with an OAuth access token minted from the service account (fcm-tokens.ts), or
// the static FCM_ACCESS_TOKEN. A 401 with a minted token means it was revoked or expired early:
// the send mints a new one and tries once more. A second 401 means the key itself is refused (a
// deleted key or account, a lost permission): an operator's problem, not the message's, so it is
// transient: the push is retried with backoff and dead-lettered (redrivable) if nobody fixes it.

export type FcmConfig = Extract<PushProviderConfig, { kind: "fcm" }>;

export interface FcmOptions {
  /** For Retry-After dates. @defaultValue systemClock */
  clock?: Clock;
  /** @defaultValue minted from config.serviceAccount, else config.accessToken */
  tokens?: AccessTokens;
  /** @defaultValue Node's fetch */
  fetch?: FetchLike;
}

/** How many minted tokens are kept out of error messages: the one in use and the one before. */
const REMEMBERED_TOKENS = 2;

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
  const tokens =
    opts.tokens ??
    (config.serviceAccount !== undefined
      ? serviceAccountTokens(config.serviceAccount, { timeoutMs: config.timeoutMs })
      : staticAccessToken(config.accessToken));
  // Read by the HTTP adapter at each failure, so it always holds the tokens lately sent.
  const secrets: string[] = config.accessToken ? [config.accessToken] : [];
  const sentWith = (token: string): string => {
    if (!secrets.includes(token)) {
      secrets.push(token);
      if (secrets.length > REMEMBERED_TOKENS) secrets.shift();
    }
    return token;
  };
  const fetchOnce: FetchLike = opts.fetch ?? fetch;

  /** A token for this send; a failure to mint one is the send's failure, in words. */
  async function token(): Promise<string> {
    try {
      return sentWith(await tokens.get());
    } catch (err) {
      throw err instanceof TransientError ? new TransientError(`fcm: ${err.message}`, { cause: err }) : err;
    }
  }

  // The request goes out with the current token; a 401 to a minted one is answered by minting
  // another and sending once more, under the same deadline (init.signal).
  const authorizedFetch: FetchLike = async (input, init) => {
    const withToken = (t: string) => fetchOnce(input, { ...init, headers: { ...(init.headers as Record<string, string>), authorization: `Bearer ${t}` } });
    const first = sentWith(await tokens.get());
    const res = await withToken(first);
    if (res.status !== 401 || !tokens.refreshable) return res;
    await res.body?.cancel().catch(() => {});
    tokens.refuse(first);
    return withToken(sentWith(await tokens.get()));
  };

  const http = createHttpProvider({
    name: "fcm",
    timeoutMs: config.timeoutMs,
    secrets,
    clock: opts.clock ?? systemClock,
    fetch: authorizedFetch,
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
        // authorizedFetch adds the token.
        headers: { "content-type": "application/json; charset=utf-8", accept: "application/json" },
        body: JSON.stringify(body),
      };
    },
    describe(f) {
      const e = googleError(f);
      const said = e ? [e.fcmCode ?? e.status, e.message].filter(Boolean).join(": ") : undefined;
      if (f.status !== 401 || !tokens.refreshable) return said;
      return `${said ?? "UNAUTHENTICATED"} (a freshly minted token was refused too: check the service account key and its Firebase permissions)`;
    },
    classify(f) {
      // See the top: the credentials, not the message, are wrong; retried until an operator fixes them.
      if (f.status === 401 && tokens.refreshable) return "transient";
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

  return {
    name: http.name,
    async send(message, signal) {
      // Minted before the send's deadline starts, so a token endpoint that is down reads as such
      // (the send itself would report it as a failed request).
      await token();
      return http.send(message, signal);
    },
    close: () => http.close(),
  };
}
