import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { NotificationService } from "../../gen/herald/v1/notification_service_pb.js";
import { Channel } from "../../gen/herald/v1/notification_pb.js";
import { RETRY_AFTER_MS } from "../../src/server/edge.js";
import { KEY_A, KEY_B, startTestHerald, type TestHerald } from "../support/herald.js";
import { metricValue } from "../support/metric-values.js";
import { bearer } from "../support/rpc.js";
import { freePorts } from "../support/processes.js";

// Per-tenant accept quotas through the real listeners, on the shared Redis (each Herald's keys
// under its own topic prefix). The quotas refill slowly (one token every 10 s or more), so what
// a test spends is not given back while it runs, however slow the machine: the refusals are
// decided by counts, not by timing.

type Notifications = Client<typeof NotificationService>;
type Outcome = { ok: true } | { ok: false; error: ConnectError };
const outcome = (p: Promise<unknown>): Promise<Outcome> =>
  p.then(
    () => ({ ok: true }),
    (err: unknown) => ({ ok: false, error: ConnectError.from(err) }),
  );
const refusal = (o: Outcome): ConnectError => {
  if (o.ok) throw new Error("expected the call to be refused");
  return o.error;
};

function email(userId: string) {
  return {
    channel: Channel.EMAIL,
    recipient: { userId, address: { case: "email" as const, value: "ada@example.com" } },
    body: { case: "content" as const, value: { subject: "Hi", text: "Hello" } },
  };
}
const createItem = (userId: string) => ({ item: { case: "create" as const, value: { notification: email(userId) } } });

async function storedUsers(herald: TestHerald, prefix: string): Promise<number> {
  const r = await herald.db.pool.query<{ n: number }>("SELECT count(*)::int AS n FROM notifications WHERE user_id LIKE $1", [`${prefix}%`]);
  return r.rows[0]!.n;
}

describe("tenant quotas on one server", () => {
  let herald: TestHerald;
  const BURST = 3;
  beforeAll(async () => {
    // tenant-a: 3 at once, then one every 10 s; tenant-b: a bucket of its own of the same size.
    herald = await startTestHerald({ roles: ["server"], env: { HERALD_TENANT_QUOTA: `0.1/s burst ${BURST}` } });
  });
  afterAll(async () => {
    await herald?.stop();
  });

  const listeners: Record<string, (key: string) => Notifications> = {
    "grpc-js (gRPC listener)": (key) => herald.client(key),
    "connect h2c (HTTP listener)": (key) =>
      createClient(NotificationService, createConnectTransport({ baseUrl: herald.httpUrl, httpVersion: "2", interceptors: [bearer(key)] })),
  };

  it.each(Object.keys(listeners))("over %s: tenant-a over its quota is refused with a retry hint while tenant-b is accepted", async (name) => {
    // Each listener's case runs under its own tenants' buckets: the other case spent tenant-a's.
    await herald.rt.redis.del(`${herald.topicPrefix}herald:quota:tenant-a`, `${herald.topicPrefix}herald:quota:tenant-b`);
    const a = listeners[name]!(KEY_A);
    const b = listeners[name]!(KEY_B);
    const run = `q-${randomBytes(4).toString("hex")}`;
    const before = await metricValue(herald.rt.metrics, "herald_quota_rejected_total", { tenant: "tenant-a" });
    for (let i = 0; i < BURST; i++) await a.create({ notification: email(`${run}-a${i}`) });

    // The same moment: tenant-a's next call and tenant-b's first.
    const [overA, firstB] = await Promise.all([
      outcome(a.create({ notification: email(`${run}-a-over`) })),
      outcome(b.create({ notification: email(`${run}-b0`) })),
    ]);
    expect(firstB.ok).toBe(true);
    const error = refusal(overA);
    expect(Code[error.code]).toBe(Code[Code.ResourceExhausted]);
    expect(error.rawMessage).toMatch(/^tenant quota exceeded \(0\.1\/s, burst 3\), retry after \d+ ms$/);
    // One token at 0.1/s is 10 s away at most.
    const hint = Number(error.metadata.get(RETRY_AFTER_MS));
    expect(hint).toBeGreaterThan(0);
    expect(hint).toBeLessThanOrEqual(10_000);
    expect(error.metadata.get("grpc-retry-pushback-ms")).toBe(String(hint));

    expect(await storedUsers(herald, `${run}-a`)).toBe(BURST);
    expect(await storedUsers(herald, `${run}-b`)).toBe(1);
    expect(await metricValue(herald.rt.metrics, "herald_quota_rejected_total", { tenant: "tenant-a" })).toBe(before + 1);
  });

  it("a CreateBatch costs one token per item and is taken whole or refused whole", async () => {
    await herald.rt.redis.del(`${herald.topicPrefix}herald:quota:tenant-a`);
    const a = herald.client(KEY_A);
    const run = `qb-${randomBytes(4).toString("hex")}`;
    // Larger than the whole burst: it could never pass, so no retry hint (and a negative pushback).
    const tooBig = refusal(await outcome(a.createBatch({ items: Array.from({ length: BURST + 1 }, (_, i) => createItem(`${run}-big${i}`)) })));
    expect(Code[tooBig.code]).toBe(Code[Code.ResourceExhausted]);
    expect(tooBig.rawMessage).toBe("tenant quota exceeded: this call holds 4 notifications, more than the tenant's burst of 3; split it into calls of at most 3");
    expect(tooBig.metadata.get(RETRY_AFTER_MS)).toBeNull();
    expect(tooBig.metadata.get("grpc-retry-pushback-ms")).toBe("-1");

    // Two of three tokens taken; a batch of two is refused whole and spends nothing...
    await a.createBatch({ items: [createItem(`${run}-x0`), createItem(`${run}-x1`)] });
    const half = refusal(await outcome(a.createBatch({ items: [createItem(`${run}-y0`), createItem(`${run}-y1`)] })));
    expect(Code[half.code]).toBe(Code[Code.ResourceExhausted]);
    expect(Number(half.metadata.get(RETRY_AFTER_MS))).toBeGreaterThan(0);
    // ...so the last token is still there for a single Create.
    await a.create({ notification: email(`${run}-z`) });
    expect(await storedUsers(herald, `${run}-big`)).toBe(0);
    expect(await storedUsers(herald, `${run}-x`)).toBe(2);
    expect(await storedUsers(herald, `${run}-y`)).toBe(0);
    expect(await storedUsers(herald, `${run}-z`)).toBe(1);
  });

  it("a per-tenant override replaces the default; other RPCs are not charged", async () => {
    const own = await startTestHerald({
      roles: ["server"],
      db: herald.db,
      env: { HERALD_TENANT_QUOTA: "0.1/s burst 1", HERALD_TENANT_QUOTAS: "tenant-b=off" },
    });
    try {
      const a = own.client(KEY_A);
      const b = own.client(KEY_B);
      const run = `qo-${randomBytes(4).toString("hex")}`;
      const first = await a.create({ notification: email(`${run}-a0`) });
      // Get is not an accept call: it costs nothing, however often.
      for (let i = 0; i < 3; i++) await a.get({ id: first.notification!.id });
      expect(Code[refusal(await outcome(a.create({ notification: email(`${run}-a1`) }))).code]).toBe(Code[Code.ResourceExhausted]);
      for (let i = 0; i < 5; i++) await b.create({ notification: email(`${run}-b${i}`) });
      expect(await storedUsers(own, `${run}-b`)).toBe(5);
    } finally {
      await own.stop();
    }
  });
});

describe("tenant quotas across instances", () => {
  let one: TestHerald;
  let two: TestHerald;
  beforeAll(async () => {
    const env = { HERALD_TENANT_QUOTA: "0.1/s burst 4" };
    one = await startTestHerald({ roles: ["server"], env });
    // A second instance of the same deployment: the same database, topics and Redis keys.
    two = await startTestHerald({ roles: ["server"], env, db: one.db, topicPrefix: one.topicPrefix });
  });
  afterAll(async () => {
    await two?.stop();
    await one?.stop();
  });

  it("two servers on one Redis share each tenant's bucket", async () => {
    const run = `qs-${randomBytes(4).toString("hex")}`;
    const [a1, a2] = [one.client(KEY_A), two.client(KEY_A)];
    await a1.create({ notification: email(`${run}-0`) });
    await a2.create({ notification: email(`${run}-1`) });
    await a1.create({ notification: email(`${run}-2`) });
    await a2.create({ notification: email(`${run}-3`) });
    // Four of four spent between them: the next is refused on either.
    for (const c of [a1, a2]) expect(Code[refusal(await outcome(c.create({ notification: email(`${run}-over`) }))).code]).toBe(Code[Code.ResourceExhausted]);
    expect(await storedUsers(one, run)).toBe(4);
    expect(await metricValue(one.rt.metrics, "herald_quota_rejected_total", { tenant: "tenant-a" })).toBe(1);
    expect(await metricValue(two.rt.metrics, "herald_quota_rejected_total", { tenant: "tenant-a" })).toBe(1);
  });
});

describe("tenant quotas while Redis is unreachable", () => {
  let herald: TestHerald;
  beforeAll(async () => {
    // Nothing listens there: every Redis call fails at once (the client queues nothing offline).
    const [port] = await freePorts(1);
    herald = await startTestHerald({ roles: ["server"], env: { HERALD_TENANT_QUOTA: "0.1/s burst 2", REDIS_URL: `redis://127.0.0.1:${port}` } });
  });
  afterAll(async () => {
    await herald?.stop();
  });

  it("each instance keeps the quota in memory: accepted up to the burst, refused beyond, never blocked", async () => {
    const run = `qr-${randomBytes(4).toString("hex")}`;
    const a = herald.client(KEY_A);
    await a.create({ notification: email(`${run}-0`) });
    await a.create({ notification: email(`${run}-1`) });
    const error = refusal(await outcome(a.create({ notification: email(`${run}-2`) })));
    expect(Code[error.code]).toBe(Code[Code.ResourceExhausted]);
    expect(Number(error.metadata.get(RETRY_AFTER_MS))).toBeGreaterThan(0);
    await herald.client(KEY_B).create({ notification: email(`${run}-b`) });
    expect(await storedUsers(herald, run)).toBe(3);
  });
});
