import { randomBytes } from "node:crypto";
import { fail, startHttpStandIn, type FailBehaviour, type HttpAnswer, type HttpStandIn, type RecordedRequest } from "./behaviour.js";

// A local stand-in for Twilio's Messages API: POST /2010-04-01/Accounts/{sid}/Messages.json,
// HTTP Basic auth with the account SID and auth token, form-encoded To/From/Body, 201 with the
// message resource, errors as Twilio shapes them ({ code, message, more_info, status }).
// A repeated I-Twilio-Idempotency-Token gets the first message back instead of a new one.

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
  request: RecordedRequest;
}

export interface TwilioStandIn extends HttpStandIn {
  messages: TwilioMessage[];
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

  function handle(req: RecordedRequest): HttpAnswer {
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
    const m: TwilioMessage = { sid: `SM${randomBytes(16).toString("hex")}`, to, from, body, idempotencyToken: token, request: req };
    messages.push(m);
    if (token) byToken.set(token, m);
    return { status: 201, body: resource(m) };
  }

  const server = await startHttpStandIn(handle);
  return Object.assign(server, { messages });
}
