import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { Channel, RecipientSchema } from "../../gen/herald/v1/notification_pb.js";
import { PermanentError, TransientError } from "../../src/errors.js";
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

const row = { tenant: "acme", channel: Channel.SMS, address: "+14155550100", reason: "complaint", detail: "STOP", notification_id: null, created_at: new Date("2026-11-30T10:00:00.000Z") };

describe("guardSuppressions", () => {
  it("fails a suppressed recipient permanently, with reason, detail and date, and no provider call", async () => {
    const inner = counting();
    const queries: unknown[][] = [];
    const guarded = guardSuppressions(inner, { db: { query: (async (_sql: string, params: unknown[]) => (queries.push(params), { rows: [row] })) as never } });
    const err = await guarded.send(message(), new AbortController().signal).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PermanentError);
    expect((err as Error).message).toBe("address suppressed: complaint (STOP) since 2026-11-30T10:00:00.000Z; remove the suppression to send again");
    expect(inner.calls).toBe(0);
    expect(queries).toEqual([["acme", Channel.SMS, "+14155550100"]]);
    expect(guarded.name).toBe("twilio");
  });

  it("sends when the address is not suppressed", async () => {
    const inner = counting();
    const guarded = guardSuppressions(inner, { db: { query: (async () => ({ rows: [] })) as never } });
    expect(await guarded.send(message(), new AbortController().signal)).toEqual({ providerMessageId: "SM1" });
    expect(inner.calls).toBe(1);
  });

  it("a failed lookup is transient: the send is retried later, not failed", async () => {
    const inner = counting();
    const down = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" });
    const guarded = guardSuppressions(inner, { db: { query: () => Promise.reject(down) } });
    const err = await guarded.send(message(), new AbortController().signal).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransientError);
    expect((err as Error).message).toBe("could not check the suppression list: database unavailable");
    expect(inner.calls).toBe(0);
  });
});
