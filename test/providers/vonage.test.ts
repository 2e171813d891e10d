import { create } from "@bufbuild/protobuf";
import { randomBytes } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { Channel, RecipientSchema } from "../../gen/herald/v1/notification_pb.js";
import { PermanentError, TransientError } from "../../src/errors.js";
import type { Provider, RenderedMessage } from "../../src/workers/providers/provider.js";
import { createVonageProvider, vonageStatusClass, type VonageConfig } from "../../src/workers/providers/vonage.js";
import { closedPort, fail, times } from "../support/stand-ins/behaviour.js";
import { startVonageStandIn, vonageRefusal, type VonageStandIn } from "../support/stand-ins/vonage.js";

// The Vonage SMS adapter against a stand-in that speaks the SMS API: form fields, the 200 answer
// whose messages[].status says whether the message was taken, and the status codes classified.

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

async function setup(over: Partial<VonageConfig> = {}): Promise<{ vonage: VonageStandIn; provider: Provider; config: VonageConfig }> {
  const apiKey = `k${randomBytes(4).toString("hex")}`;
  const apiSecret = `s${randomBytes(12).toString("hex")}`;
  const vonage = await startVonageStandIn({ apiKey, apiSecret });
  cleanups.push(() => vonage.close());
  const config: VonageConfig = { kind: "vonage", baseUrl: vonage.url, apiKey, apiSecret, from: "Herald", timeoutMs: 2000, ...over };
  const provider = createVonageProvider(config);
  cleanups.push(() => provider.close());
  return { vonage, provider, config };
}

const send = (p: Provider, m = message()) => p.send(m, new AbortController().signal);

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error("expected a rejection");
}

describe("vonage provider", () => {
  it("POSTs the form fields with Herald's key as client-ref; the message-id is the provider id", async () => {
    const { vonage, provider, config } = await setup();
    const m = message();
    const result = await send(provider, m);
    expect(vonage.messages).toHaveLength(1);
    const [sent] = vonage.messages;
    expect(result).toEqual({ providerMessageId: sent!.messageId });
    expect(sent!.request.path).toBe("/sms/json");
    expect(sent!.request.body).toEqual({
      api_key: config.apiKey, api_secret: config.apiSecret, from: "Herald", to: "14155550100", text: "Your code is 123456", "client-ref": m.idempotencyKey,
    });
  });

  it("a repeat with the same client-ref gets the first message back, not a second SMS", async () => {
    const { vonage, provider } = await setup();
    const m = message();
    const first = await send(provider, m);
    const again = await send(provider, { ...m, attempt: 2 });
    expect(again).toEqual(first);
    expect(vonage.messages).toHaveLength(1);
    expect(vonage.requests).toHaveLength(2);
  });

  it("classifies non-zero statuses where they arrive: throttled and internal errors are transient, the rest permanent", async () => {
    const { vonage, provider } = await setup();
    vonage.behave([vonageRefusal(1, "Throughput Rate Exceeded"), vonageRefusal(5, "Internal Error"), vonageRefusal(9, "Partner quota exceeded"), vonageRefusal(3, "Invalid to")]);
    const throttled = await rejection(send(provider));
    expect(throttled).toBeInstanceOf(TransientError);
    expect(throttled.message).toBe("vonage: status 1: Throughput Rate Exceeded");
    expect(await rejection(send(provider))).toBeInstanceOf(TransientError);
    const quota = await rejection(send(provider));
    expect(quota).toBeInstanceOf(PermanentError);
    expect(quota.message).toBe("vonage: status 9: Partner quota exceeded");
    expect(await rejection(send(provider))).toBeInstanceOf(PermanentError);
    expect(["1", "5", "10", "99"].map(vonageStatusClass)).toEqual(["transient", "transient", "transient", "transient"]);
    expect(["2", "3", "4", "6", "7", "8", "9", "15", "29"].map(vonageStatusClass)).toEqual(Array(9).fill("permanent"));
  });

  it("the stand-in's own refusals: bad credentials (4) and an unroutable number (6) are permanent, and the secret never shows", async () => {
    const { provider, config } = await setup({ apiSecret: "wrong-secret-0123456789" });
    const bad = await rejection(send(provider));
    expect(bad).toBeInstanceOf(PermanentError);
    expect(bad.message).toBe("vonage: status 4: Bad Credentials");
    expect(bad.message).not.toContain(config.apiSecret);
    const { provider: good } = await setup();
    const unroutable = await rejection(send(good, message({ recipient: create(RecipientSchema, { userId: "u", address: { case: "phone", value: "+0123" } }) })));
    expect(unroutable).toBeInstanceOf(PermanentError);
    expect(unroutable.message).toBe("vonage: status 6: Unroutable message - rejected");
  });

  it("HTTP 5xx and refused connections are transient; a recipient without a phone number is permanent", async () => {
    const { vonage, provider } = await setup();
    vonage.behave([times(1, fail(503, "upstream down"))]);
    expect(await rejection(send(provider))).toBeInstanceOf(TransientError);
    const refused = createVonageProvider({ kind: "vonage", baseUrl: `http://127.0.0.1:${await closedPort()}`, apiKey: "k", apiSecret: "s", from: "H", timeoutMs: 2000 });
    cleanups.push(() => refused.close());
    expect(await rejection(send(refused))).toBeInstanceOf(TransientError);
    const email = await rejection(send(provider, message({ recipient: create(RecipientSchema, { userId: "u", address: { case: "email", value: "a@b.c" } }) })));
    expect(email).toBeInstanceOf(PermanentError);
    expect(email.message).toBe("vonage: the recipient has no phone number (got email)");
  });
});
