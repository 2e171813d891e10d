import { create } from "@bufbuild/protobuf";
import { randomBytes } from "node:crypto";
import { getEventListeners } from "node:events";
import { afterEach, describe, expect, it } from "vitest";
import { Channel, RecipientSchema } from "../../gen/herald/v1/notification_pb.js";
import { PermanentError, TransientError } from "../../src/errors.js";
import { type Provider, type RenderedMessage } from "../../src/workers/providers/provider.js";
import { parseRetryAfter } from "../../src/workers/providers/http-response.js";
import { createTwilioProvider, type TwilioConfig } from "../../src/workers/providers/twilio.js";
import { closedPort, closeSocket, fail, hang, retryAfter, times } from "../support/stand-ins/behaviour.js";
import { startTwilioStandIn, twilioError, type TwilioStandIn } from "../support/stand-ins/twilio.js";

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn().catch(() => {});
});

function message(over: Partial<RenderedMessage> = {}): RenderedMessage {
  const id = over.notificationId ?? crypto.randomUUID();
  return {
    notificationId: id, tenant: "acme", channel: Channel.SMS,
    recipient: create(RecipientSchema, { userId: "u-1", address: { case: "phone", value: "+14155550100" } }),
    subject: "", text: "Your code is 123456", html: "", data: {}, labels: {}, idempotencyKey: id, attempt: 1, ...over,
  };
}

const phone = (value: string) => create(RecipientSchema, { userId: "u-1", address: { case: "phone", value } });

interface Env {
  twilio: TwilioStandIn;
  provider: Provider;
  config: TwilioConfig;
}

async function setup(over: Partial<TwilioConfig> = {}, now?: () => number): Promise<Env> {
  const accountSid = `AC${randomBytes(16).toString("hex")}`;
  const authToken = `tok_${randomBytes(12).toString("hex")}`;
  const twilio = await startTwilioStandIn({ accountSid, authToken });
  cleanups.push(() => twilio.close());
  const config: TwilioConfig = { kind: "twilio", baseUrl: twilio.url, accountSid, authToken, from: "+15005550006", timeoutMs: 2000, ...over };
  const provider = createTwilioProvider(config, { clock: now ? { now } : undefined });
  cleanups.push(() => provider.close());
  return { twilio, provider, config };
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

describe("twilio provider", () => {
  it("POSTs To, From and Body form-encoded with basic auth and the idempotency token; the SID is the provider id", async () => {
    const { twilio, provider, config } = await setup();
    const m = message();
    const result = await send(provider, m);

    expect(twilio.messages).toHaveLength(1);
    expect(result).toEqual({ providerMessageId: twilio.messages[0]?.sid });
    expect(result.providerMessageId).toMatch(/^SM[0-9a-f]{32}$/);
    const [req] = twilio.requests;
    expect(req?.method).toBe("POST");
    expect(req?.path).toBe(`/2010-04-01/Accounts/${config.accountSid}/Messages.json`);
    expect(req?.headers.authorization).toBe(`Basic ${Buffer.from(`${config.accountSid}:${config.authToken}`).toString("base64")}`);
    expect(req?.headers["content-type"]).toBe("application/x-www-form-urlencoded");
    expect(req?.headers["i-twilio-idempotency-token"]).toBe(m.idempotencyKey);
    expect(req?.body).toEqual({ To: "+14155550100", From: "+15005550006", Body: "Your code is 123456" });
  });

  it("sends the subject when there is no text, and a repeat with the same key is the same message", async () => {
    const { twilio, provider } = await setup();
    const m = message({ text: "", subject: "Standup in 5" });
    const first = await send(provider, m);
    const second = await send(provider, { ...m, attempt: 2 });

    expect(second).toEqual(first);
    expect(twilio.requests.map((r) => (r.body as Record<string, string>).Body)).toEqual(["Standup in 5", "Standup in 5"]);
    expect(twilio.messages).toHaveLength(1);
  });

  it("5xx is transient and names the status; the next request goes through", async () => {
    const { twilio, provider } = await setup();
    twilio.behave([times(2, fail(503, "upstream unavailable"))]);
    for (let i = 0; i < 2; i++) {
      const err = await rejection(send(provider));
      expect(err).toBeInstanceOf(TransientError);
      expect(err.message).toBe("twilio: HTTP 503: upstream unavailable");
      expect((err as TransientError).retryAfterMs).toBeUndefined();
    }
    await send(provider);
    expect(twilio.requests.map((r) => r.behaviour)).toEqual(["fail", "fail", "ok"]);
  });

  it("429 honours Retry-After in seconds and as an HTTP-date", async () => {
    const now = Date.parse("2026-03-01T12:00:00Z");
    const { twilio, provider } = await setup({}, () => now);
    twilio.behave([
      { ...twilioError(429, 20429, "Too Many Requests"), headers: { "retry-after": "2" } },
      retryAfter(new Date(now + 90_000), 429),
      retryAfter(new Date(now - 5_000), 503),
    ]);
    const seconds = (await rejection(send(provider))) as TransientError;
    expect(seconds).toBeInstanceOf(TransientError);
    expect(seconds.message).toBe("twilio: HTTP 429: error 20429: Too Many Requests");
    expect(seconds.retryAfterMs).toBe(2000);
    const date = (await rejection(send(provider))) as TransientError;
    expect(date.retryAfterMs).toBe(90_000);
    const past = (await rejection(send(provider))) as TransientError;
    expect(past.retryAfterMs).toBe(0);
  });

  it("gives up by itself when Twilio hangs: transient, timed out", async () => {
    const { twilio, provider } = await setup({ timeoutMs: 300 });
    twilio.behave([hang()]);
    const err = await rejection(send(provider));
    expect(err).toBeInstanceOf(TransientError);
    expect(err.message).toBe("twilio: timed out after 300 ms");
  });

  it("an invalid 'To' number is permanent and names Twilio's code", async () => {
    const { twilio, provider } = await setup();
    const err = await rejection(send(provider, message({ recipient: phone("+0123") })));
    expect(err).toBeInstanceOf(PermanentError);
    expect(err.message).toBe("twilio: HTTP 400: error 21211: The 'To' number +0123 is not a valid phone number.");
    expect(twilio.messages).toHaveLength(0);
  });

  it("wrong credentials are permanent, and the token appears in no error", async () => {
    const { twilio, provider } = await setup({ authToken: "tok_wrong_0123456789" });
    const err = await rejection(send(provider));
    expect(err).toBeInstanceOf(PermanentError);
    expect(err.message).toBe("twilio: HTTP 401: error 20003: Authenticate");

    // A proxy echoing the request back: the token and the encoded header are redacted.
    const auth = twilio.requests[0]?.headers.authorization ?? "";
    twilio.behave([fail(500, `echo: token=tok_wrong_0123456789 header=${auth}`)]);
    const echoed = await rejection(send(provider));
    expect(echoed.message).toBe("twilio: HTTP 500: echo: token=[redacted] header=[redacted]");
  });

  it("a redirect is permanent and not followed", async () => {
    const { twilio, provider } = await setup();
    twilio.behave([fail(302, "", { location: "https://elsewhere.example/steal" })]);
    const err = await rejection(send(provider));
    expect(err).toBeInstanceOf(PermanentError);
    expect(err.message).toBe("twilio: redirects are refused (HTTP 302)");
    expect(twilio.requests).toHaveLength(1);
  });

  it("connection refused and a dropped connection are transient", async () => {
    const { twilio, provider } = await setup();
    twilio.behave([closeSocket()]);
    const dropped = await rejection(send(provider));
    expect(dropped).toBeInstanceOf(TransientError);
    expect(dropped.message).toBe("twilio: connection closed by the server (UND_ERR_SOCKET)");

    const refused = createTwilioProvider({ kind: "twilio", baseUrl: `http://127.0.0.1:${await closedPort()}`, accountSid: "AC1", authToken: "t", from: "+15005550006", timeoutMs: 2000 });
    const err = await rejection(send(refused));
    expect(err).toBeInstanceOf(TransientError);
    expect(err.message).toBe("twilio: connection refused (ECONNREFUSED)");
  });

  it("a recipient without a phone number, or nothing to say, is permanent without a request", async () => {
    const { twilio, provider } = await setup();
    const email = message({ recipient: create(RecipientSchema, { userId: "u-1", address: { case: "email", value: "a@b.c" } }) });
    expect((await rejection(send(provider, email))).message).toBe("twilio: the recipient has no phone number (got email)");
    const empty = await rejection(send(provider, message({ text: "", subject: "" })));
    expect(empty).toBeInstanceOf(PermanentError);
    expect(empty.message).toBe("twilio: nothing to send (text and subject are empty)");
    expect(twilio.requests).toHaveLength(0);
  });

  it("2xx without a sid is transient (the idempotency token makes the retry safe)", async () => {
    const { twilio, provider } = await setup();
    twilio.behave([fail(201, { status: "queued" })]);
    const err = await rejection(send(provider));
    expect(err).toBeInstanceOf(TransientError);
    expect(err.message).toBe("twilio: accepted the request but answered without a message sid");
  });

  it("leaves nothing hooked on a long-lived caller signal once sends are over", async () => {
    const { twilio, provider } = await setup({ timeoutMs: 300 });
    const shutdown = new AbortController();
    twilio.behave([fail(503), hang()]);
    for (let i = 0; i < 3; i++) await provider.send(message(), shutdown.signal).catch(() => {});
    expect(twilio.requests.map((r) => r.behaviour)).toEqual(["fail", "hang", "ok"]);
    expect(getEventListeners(shutdown.signal, "abort")).toHaveLength(0);
  });
});

describe("parseRetryAfter", () => {
  const now = Date.parse("2026-03-01T12:00:00Z");
  it.each([
    ["0", 0],
    ["120", 120_000],
    ["Sun, 01 Mar 2026 12:00:30 GMT", 30_000],
    ["Sunday, 01-Mar-26 12:01:00 GMT", 60_000],
    ["Sun, 01 Mar 2026 11:00:00 GMT", 0],
    ["1.5", undefined],
    ["-3", undefined],
    ["soon", undefined],
    ["", undefined],
    [null, undefined],
  ] as const)("%j → %j ms", (value, expected) => {
    expect(parseRetryAfter(value, now)).toBe(expected);
  });
});
