import { create } from "@bufbuild/protobuf";
import { randomBytes } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { Channel, RecipientSchema } from "../../gen/herald/v1/notification_pb.js";
import { createFcmProvider, type FcmConfig } from "../../src/workers/providers/fcm.js";
import { PermanentError, TransientError } from "../../src/errors.js";
import { type Provider, type RenderedMessage } from "../../src/workers/providers/provider.js";
import { closedPort, fail, hang, retryAfter } from "../support/stand-ins/behaviour.js";
import { fcmError, startFcmStandIn, type FcmStandIn } from "../support/stand-ins/fcm.js";

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn().catch(() => {});
});

const TOKEN = "fcm-device-token:APA91bH-example";

function message(over: Partial<RenderedMessage> = {}): RenderedMessage {
  const id = over.notificationId ?? crypto.randomUUID();
  return {
    notificationId: id, tenant: "acme", channel: Channel.PUSH,
    recipient: create(RecipientSchema, { userId: "u-1", address: { case: "deviceToken", value: TOKEN } }),
    subject: "Order shipped", text: "Your order #42 is on its way", html: "",
    data: { order: "42" }, labels: { team: "shop" }, idempotencyKey: id, attempt: 1, ...over,
  };
}

async function setup(over: { accessToken?: string; timeoutMs?: number } = {}, now?: () => number): Promise<{ fcm: FcmStandIn; provider: Provider; config: FcmConfig & { accessToken: string } }> {
  const projectId = `herald-test-${randomBytes(3).toString("hex")}`;
  const accessToken = `ya29.${randomBytes(16).toString("hex")}`;
  const fcm = await startFcmStandIn({ projectId, accessToken });
  cleanups.push(() => fcm.close());
  const config = { kind: "fcm" as const, baseUrl: fcm.url, projectId, accessToken, timeoutMs: 2000, ...over };
  const provider = createFcmProvider(config, { clock: now ? { now } : undefined });
  cleanups.push(() => provider.close());
  return { fcm, provider, config };
}

const send = (p: Provider, m = message()) => p.send(m, new AbortController().signal);

async function rejection(p: Promise<unknown>, withinMs = 10_000): Promise<Error> {
  const guard = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`still pending after ${withinMs} ms`)), withinMs).unref());
  try {
    await Promise.race([p, guard]);
  } catch (err) {
    return err as Error;
  }
  throw new Error("expected a rejection");
}

describe("fcm provider", () => {
  it("POSTs the v1 message with a bearer token and the key in data, collapse_key and apns-collapse-id; the name is the provider id", async () => {
    const { fcm, provider, config } = await setup();
    const m = message();
    const result = await send(provider, m);

    expect(fcm.messages).toHaveLength(1);
    expect(result).toEqual({ providerMessageId: fcm.messages[0]?.name });
    expect(result.providerMessageId).toMatch(new RegExp(`^projects/${config.projectId}/messages/`));
    const [req] = fcm.requests;
    expect(req?.method).toBe("POST");
    expect(req?.path).toBe(`/v1/projects/${config.projectId}/messages:send`);
    expect(req?.headers.authorization).toBe(`Bearer ${config.accessToken}`);
    expect(req?.headers["content-type"]).toBe("application/json; charset=utf-8");
    expect(req?.body).toEqual({
      message: {
        token: TOKEN,
        notification: { title: "Order shipped", body: "Your order #42 is on its way" },
        data: { order: "42", herald_notification_id: m.idempotencyKey },
        android: { collapse_key: m.idempotencyKey },
        apns: { headers: { "apns-collapse-id": m.idempotencyKey } },
      },
    });
  });

  it("a data-only push has no notification block", async () => {
    const { fcm, provider } = await setup();
    await send(provider, message({ subject: "", text: "" }));
    expect(fcm.messages[0]?.message).not.toHaveProperty("notification");
  });

  it.each([
    ["UNREGISTERED (404)", 404, "UNREGISTERED", "fcm: HTTP 404: UNREGISTERED: Requested entity was not found."],
    ["INVALID_ARGUMENT (400)", 400, "INVALID_ARGUMENT", "fcm: HTTP 400: INVALID_ARGUMENT: bad token (stand-in)"],
    ["SENDER_ID_MISMATCH (403)", 403, "SENDER_ID_MISMATCH", "fcm: HTTP 403: SENDER_ID_MISMATCH: bad token (stand-in)"],
  ])("%s is permanent and names FCM's error code", async (_, status, code, expected) => {
    const { fcm, provider } = await setup();
    if (code === "UNREGISTERED") fcm.unregister(TOKEN);
    else fcm.behave([fcmError(status, code, undefined, "bad token (stand-in)")]);
    const err = await rejection(send(provider));
    expect(err).toBeInstanceOf(PermanentError);
    expect(err.message).toBe(expected);
  });

  it("UNAVAILABLE, INTERNAL and QUOTA_EXCEEDED are transient; Retry-After is honoured in seconds and as an HTTP-date", async () => {
    const now = Date.parse("2026-03-01T12:00:00Z");
    const { fcm, provider } = await setup({}, () => now);
    fcm.behave([
      fcmError(503, "UNAVAILABLE"),
      fcmError(500, "INTERNAL"),
      fcmError(429, "QUOTA_EXCEEDED", { "retry-after": "7" }),
      retryAfter(new Date(now + 30_000), 503),
      // The error code decides, whatever the HTTP status says.
      fcmError(400, "UNAVAILABLE"),
    ]);
    const errors: TransientError[] = [];
    for (let i = 0; i < 5; i++) errors.push((await rejection(send(provider))) as TransientError);
    expect(errors.every((e) => e instanceof TransientError)).toBe(true);
    expect(errors.map((e) => e.message)).toEqual([
      "fcm: HTTP 503: UNAVAILABLE: UNAVAILABLE (stand-in)",
      "fcm: HTTP 500: INTERNAL: INTERNAL (stand-in)",
      "fcm: HTTP 429: QUOTA_EXCEEDED: QUOTA_EXCEEDED (stand-in)",
      "fcm: HTTP 503",
      "fcm: HTTP 400: UNAVAILABLE: UNAVAILABLE (stand-in)",
    ]);
    expect(errors.map((e) => e.retryAfterMs)).toEqual([undefined, undefined, 7000, 30_000, undefined]);
  });

  it("a wrong access token is permanent, and the token appears in no error", async () => {
    const { provider, config } = await setup({ accessToken: "ya29.wrong-token-value" });
    const err = await rejection(send(provider));
    expect(err).toBeInstanceOf(PermanentError);
    expect(err.message).toMatch(/^fcm: HTTP 401: UNAUTHENTICATED: Request had invalid authentication credentials/);
    expect(err.message).not.toContain(config.accessToken);
  });

  it("gives up by itself when FCM hangs; connection refused is transient", async () => {
    const { fcm, provider } = await setup({ timeoutMs: 300 });
    fcm.behave([hang()]);
    const err = await rejection(send(provider));
    expect(err).toBeInstanceOf(TransientError);
    expect(err.message).toBe("fcm: timed out after 300 ms");

    const refused = createFcmProvider({ kind: "fcm", baseUrl: `http://127.0.0.1:${await closedPort()}`, projectId: "p", accessToken: "t", timeoutMs: 2000 });
    const r = await rejection(send(refused));
    expect(r).toBeInstanceOf(TransientError);
    expect(r.message).toBe("fcm: connection refused (ECONNREFUSED)");
  });

  it("a redirect is permanent; a 2xx without a name is transient", async () => {
    const { fcm, provider } = await setup();
    fcm.behave([fail(307, "", { location: "http://127.0.0.1:1/" }), fail(200, {})]);
    const redirect = await rejection(send(provider));
    expect(redirect).toBeInstanceOf(PermanentError);
    expect(redirect.message).toBe("fcm: redirects are refused (HTTP 307)");
    const nameless = await rejection(send(provider));
    expect(nameless).toBeInstanceOf(TransientError);
    expect(nameless.message).toBe("fcm: accepted the request but answered without a message name");
  });
});
