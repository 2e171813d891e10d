import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { Channel, RecipientSchema } from "../../gen/herald/v1/notification_pb.js";
import { PermanentError, TransientError } from "../../src/errors.js";
import { createSuppressionLookups } from "../../src/store/suppression-lookups.js";
import { guardSuppressions } from "../../src/workers/providers/suppression-guard.js";
import type { Provider, RenderedMessage } from "../../src/workers/providers/provider.js";

// The guard in front of every provider: a suppressed recipient fails permanently without a
// provider call; not being able to look (the database down) is transient, never a verdict.

function message(): RenderedMessage {
  return {
    notificationId: "0190f3c2-0000-7000-8000-000000000001", tenant: "acme", channel: Channel.SMS,
    recipient: create(RecipientSchema, { userId: "u", address: { case: "phone", value: "+14155550100" } }),
    subject: "", text: "hi", html: "", data: {}, labels: {}, idempotencyKey: "k", attempt: 1,
  };
}

function counting(): Provider & { calls: number } {
  const p = { name: "twilio", calls: 0, send: async () => (p.calls++, { providerMessageId: "SM1" }), close: async () => {} };
  return p;
}

const row = { ord: 1, tenant: "acme", channel: Channel.SMS, address: "+14155550100", reason: "complaint", detail: "STOP", notification_id: null, created_at: new Date("2026-11-30T10:00:00.000Z") };

describe("guardSuppressions", () => {
  it("fails a suppressed recipient permanently, with reason, detail and date, and no provider call", async () => {
    const inner = counting();
    const queries: unknown[][] = [];
    const guarded = guardSuppressions(inner, { lookups: createSuppressionLookups({ db: { query: (async (_sql: string, params: unknown[]) => (queries.push(params), { rows: [row] })) as never } }) });
    const err = await guarded.send(message(), new AbortController().signal).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PermanentError);
    expect((err as Error).message).toBe("address suppressed: complaint (STOP) since 2026-11-30T10:00:00.000Z; remove the suppression to send again");
    expect(inner.calls).toBe(0);
    expect(queries).toEqual([[["acme"], [Channel.SMS], ["+14155550100"]]]);
    expect(guarded.name).toBe("twilio");
  });

  it("sends when the address is not suppressed", async () => {
    const inner = counting();
    const guarded = guardSuppressions(inner, { lookups: createSuppressionLookups({ db: { query: (async () => ({ rows: [] })) as never } }) });
    expect(await guarded.send(message(), new AbortController().signal)).toEqual({ providerMessageId: "SM1" });
    expect(inner.calls).toBe(1);
  });

  it("a failed lookup is transient: the send is retried later, not failed", async () => {
    const inner = counting();
    const down = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" });
    const guarded = guardSuppressions(inner, { lookups: createSuppressionLookups({ db: { query: () => Promise.reject(down) } }) });
    const err = await guarded.send(message(), new AbortController().signal).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransientError);
    expect((err as Error).message).toBe("could not check the suppression list: database unavailable");
    expect(inner.calls).toBe(0);
  });
});

describe("suppression lookups", () => {
  it("asks at once when idle, then batches every lookup that arrived meanwhile into the next query, answers in order", async () => {
    const queries: Array<{ params: string[][]; answer: (rows: unknown[]) => void }> = [];
    const db = {
      query: ((_sql: string, params: string[][]) => new Promise((resolve) => queries.push({ params, answer: (rows) => resolve({ rows }) }))) as never,
    };
    const lookups = createSuppressionLookups({ db });
    const key = (tenant: string, address: string) => ({ tenant, channel: Channel.EMAIL, address });
    const first = lookups.find(key("acme", "a@example.com"));
    const later = [lookups.find(key("acme", "B@Example.com")), lookups.find(key("umbrella", "b@example.com")), lookups.find(key("acme", "c@example.com"))];
    await expect.poll(() => queries.length).toBe(1);
    expect(queries[0]!.params).toEqual([["acme"], [Channel.EMAIL], ["a@example.com"]]);
    queries[0]!.answer([]);
    expect(await first).toBeUndefined();
    // The three that waited go together, addresses normalized; the answer maps back by ordinal.
    await expect.poll(() => queries.length).toBe(2);
    expect(queries[1]!.params).toEqual([["acme", "umbrella", "acme"], [1, 1, 1].map(() => Channel.EMAIL), ["b@example.com", "b@example.com", "c@example.com"]]);
    queries[1]!.answer([{ ...row, ord: 2, tenant: "umbrella", channel: Channel.EMAIL, address: "b@example.com" }]);
    const answers = await Promise.all(later);
    expect(answers.map((a) => a?.tenant)).toEqual([undefined, "umbrella", undefined]);
    expect(queries).toHaveLength(2);
  });

  it("a failed query rejects its batch only; the next lookup asks again", async () => {
    let calls = 0;
    const db = { query: (async () => (++calls === 1 ? Promise.reject(new Error("connection terminated")) : { rows: [] })) as never };
    const lookups = createSuppressionLookups({ db });
    await expect(lookups.find({ tenant: "acme", channel: Channel.SMS, address: "+14155550100" })).rejects.toThrow("connection terminated");
    expect(await lookups.find({ tenant: "acme", channel: Channel.SMS, address: "+14155550100" })).toBeUndefined();
    expect(calls).toBe(2);
  });
});
