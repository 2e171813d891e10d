import { randomBytes } from "node:crypto";
import { startHttpStandIn, type Behaviour, type HttpAnswer, type HttpStandIn, type RecordedRequest } from "./behaviour.js";

// A local stand-in for Vonage's SMS API: POST /sms/json, form-encoded api_key, api_secret, from,
// to, text and client-ref. Like Vonage, it answers HTTP 200 for refused messages too, with a
// non-zero `messages[].status` and `error-text` (1 throttled, 2 missing params, 4 bad
// credentials, 6 unroutable number, ...). A repeated client-ref gets the first message back
// instead of a second SMS.

export interface VonageStandInOptions {
  apiKey: string;
  apiSecret: string;
}

/** A message the stand-in accepted (one per client-ref). */
export interface VonageMessage {
  messageId: string;
  to: string;
  from: string;
  text: string;
  clientRef: string | undefined;
  request: RecordedRequest;
}

export interface VonageStandIn extends HttpStandIn {
  messages: VonageMessage[];
}

/** The 200 answer Vonage gives a message it refused with `status`. */
export function vonageRefusalBody(status: number, errorText: string) {
  return { "message-count": "1", messages: [{ status: String(status), "error-text": errorText }] };
}

/** A behaviour answering 200 with a non-zero status, as Vonage refuses a message. */
export function vonageRefusal(status: number, errorText: string): Behaviour {
  return { kind: "fail", status: 200, body: vonageRefusalBody(status, errorText) };
}

const DIGITS = /^[1-9]\d{6,14}$/;

export async function startVonageStandIn(opts: VonageStandInOptions): Promise<VonageStandIn> {
  const messages: VonageMessage[] = [];
  const byRef = new Map<string, VonageMessage>();
  const refusal = (status: number, text: string): HttpAnswer => ({ status: 200, body: vonageRefusalBody(status, text) });
  const accepted = (m: VonageMessage): HttpAnswer => ({
    status: 200,
    body: {
      "message-count": "1",
      messages: [{ to: m.to, "message-id": m.messageId, status: "0", "remaining-balance": "15.53590000", "message-price": "0.03330000", network: "23410", ...(m.clientRef ? { "client-ref": m.clientRef } : {}) }],
    },
  });

  function handle(req: RecordedRequest): HttpAnswer {
    const path = req.path.split("?")[0] ?? "";
    if (path !== "/sms/json") return { status: 404, body: { type: "https://developer.nexmo.com/api-errors#not-found", "error-title": "Not Found" } };
    if (req.method !== "POST") return { status: 405, body: { "error-title": "Method Not Allowed" } };
    const form = (req.headers["content-type"] ?? "").startsWith("application/x-www-form-urlencoded") ? (req.body as Record<string, string>) : {};
    const { api_key: key, api_secret: secret, from, to, text } = form;
    const clientRef = form["client-ref"];
    if (!key || !secret || !from || !to || !text) return refusal(2, "Missing from, to, api_key, api_secret or text");
    if (key !== opts.apiKey || secret !== opts.apiSecret) return refusal(4, "Bad Credentials");
    if (!DIGITS.test(to)) return refusal(6, "Unroutable message - rejected");
    const seen = clientRef ? byRef.get(clientRef) : undefined;
    if (seen) return accepted(seen);
    const m: VonageMessage = { messageId: randomBytes(8).toString("hex").toUpperCase(), to, from, text, clientRef, request: req };
    messages.push(m);
    if (clientRef) byRef.set(clientRef, m);
    return accepted(m);
  }

  const server = await startHttpStandIn(handle);
  return Object.assign(server, { messages });
}
