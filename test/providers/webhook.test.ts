import { create } from "@bufbuild/protobuf";
import { createHmac, randomBytes } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { Channel, RecipientSchema } from "../../gen/herald/v1/notification_pb.js";
import { PermanentError, TransientError } from "../../src/errors.js";
import { type Provider, type RenderedMessage } from "../../src/workers/providers/provider.js";
import { createEgressPolicy } from "../../src/domain/egress.js";
import { createWebhookProvider } from "../../src/workers/providers/webhook.js";
import { closedPort, fail, hang, retryAfter } from "../support/stand-ins/behaviour.js";
import { startWebhookReceiver, verifyWebhook, type WebhookReceiver } from "../support/stand-ins/webhook-receiver.js";

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn().catch(() => {});
});

const newSecret = () => `whsec_${randomBytes(24).toString("base64")}`;
const hook = (value: string) => create(RecipientSchema, { userId: "u-1", address: { case: "webhookUrl", value } });

function message(url: string, over: Partial<RenderedMessage> = {}): RenderedMessage {
  const id = over.notificationId ?? crypto.randomUUID();
  return {
    notificationId: id, tenant: "acme", channel: Channel.WEBHOOK, recipient: hook(url),
    subject: "Invoice paid", text: "Invoice 7 was paid", html: "", data: { invoice: "7", amount: "12.50" }, labels: { env: "test" },
    idempotencyKey: id, attempt: 1, ...over,
  };
}

async function setup(opts: { timeoutMs?: number; now?: () => number; receiverSecret?: string; allow?: string[] } = {}): Promise<{ receiver: WebhookReceiver; provider: Provider; secret: string }> {
  const secret = newSecret();
  const receiver = await startWebhookReceiver({ secret: opts.receiverSecret ?? secret });
  cleanups.push(() => receiver.close());
  // The receivers listen on loopback, which the egress policy allows only when told to.
  const provider = createWebhookProvider(
    { kind: "http", secrets: new Map([["acme", secret]]), timeoutMs: opts.timeoutMs ?? 2000 },
    { clock: opts.now ? { now: opts.now } : undefined, egress: createEgressPolicy(opts.allow ?? ["127.0.0.0/8"]) },
  );
  cleanups.push(() => provider.close());
  return { receiver, provider, secret };
}

const send = (p: Provider, m: RenderedMessage) => p.send(m, new AbortController().signal);

async function rejection(p: Promise<unknown>, withinMs = 10_000): Promise<Error> {
  const guard = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`still pending after ${withinMs} ms`)), withinMs).unref());
  try {
    await Promise.race([p, guard]);
  } catch (err) {
    return err as Error;
  }
  throw new Error("expected a rejection");
}

describe("webhook provider", () => {
  it("POSTs the JSON payload signed per Standard Webhooks; the receiver verifies it; the webhook-id is the provider id", async () => {
    // A whole second, so webhook-timestamp and the payload's ISO timestamp are the same instant.
    const at = Math.floor(Date.now() / 1000) * 1000;
    const { receiver, provider, secret } = await setup({ now: () => at });
    const m = message(receiver.hookUrl);
    const result = await send(provider, m);

    // The receiver is the destination: its 2xx is a delivery.
    expect(result).toEqual({ providerMessageId: m.idempotencyKey, delivered: true });
    expect(receiver.rejected).toEqual([]);
    const [got] = receiver.deliveries;
    expect(got?.id).toBe(m.idempotencyKey);
    expect(got?.timestamp).toBe(at / 1000);
    expect(got?.payload).toEqual({
      type: "notification.delivery",
      timestamp: new Date(at).toISOString(),
      data: { notification_id: m.notificationId, subject: "Invoice paid", text: "Invoice 7 was paid", data: { invoice: "7", amount: "12.50" }, labels: { env: "test" } },
    });
    const req = got!.request;
    expect(req.method).toBe("POST");
    expect(req.path).toBe("/hooks/herald");
    expect(req.headers["content-type"]).toBe("application/json");
    expect(req.headers["webhook-id"]).toBe(m.idempotencyKey);
    expect(req.headers["webhook-timestamp"]).toBe(String(at / 1000));
    // The spec's own recipe, independent of the library: base64 HMAC-SHA256 of "id.timestamp.body".
    const key = Buffer.from(secret.slice("whsec_".length), "base64");
    const expected = createHmac("sha256", key).update(`${m.idempotencyKey}.${at / 1000}.${req.rawBody}`).digest("base64");
    expect(req.headers["webhook-signature"]).toBe(`v1,${expected}`);
  });

  it("a tampered body, or another secret, does not verify", async () => {
    const { receiver, provider, secret } = await setup();
    await send(provider, message(receiver.hookUrl));
    const { rawBody, headers } = receiver.requests[0]!;
    expect(() => verifyWebhook(secret, rawBody, headers)).not.toThrow();
    const tampered = rawBody.replace("Invoice 7 was paid", "Invoice 8 was paid");
    expect(tampered).not.toBe(rawBody);
    expect(() => verifyWebhook(secret, tampered, headers)).toThrow("No matching signature found");
    expect(() => verifyWebhook(newSecret(), rawBody, headers)).toThrow("No matching signature found");

    // Replayed to the receiver with the body changed: refused and recorded as such.
    const res = await fetch(receiver.hookUrl, { method: "POST", headers, body: tampered });
    expect(res.status).toBe(401);
    expect(receiver.deliveries).toHaveLength(1);
    expect(receiver.rejected.map((r) => r.reason)).toEqual(["No matching signature found"]);
  });

  it("a receiver that refuses the signature (401) is a permanent failure", async () => {
    const { receiver, provider } = await setup({ receiverSecret: newSecret() });
    const err = await rejection(send(provider, message(receiver.hookUrl)));
    expect(err).toBeInstanceOf(PermanentError);
    // What the receiver said is never kept: a tenant could read any host's replies through last_error.
    expect(err.message).toBe("webhook: HTTP 401");
  });

  it("a tenant without a signing secret is permanent, and nothing is sent", async () => {
    const { receiver, provider } = await setup();
    const err = await rejection(send(provider, message(receiver.hookUrl, { tenant: "globex" })));
    expect(err).toBeInstanceOf(PermanentError);
    expect(err.message).toBe('webhook: no webhook signing secret for tenant "globex"');
    expect(receiver.requests).toHaveLength(0);
  });

  it("a redirect is permanent and not followed", async () => {
    const { receiver, provider } = await setup();
    receiver.behave([fail(301, "", { location: `${receiver.url}/moved` })]);
    const err = await rejection(send(provider, message(receiver.hookUrl)));
    expect(err).toBeInstanceOf(PermanentError);
    expect(err.message).toBe("webhook: redirects are refused (HTTP 301)");
    expect(receiver.requests.map((r) => r.path)).toEqual(["/hooks/herald"]);
  });

  it("5xx and 408 are transient; 429 honours Retry-After in seconds and as an HTTP-date; 410 is permanent", async () => {
    const at = Math.floor(Date.now() / 1000) * 1000;
    const { receiver, provider, secret } = await setup({ now: () => at });
    receiver.behave([
      fail(502, `<html>bad gateway ${secret}</html>`),
      fail(408, ""),
      retryAfter(3),
      retryAfter(new Date(at + 45_000)),
      fail(410, "gone"),
    ]);
    const errors: Error[] = [];
    for (let i = 0; i < 5; i++) errors.push(await rejection(send(provider, message(receiver.hookUrl))));
    expect(errors.map((e) => e.constructor.name)).toEqual(["TransientError", "TransientError", "TransientError", "TransientError", "PermanentError"]);
    // Only the status: the body (here echoing the secret) is never quoted.
    expect(errors.map((e) => e.message)).toEqual([
      "webhook: HTTP 502",
      "webhook: HTTP 408",
      "webhook: HTTP 429",
      "webhook: HTTP 429",
      "webhook: HTTP 410",
    ]);
    expect(errors.slice(0, 4).map((e) => (e as TransientError).retryAfterMs)).toEqual([undefined, undefined, 3000, 45_000]);
  });

  it("gives up by itself when the receiver hangs; connection refused is transient", async () => {
    const { receiver, provider } = await setup({ timeoutMs: 300 });
    receiver.behave([hang()]);
    const err = await rejection(send(provider, message(receiver.hookUrl)));
    expect(err).toBeInstanceOf(TransientError);
    expect(err.message).toBe("webhook: timed out after 300 ms");

    const refused = await rejection(send(provider, message(`http://127.0.0.1:${await closedPort()}/hook`)));
    expect(refused).toBeInstanceOf(TransientError);
    expect(refused.message).toBe("webhook: connection refused (ECONNREFUSED)");
  });

  it("a URL that is not http(s), or a recipient without a URL, is permanent", async () => {
    const { provider } = await setup();
    const ftp = await rejection(send(provider, message("ftp://example.com/hook")));
    expect(ftp).toBeInstanceOf(PermanentError);
    expect(ftp.message).toBe("webhook: the recipient's webhook URL is not http(s) (ftp:)");
    const phone = message("http://x", { recipient: create(RecipientSchema, { userId: "u", address: { case: "phone", value: "+14155550100" } }) });
    expect((await rejection(send(provider, phone))).message).toBe("webhook: the recipient has no webhook URL (got phone)");
  });

  it("refuses loopback, private and metadata addresses in every spelling without sending, as a permanent failure", async () => {
    const { receiver, provider } = await setup({ allow: [] });
    const port = new URL(receiver.url).port;
    const targets = [
      ["127.0.0.1", "127.0.0.1 is a loopback address"],
      ["2130706433", "127.0.0.1 is a loopback address"],
      ["0x7f.1", "127.0.0.1 is a loopback address"],
      ["127.1", "127.0.0.1 is a loopback address"],
      ["[::1]", "::1 is a loopback address"],
      ["[::ffff:127.0.0.1]", "127.0.0.1 is a loopback address"],
      ["localhost", "localhost is a loopback address"],
      ["0.0.0.0", "0.0.0.0 is an unspecified address"],
      ["169.254.169.254", "169.254.169.254 is a link-local address"],
      ["10.0.0.1", "10.0.0.1 is a private (RFC 1918) address"],
    ] as const;
    for (const [host, why] of targets) {
      const err = await rejection(send(provider, message(`http://${host}:${port}/hooks/herald`)));
      expect(err, host).toBeInstanceOf(PermanentError);
      expect(err.message, host).toBe(`webhook: ${why}; webhooks may reach only public addresses`);
    }
    expect(receiver.requests).toHaveLength(0);
  });
});
