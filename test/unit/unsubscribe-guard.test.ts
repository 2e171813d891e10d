import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { Channel, RecipientSchema } from "../../gen/herald/v1/notification_pb.js";
import { createUnsubscribeTokens } from "../../src/domain/unsubscribe-token.js";
import { PermanentError, TransientError } from "../../src/errors.js";
import { createBatchedLookups } from "../../src/store/batched-lookups.js";
import type { CategoryCheck, CategoryKey } from "../../src/store/unsubscribes.js";
import { failedProvider } from "../../src/workers/providers/attribution.js";
import type { Provider, RenderedMessage } from "../../src/workers/providers/provider.js";
import { emailFields } from "../../src/workers/providers/smtp.js";
import { guardUnsubscribes } from "../../src/workers/providers/unsubscribe-guard.js";

// The guard in front of every provider: a category the recipient left is not sent (permanent, no
// provider call); a required one is sent without a link; any other email gets its signed link;
// a notification without a category is not looked up at all.

const tokens = createUnsubscribeTokens(Buffer.alloc(32, 7));
const links = { base: "https://herald.example.com/unsubscribe", tokens, clock: { now: () => Date.parse("2026-03-01T00:00:00Z") } };

function message(category: string, channel = Channel.EMAIL): RenderedMessage {
  return {
    notificationId: "0190f3c2-0000-7000-8000-000000000001", tenant: "acme", channel,
    recipient: create(RecipientSchema, { userId: "ada", address: channel === Channel.EMAIL ? { case: "email", value: "ada@example.com" } : { case: "phone", value: "+14155550100" } }),
    subject: "s", text: "hi", html: "", data: {}, labels: {}, idempotencyKey: "k", attempt: 1, category,
  };
}

function capturing(): Provider & { sent: RenderedMessage[] } {
  const p = { name: "smtp", sent: [] as RenderedMessage[], send: async (m: RenderedMessage) => (p.sent.push(m), { providerMessageId: "m1" }), close: async () => {} };
  return p;
}

function checks(answer: CategoryCheck | Error) {
  const asked: CategoryKey[] = [];
  const lookups = createBatchedLookups(async (keys: CategoryKey[]) => {
    asked.push(...keys);
    if (answer instanceof Error) throw answer;
    return keys.map(() => answer);
  });
  return { lookups, asked };
}

const signal = new AbortController().signal;

describe("guardUnsubscribes", () => {
  it("adds a signed one-click link to an email of a category the recipient may leave", async () => {
    const inner = capturing();
    const { lookups, asked } = checks({ required: false });
    await guardUnsubscribes(inner, { checks: lookups, links: { ...links, mailto: "unsub@example.com" } }).send(message("marketing"), signal);
    expect(asked).toEqual([{ tenant: "acme", userId: "ada", category: "marketing", channel: Channel.EMAIL }]);
    const link = inner.sent[0]!.listUnsubscribe!;
    const token = link.url.slice(`${links.base}/`.length);
    expect(tokens.open(token)).toEqual({ tenant: "acme", userId: "ada", category: "marketing", notificationId: "0190f3c2-0000-7000-8000-000000000001", issuedAt: new Date("2026-03-01T00:00:00Z") });
    expect(link.mailto).toBe(`mailto:unsub@example.com?subject=unsubscribe%20${token}`);
    expect(emailFields(inner.sent[0]!, "from@example.com").headers).toMatchObject({
      "List-Unsubscribe": `<${link.url}>, <${link.mailto}>`,
      "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    });
  });

  it("does not send to a recipient who unsubscribed: permanent, attributed to no provider, with why and since when", async () => {
    const inner = capturing();
    const { lookups } = checks({ required: false, unsubscribed: { via: "link", since: new Date("2026-02-01T10:00:00Z") } });
    const err = await guardUnsubscribes(inner, { checks: lookups, links }).send(message("marketing", Channel.SMS), signal).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PermanentError);
    expect((err as Error).message).toBe("recipient unsubscribed from marketing by its one-click link since 2026-02-01T10:00:00.000Z; SetPreferences without that unsubscribe subscribes them again");
    expect(failedProvider(err)).toBe("");
    expect(inner.sent).toEqual([]);
  });

  it("does not send on a channel the recipient opted out of: permanent, attributed to no provider, in the preferences' words", async () => {
    const inner = capturing();
    const { lookups, asked } = checks({ required: false, optedOut: { reason: "opted_out", detail: "the recipient opted out of CHANNEL_SMS for marketing" } });
    const err = await guardUnsubscribes(inner, { checks: lookups, links }).send(message("marketing", Channel.SMS), signal).catch((e: unknown) => e);
    expect(asked).toEqual([{ tenant: "acme", userId: "ada", category: "marketing", channel: Channel.SMS }]);
    expect(err).toBeInstanceOf(PermanentError);
    expect((err as Error).message).toBe("not sent: the recipient opted out of CHANNEL_SMS for marketing; SetPreferences changes that");
    expect(failedProvider(err)).toBe("");
    expect(inner.sent).toEqual([]);
  });

  it("sends a required category whatever was chosen, and without a link", async () => {
    const inner = capturing();
    const { lookups } = checks({ required: true, unsubscribed: { via: "preferences" } });
    await guardUnsubscribes(inner, { checks: lookups, links }).send(message("security"), signal);
    expect(inner.sent[0]!.listUnsubscribe).toBeUndefined();
    expect(emailFields(inner.sent[0]!, "from@example.com").headers).not.toHaveProperty("List-Unsubscribe");
  });

  it("without a category: no lookup, no link; without links configured: checked, but no link", async () => {
    const inner = capturing();
    const none = checks({ required: false });
    await guardUnsubscribes(inner, { checks: none.lookups, links }).send(message(""), signal);
    expect(none.asked).toEqual([]);
    const unconfigured = checks({ required: false });
    await guardUnsubscribes(inner, { checks: unconfigured.lookups }).send(message("marketing"), signal);
    expect(unconfigured.asked).toHaveLength(1);
    expect(inner.sent.map((m) => m.listUnsubscribe)).toEqual([undefined, undefined]);
  });

  it("a failed lookup is transient: retried later, never a verdict", async () => {
    const inner = capturing();
    const down = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" });
    const err = await guardUnsubscribes(inner, { checks: checks(down).lookups, links }).send(message("marketing"), signal).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransientError);
    expect((err as Error).message).toBe("could not check the recipient's unsubscribes: database unavailable");
    expect(inner.sent).toEqual([]);
  });
});
