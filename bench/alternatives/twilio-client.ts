// The SMS call a team would write by hand for the alternatives: the same request Herald's
// `twilio` adapter makes (same path, Basic auth, form body, idempotency token, Node's fetch with
// its keep-alive pool, a 10 s deadline), so every system pays the same provider cost.

export interface TwilioSettings {
  baseUrl: string;
  accountSid: string;
  authToken: string;
  from: string;
}

/** A provider answer that no retry will change (4xx other than 408/429). */
export class PermanentSendError extends Error {}

export function createSmsSender(s: TwilioSettings, timeoutMs = 10_000) {
  const url = `${s.baseUrl}/2010-04-01/Accounts/${encodeURIComponent(s.accountSid)}/Messages.json`;
  const authorization = `Basic ${Buffer.from(`${s.accountSid}:${s.authToken}`).toString("base64")}`;
  /** Sends one SMS; resolves with the provider's message sid. */
  return async function send(msg: { to: string; text: string; idempotencyKey: string }): Promise<string> {
    const res = await fetch(url, {
      method: "POST",
      headers: {
        authorization,
        "content-type": "application/x-www-form-urlencoded",
        accept: "application/json",
        "i-twilio-idempotency-token": msg.idempotencyKey,
      },
      body: new URLSearchParams({ To: msg.to, From: s.from, Body: msg.text }).toString(),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    if (!res.ok) {
      const retriable = res.status === 408 || res.status === 429 || res.status >= 500;
      const message = `twilio: HTTP ${res.status}`;
      throw retriable ? new Error(message) : new PermanentSendError(message);
    }
    const sid = (JSON.parse(text) as { sid?: unknown }).sid;
    if (typeof sid !== "string") throw new Error("twilio: answered without a message sid");
    return sid;
  };
}

/** The request body both alternatives accept: POST /notify { to, text }. */
export interface NotifyBody {
  to: string;
  text: string;
}

const E164 = /^\+[1-9]\d{1,14}$/;

/** Validates a POST /notify body; returns it, or the reason it is refused. */
export function parseNotify(raw: string): NotifyBody | { error: string } {
  let body: unknown;
  try {
    body = JSON.parse(raw);
  } catch {
    return { error: "body: not JSON" };
  }
  const { to, text } = (body ?? {}) as { to?: unknown; text?: unknown };
  if (typeof to !== "string" || !E164.test(to)) return { error: "to: expected an E.164 phone number" };
  if (typeof text !== "string" || text.length === 0 || text.length > 1600) return { error: "text: 1 to 1600 characters" };
  return { to, text };
}
