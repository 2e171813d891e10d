import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { randomUUID } from "node:crypto";
import pg from "pg";
import { readNotify, sendJson } from "./http.js";
import { createSmsSender, PermanentSendError } from "./twilio-client.js";

// The design Herald replaces, written as a small team would: POST /notify validates the body,
// calls the SMS provider inside the request, records the send with one INSERT, and answers 200
// with the provider's message id. A slow provider makes this endpoint exactly as slow; a failing
// one makes it fail (502), and nothing is retried.
//
// Env: PORT (0), DATABASE_URL, TWILIO_BASE_URL, TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, SMS_FROM.
// Prints "listening <port>" once it serves.

const env = (name: string) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is required`);
  return v;
};
const send = createSmsSender({ baseUrl: env("TWILIO_BASE_URL"), accountSid: env("TWILIO_ACCOUNT_SID"), authToken: env("TWILIO_AUTH_TOKEN"), from: env("SMS_FROM") });
// node-postgres' default pool size: what such an app runs with.
const pool = new pg.Pool({ connectionString: env("DATABASE_URL"), max: 10 });
await pool.query(`CREATE TABLE IF NOT EXISTS sms_sent (
  id uuid PRIMARY KEY, recipient text NOT NULL, body text NOT NULL, provider_sid text NOT NULL, sent_at timestamptz NOT NULL DEFAULT now())`);

const server = createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
  void (async () => {
    const body = await readNotify(req, res);
    if (!body) return;
    const id = randomUUID();
    let sid: string;
    try {
      sid = await send({ to: body.to, text: body.text, idempotencyKey: id });
    } catch (err) {
      return sendJson(res, err instanceof PermanentSendError ? 422 : 502, { error: "the SMS provider refused or failed" });
    }
    await pool.query("INSERT INTO sms_sent (id, recipient, body, provider_sid) VALUES ($1, $2, $3, $4)", [id, body.to, body.text, sid]);
    sendJson(res, 200, { id, providerMessageId: sid });
  })().catch(() => {
    if (!res.headersSent) sendJson(res, 500, { error: "internal error" });
  });
});
server.listen(Number(process.env.PORT ?? 0), "127.0.0.1", () => console.log(`listening ${(server.address() as AddressInfo).port}`));

process.once("SIGTERM", () => {
  server.close(() => void pool.end());
  server.closeIdleConnections();
});
