import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { randomBytes } from "node:crypto";
import { readBody } from "./alternatives/http.js";

// The provider stand-in for benchmarks, as its own process so its timers and sockets never share
// an event loop with the load generator. It speaks the part of Twilio's Messages API that
// Herald's `twilio` adapter uses (POST /2010-04-01/Accounts/{sid}/Messages.json, HTTP Basic
// auth, form-encoded To/From/Body, 201 with a message resource) and answers every valid request
// with success after a fixed delay: a provider that is never wrong, only slow.
//
// It records when each message arrived (before the delay: "the provider received it"), keyed by
// the I-Twilio-Idempotency-Token header, for end-to-end latencies measured across processes.
// Timestamps are performance.timeOrigin + performance.now(): epoch milliseconds with sub-ms
// resolution, comparable with the same reading in another process on this machine.
//
// Control (not part of Twilio's API): GET /_bench/arrivals[?from=i] → { requests, arrivals:
// [[key, ms], ...] } for the first arrival of each key from index i; GET /_bench/count →
// { requests, duplicates, distinct }; POST /_bench/reset.
//
// Usage: node dist/bench/slow-provider-server.js  (env SLOW_PROVIDER_PORT=0, SLOW_PROVIDER_DELAY_MS=50,
// SLOW_PROVIDER_ACCOUNT_SID, SLOW_PROVIDER_AUTH_TOKEN); prints "listening <port>".

const port = Number(process.env.SLOW_PROVIDER_PORT ?? 0);
const delayMs = Number(process.env.SLOW_PROVIDER_DELAY_MS ?? 50);
const accountSid = process.env.SLOW_PROVIDER_ACCOUNT_SID ?? "ACbench";
const authToken = process.env.SLOW_PROVIDER_AUTH_TOKEN ?? "bench-token";
const messagesPath = `/2010-04-01/Accounts/${encodeURIComponent(accountSid)}/Messages.json`;
const expectedAuth = `Basic ${Buffer.from(`${accountSid}:${authToken}`).toString("base64")}`;

const now = () => performance.timeOrigin + performance.now();
let requests = 0;
let duplicates = 0;
/** First arrival per key, in arrival order; `seen` makes a redelivered message a duplicate, not a second arrival. */
const arrivals: Array<[string, number]> = [];
const seen = new Set<string>();

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(text) }).end(text);
}

const twilioError = (res: ServerResponse, status: number, code: number, message: string) =>
  json(res, status, { code, message, more_info: `https://www.twilio.com/docs/errors/${code}`, status });

async function message(req: IncomingMessage, res: ServerResponse, arrivedAt: number): Promise<void> {
  if (req.method !== "POST") return twilioError(res, 405, 20004, "Method not allowed");
  if (req.headers.authorization !== expectedAuth) return twilioError(res, 401, 20003, "Authenticate");
  const raw = await readBody(req);
  if (raw === undefined) return twilioError(res, 413, 21617, "The concatenated message body exceeds the 1600 character limit.");
  const form = new URLSearchParams(raw);
  const [to, from, body] = [form.get("To"), form.get("From"), form.get("Body")];
  if (!to) return twilioError(res, 400, 21604, "A 'To' phone number is required.");
  if (!from) return twilioError(res, 400, 21603, "A 'From' phone number is required.");
  if (!body) return twilioError(res, 400, 21602, "Message body is required.");
  const token = req.headers["i-twilio-idempotency-token"];
  const key = typeof token === "string" && token ? token : body;
  if (seen.has(key)) duplicates++;
  else {
    seen.add(key);
    arrivals.push([key, arrivedAt]);
  }
  await new Promise((r) => setTimeout(r, delayMs));
  const sid = `SM${randomBytes(16).toString("hex")}`;
  json(res, 201, { account_sid: accountSid, api_version: "2010-04-01", body, direction: "outbound-api", from, to, sid, status: "queued", num_segments: "1" });
}

const server = createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
  const arrivedAt = now();
  const path = (req.url ?? "/").split("?")[0];
  if (path === messagesPath) {
    requests++;
    message(req, res, arrivedAt).catch(() => res.destroy());
  } else if (path === "/_bench/arrivals" && req.method === "GET") {
    const from = Number(new URL(req.url ?? "/", "http://x").searchParams.get("from") ?? 0);
    json(res, 200, { requests, duplicates, arrivals: arrivals.slice(from) });
  } else if (path === "/_bench/count" && req.method === "GET") {
    json(res, 200, { requests, duplicates, distinct: arrivals.length });
  } else if (path === "/_bench/reset" && req.method === "POST") {
    requests = 0;
    duplicates = 0;
    arrivals.length = 0;
    seen.clear();
    json(res, 200, {});
  } else twilioError(res, 404, 20404, `The requested resource ${path} was not found`);
});
// Many keep-alive clients (50 load-generator sockets, worker pools): no header timeout surprises.
server.headersTimeout = 30_000;

server.listen(port, "127.0.0.1", () => console.log(`listening ${(server.address() as AddressInfo).port}`));
process.once("SIGTERM", () => {
  server.close();
  server.closeAllConnections();
});
