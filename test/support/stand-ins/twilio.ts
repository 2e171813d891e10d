import { createHmac, randomBytes } from "node:crypto";
import { postWithRetries, type CallbackRetries } from "./callback-retry.js";
import { fail, startHttpStandIn, type FailBehaviour, type HttpAnswer, type HttpStandIn, type RecordedRequest } from "./behaviour.js";

// A local stand-in for Twilio's Messages API: POST /2010-04-01/Accounts/{sid}/Messages.json,
// HTTP Basic auth with the account SID and auth token, form-encoded To/From/Body, 201 with the
// message resource, errors as Twilio shapes them ({ code, message, more_info, status }).
// A repeated I-Twilio-Idempotency-Token gets the first message back instead of a new one.
// Status callbacks: a message sent with a StatusCallback URL can be reported on as Twilio does,
// a form-encoded POST of MessageSid, MessageStatus, ErrorCode... signed in X-Twilio-Signature
// (base64 HMAC-SHA1 with the auth token over the URL followed by the sorted parameters).

export interface TwilioStandInOptions {
  accountSid: string;
  authToken: string;
}

/** A message the stand-in accepted (one per idempotency token). */
export interface TwilioMessage {
  sid: string;
  to: string;
  from: string;
  body: string;
  idempotencyToken: string | undefined;
  /** The StatusCallback URL the message was sent with, if any. */
  statusCallback: string | undefined;
  request: RecordedRequest;
}

export interface StatusCallbackOptions {
  /** ErrorCode, for undelivered and failed. */
  errorCode?: number;
  /** "wrong": signed with another token; "unsigned": no X-Twilio-Signature. @defaultValue signed right */
  signature?: "wrong" | "unsigned";
  /** Fields to change or add (e.g. another AccountSid); signed with the rest. */
  override?: Record<string, string>;
  /** POST to this URL instead of the message's StatusCallback (it is signed over this one). */
  url?: string;
  /** Post again while Herald answers 5xx or nothing (Twilio with a #rc retry override). @defaultValue once */
  retries?: CallbackRetries;
}

/** Twilio's X-Twilio-Signature for a POST of `params` to `url`. */
export function twilioSignatureFor(authToken: string, url: string, params: Record<string, string>): string {
  const hmac = createHmac("sha1", authToken).update(url);
  for (const name of Object.keys(params).sort()) hmac.update(name + params[name]);
  return hmac.digest("base64");
}

export interface TwilioStandIn extends HttpStandIn {
  messages: TwilioMessage[];
  /**
   * POSTs a status callback for `message` to its StatusCallback, as Twilio does; resolves with
   * Herald's HTTP status.
   */
  postStatus(message: TwilioMessage, status: "queued" | "sent" | "delivered" | "undelivered" | "failed", opts?: StatusCallbackOptions): Promise<number>;
  /**
   * Runs, and is awaited, after a new message is accepted and before the answer is sent: a
   * callback posted here reaches Herald before the worker has the message's sid, as a fast
   * carrier's can. Unset: answer at once.
   */
  beforeAnswer?: (message: TwilioMessage) => Promise<void>;
}

/** An error answer in Twilio's shape, e.g. twilioError(400, 21211, "The 'To' number ... is not a valid phone number."). */
export function twilioErrorBody(status: number, code: number, message: string) {
  return { code, message, more_info: `https://www.twilio.com/docs/errors/${code}`, status };
}

/** A behaviour answering with a Twilio error. */
export function twilioError(status: number, code: number, message: string, headers?: Record<string, string>): FailBehaviour {
  return fail(status, twilioErrorBody(status, code, message), headers);
}

const E164 = /^\+[1-9]\d{1,14}$/;

export async function startTwilioStandIn(opts: TwilioStandInOptions): Promise<TwilioStandIn> {
  const messages: TwilioMessage[] = [];
  const byToken = new Map<string, TwilioMessage>();
  const expectedAuth = `Basic ${Buffer.from(`${opts.accountSid}:${opts.authToken}`).toString("base64")}`;
  const error = (status: number, code: number, message: string): HttpAnswer => ({ status, body: twilioErrorBody(status, code, message) });

  function resource(m: TwilioMessage) {
    const now = m.request.receivedAt.toUTCString().replace("GMT", "+0000");
    const uri = `/2010-04-01/Accounts/${opts.accountSid}/Messages/${m.sid}.json`;
    return {
      account_sid: opts.accountSid, api_version: "2010-04-01", body: m.body, date_created: now, date_sent: null, date_updated: now,
      direction: "outbound-api", error_code: null, error_message: null, from: m.from, messaging_service_sid: null, num_media: "0",
      num_segments: "1", price: null, price_unit: "USD", sid: m.sid, status: "queued", to: m.to, uri,
      subresource_uris: { media: uri.replace(/\.json$/, "/Media.json") },
    };
  }

  async function handle(req: RecordedRequest): Promise<HttpAnswer> {
    const path = req.path.split("?")[0] ?? "";
    const match = /^\/2010-04-01\/Accounts\/([^/]+)\/Messages\.json$/.exec(path);
    if (!match) return error(404, 20404, `The requested resource ${path} was not found`);
    if (req.method !== "POST") return error(405, 20004, "Method not allowed");
    if (req.headers.authorization !== expectedAuth || decodeURIComponent(match[1] ?? "") !== opts.accountSid) return error(401, 20003, "Authenticate");
    const form = (req.headers["content-type"] ?? "").startsWith("application/x-www-form-urlencoded") ? (req.body as Record<string, string>) : {};
    const { To: to, From: from, Body: body } = form;
    if (!to) return error(400, 21604, "A 'To' phone number is required.");
    if (!E164.test(to)) return error(400, 21211, `The 'To' number ${to} is not a valid phone number.`);
    if (!from) return error(400, 21603, "A 'From' phone number is required.");
    if (!body) return error(400, 21602, "Message body is required.");
    const token = req.headers["i-twilio-idempotency-token"];
    const seen = token ? byToken.get(token) : undefined;
    if (seen) return { status: 201, body: resource(seen) };
    const m: TwilioMessage = {
      sid: `SM${randomBytes(16).toString("hex")}`, to, from, body, idempotencyToken: token, statusCallback: form.StatusCallback || undefined, request: req,
    };
    messages.push(m);
    if (token) byToken.set(token, m);
    await standIn.beforeAnswer?.(m);
    return { status: 201, body: resource(m) };
  }

  async function postStatus(m: TwilioMessage, status: string, o: StatusCallbackOptions = {}): Promise<number> {
    const url = o.url ?? m.statusCallback;
    if (!url) throw new Error(`twilio stand-in: message ${m.sid} was sent without a StatusCallback`);
    const params: Record<string, string> = {
      AccountSid: opts.accountSid, ApiVersion: "2010-04-01", From: m.from, MessageSid: m.sid, MessageStatus: status,
      SmsSid: m.sid, SmsStatus: status, To: m.to,
      ...(o.errorCode !== undefined ? { ErrorCode: String(o.errorCode) } : {}),
      ...o.override,
    };
    const headers: Record<string, string> = { "content-type": "application/x-www-form-urlencoded", "user-agent": "TwilioProxy/1.1" };
    if (o.signature !== "unsigned") headers["x-twilio-signature"] = twilioSignatureFor(o.signature === "wrong" ? `${opts.authToken}x` : opts.authToken, url, params);
    return postWithRetries(async () => {
      const res = await fetch(url, { method: "POST", headers, body: new URLSearchParams(params).toString() });
      await res.arrayBuffer();
      return res.status;
    }, o.retries);
  }

  const server = await startHttpStandIn(handle);
  const standIn: TwilioStandIn = Object.assign(server, { messages, postStatus });
  return standIn;
}
