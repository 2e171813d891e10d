import { fromBinary } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Channel, Status, StatusEventSchema, type StatusEvent } from "../gen/herald/v1/notification_pb.js";
import { createDeliveryStore } from "../src/store/deliveries.js";
import { createRenderer } from "../src/templates/notification-renderer.js";
import { createTemplateStore } from "../src/store/templates.js";
import { createDeliveryHandler } from "../src/workers/delivery.js";
import { TransientError } from "../src/errors.js";
import { type Provider, type RenderedMessage, type SendResult } from "../src/workers/providers/provider.js";
import { createChannelWorker, type ChannelWorker } from "../src/workers/worker.js";
import { startTestHerald, type TestHerald } from "./support/herald.js";
import { readTopic } from "./support/kafka-reader.js";
import { waitFor } from "./support/wait.js";
import { waitForGroup } from "./e2e/support.js";

// Channel workers end to end in one process: API → PostgreSQL → relay →
// Kafka → worker → fake provider → outcome → herald.status, with the
// scheduler releasing retries. Real PostgreSQL, Kafka and Redis.

/** Records every send; notifications whose subject starts with "flaky" fail their first attempt with a 503. */
function recordingProvider() {
  const calls: RenderedMessage[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const provider: Provider = {
    name: "recording",
    async send(message) {
      calls.push(message);
      maxInFlight = Math.max(maxInFlight, ++inFlight);
      try {
        // Long enough for sends of different recipients to overlap.
        await new Promise((r) => setTimeout(r, 15));
        if (message.subject.startsWith("flaky") && message.attempt === 1) throw new TransientError("503 service unavailable");
        return { providerMessageId: `rec-${message.notificationId}-${message.attempt}` };
      } finally {
        inFlight--;
      }
    },
    close: async () => {},
  };
  return { provider, calls, maxInFlight: () => maxInFlight };
}

let herald: TestHerald;
const fake = recordingProvider();

beforeAll(async () => {
  herald = await startTestHerald({
    roles: ["server", "relay", "scheduler", "worker"],
    providers: { email: fake.provider },
    env: {
      HERALD_BACKOFF_BASE_MS: "50",
      HERALD_BACKOFF_CAP_MS: "100",
      HERALD_WORKER_CONCURRENCY: "8",
      HERALD_RELAY_POLL_MS: "100",
    },
  });
});
afterAll(async () => {
  await herald?.stop();
});

async function create(userId: string, subject: string, channel = Channel.EMAIL): Promise<string> {
  const { notification } = await herald.client().create({
    notification: {
      channel,
      recipient:
        channel === Channel.SMS
          ? { userId, address: { case: "phone", value: "+14155550100" } }
          : { userId, address: { case: "email", value: `${userId}@example.com` } },
      body: { case: "content", value: { subject, text: "Hello" } },
    },
  });
  return notification!.id;
}

async function waitForStatus(ids: readonly string[], status: Status, timeoutMs = 30_000): Promise<void> {
  await waitFor(
    `${ids.length} notifications to reach ${Status[status]}`,
    async () => (await countWhere("notifications WHERE id = ANY($1::uuid[]) AND status = $2", [ids, status])) === ids.length,
    { timeoutMs },
  );
}

async function countWhere(fromWhere: string, params: unknown[]): Promise<number> {
  const r = await herald.db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${fromWhere}`, params);
  return r.rows[0]!.n;
}

/** The herald.status events of `id` in the order Kafka holds them. */
async function statusEvents(id: string, count: number): Promise<StatusEvent[]> {
  const records = await readTopic(herald.topic("herald.status"), {
    until: (rs) => rs.filter((r) => r.key === id).length >= count,
  });
  return records.filter((r) => r.key === id).map((r) => fromBinary(StatusEventSchema, r.value));
}

describe("channel worker", () => {
  it("delivers a Create end to end: QUEUED, SENDING, SENT on herald.status, in sequence", async () => {
    const id = await create("solo", "Welcome");
    await waitForStatus([id], Status.SENT);

    const events = await statusEvents(id, 3);
    expect(events.map((e) => [e.sequence, Status[e.status], e.attempt])).toEqual([
      [1, "QUEUED", 0],
      [2, "SENDING", 1],
      [3, "SENT", 1],
    ]);
    const sends = fake.calls.filter((c) => c.notificationId === id);
    expect(sends).toHaveLength(1);
    expect(sends[0]).toMatchObject({ idempotencyKey: id, attempt: 1, subject: "Welcome", tenant: "tenant-a" });
    const { notification } = await herald.client().get({ id });
    expect(notification).toMatchObject({ status: Status.SENT, attempts: 1, providerMessageId: `rec-${id}-1` });
  });

  it("retries a 5xx through the scheduler and delivers on attempt 2", async () => {
    const id = await create("retry-user", "flaky once");
    await waitForStatus([id], Status.SENT);

    const events = await statusEvents(id, 6);
    expect(events.map((e) => [e.sequence, Status[e.status], e.attempt])).toEqual([
      [1, "QUEUED", 0],
      [2, "SENDING", 1],
      [3, "RETRYING", 1],
      [4, "QUEUED", 1],
      [5, "SENDING", 2],
      [6, "SENT", 2],
    ]);
    expect(events[2]!.detail).toBe("503 service unavailable");
    expect(fake.calls.filter((c) => c.notificationId === id).map((c) => [c.attempt, c.idempotencyKey])).toEqual([
      [1, id],
      [2, id],
    ]);
  });

  it("keeps one recipient's 50 notifications in creation order while other recipients run concurrently", async () => {
    const before = fake.calls.length;
    const others: Promise<string>[] = [];
    for (let u = 0; u < 10; u++) for (let i = 0; i < 5; i++) others.push(create(`other-${u}`, `other ${i}`));
    const ordered: string[] = [];
    for (let i = 0; i < 50; i++) ordered.push(await create("ordered-user", `ordered ${i}`));
    const all = [...ordered, ...(await Promise.all(others))];
    await waitForStatus(all, Status.SENT, 60_000);

    const sent = fake.calls.slice(before);
    const mine = sent.filter((c) => c.recipient.userId === "ordered-user");
    expect(mine.map((c) => c.notificationId)).toEqual(ordered);
    expect(mine.map((c) => c.subject)).toEqual(ordered.map((_, i) => `ordered ${i}`));
    // Each exactly once, and sends of different recipients overlapped.
    expect(new Set(sent.map((c) => c.notificationId)).size).toBe(all.length);
    expect(sent).toHaveLength(all.length);
    expect(fake.maxInFlight()).toBeGreaterThan(1);
    // 11 recipients could all be sending at once; HERALD_WORKER_CONCURRENCY (8) bounds the sends.
    expect(fake.maxInFlight()).toBeLessThanOrEqual(8);
    expect(herald.workers!.counters("email")).toMatchObject({ resentAfterLostOutcome: 0, outcomesLost: 0, malformed: 0 });
  });
});

describe("worker membership, shutdown and fetching", () => {
  /** An SMS worker of its own on the herald's runtime (the herald runs only email workers). */
  function smsWorker(provider: Provider): ChannelWorker {
    const { rt } = herald;
    const handler = createDeliveryHandler({
      store: createDeliveryStore({ pool: rt.pool, leaseMs: 30_000 }),
      renderer: createRenderer({ templates: createTemplateStore({ pool: rt.pool }) }),
      provider,
      limiter: { take: async () => {} },
      backoff: { baseMs: 50, capMs: 100 },
      log: rt.log,
    });
    return createChannelWorker({ channel: Channel.SMS, kafka: rt.kafka, handler, maxInFlight: 8, log: rt.log });
  }

  it("lets sends in flight finish and store their outcomes, commits, and leaves the rest to the next member", async () => {
    // Two per recipient: the second waits in its recipient's lane behind the first. All firsts
    // come before all seconds, so what finishes is below every partition's watermark.
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) for (let u = 0; u < 4; u++) ids.push(await create(`sms-${u}`, `sms ${u}.${i}`, Channel.SMS));
    // All on Kafka before the worker fetches, so each partition comes as one batch.
    await waitFor(
      "every record published",
      async () => (await countWhere("outbox WHERE notification_id = ANY($1::uuid[]) AND topic = 'herald.sms' AND published_at IS NOT NULL", [ids])) === ids.length,
    );

    const held: Array<() => void> = [];
    const firstCalls: RenderedMessage[] = [];
    const w1 = smsWorker({
      name: "held",
      send(message) {
        firstCalls.push(message);
        return new Promise<SendResult>((resolve) => held.push(() => resolve({ providerMessageId: `held-${message.notificationId}` })));
      },
      close: async () => {},
    });
    await w1.start();
    await waitFor("a send per recipient", () => firstCalls.length >= 4);
    expect(firstCalls).toHaveLength(4); // one per recipient; each second one waits behind it

    const closing = w1.close();
    expect(w1.close()).toBe(closing); // idempotent
    // Released only after close() began: each release frees a second send in its lane, which
    // a worker still taking work would start.
    held.forEach((release) => release());
    await closing;
    // Nothing new started once closing began; what was in flight is stored.
    expect(firstCalls).toHaveLength(4);
    const sentByFirst = firstCalls.map((c) => c.notificationId);
    await waitForStatus(sentByFirst, Status.SENT);
    expect(w1.counters).toMatchObject({ sent: 4 });

    // The next member of the group starts after the committed offsets: it sends only the rest.
    const next = recordingProvider();
    const w2 = smsWorker(next.provider);
    await w2.start();
    try {
      await waitForStatus(ids, Status.SENT);
      const rest = ids.filter((id) => !sentByFirst.includes(id));
      expect(next.calls.map((c) => c.notificationId).sort()).toEqual(rest.sort());
      // The first member left the group as close() began, before its sends finished, so it could
      // not commit them: they come back, and the next member finds them SENT and skips them.
      expect(w2.counters).toMatchObject({ sent: 4, skipped: 4 });
    } finally {
      await w2.close();
    }
  });

  it("fetches and sends more while a record of an earlier fetch is still being sent", async () => {
    const slowId = await create("pipe-slow", "pipe slow", Channel.SMS);
    let releaseSlow!: () => void;
    const slowHeld = new Promise<void>((resolve) => (releaseSlow = resolve));
    const sent: string[] = [];
    const w = smsWorker({
      name: "pipe",
      async send(message) {
        if (message.notificationId === slowId) await slowHeld;
        sent.push(message.notificationId);
        return { providerMessageId: `pipe-${message.notificationId}` };
      },
      close: async () => {},
    });
    await w.start();
    try {
      await waitForStatus([slowId], Status.SENDING);
      // Published only now, so no fetch can hold them together with the held record: kafkajs
      // fetches again only once every batch of its last fetch was handled, and a batch that
      // waited for its records would wait for the held one here.
      const others = await Promise.all(Array.from({ length: 12 }, (_, u) => create(`pipe-${u}`, `pipe ${u}`, Channel.SMS)));
      await waitFor("a later record sent past the held one", () => others.some((id) => sent.includes(id)));
      expect(sent).not.toContain(slowId);
      releaseSlow();
      await waitForStatus([slowId, ...others], Status.SENT);
    } finally {
      releaseSlow();
      await w.close();
    }
    expect(sent.filter((id) => id === slowId)).toHaveLength(1);
  });

  it("survives a rebalance mid-batch: every notification sent once, none lost", async () => {
    // Long lanes (30 sends of 150 ms each), so the rebalance lands while they run.
    const perUser = 30;
    const byUser = await Promise.all(
      Array.from({ length: 6 }, async (_, u) => {
        const mine: string[] = [];
        for (let i = 0; i < perUser; i++) mine.push(await create(`rb-${u}`, `rb ${u}.${i}`, Channel.SMS));
        return mine;
      }),
    );
    const ids = byUser.flat();
    const calls: RenderedMessage[] = [];
    // The first member's sends after its sixth wait for the rebalance, so it lands mid-batch
    // however slowly this machine runs the join (a fixed lane length could drain first).
    let rebalanced!: () => void;
    const afterRebalance = new Promise<void>((resolve) => (rebalanced = resolve));
    const slow = (name: string, gated: boolean): Provider => ({
      name,
      async send(message) {
        calls.push(message);
        if (gated && calls.length > 6) await afterRebalance;
        await new Promise((r) => setTimeout(r, 150));
        return { providerMessageId: `${name}-${message.notificationId}` };
      },
      close: async () => {},
    });
    const w1 = smsWorker(slow("w1", true));
    await w1.start();
    let w2: ChannelWorker | undefined;
    try {
      await waitFor("the first member mid-batch", () => calls.length >= 6);
      // A second member joins while the first is mid-batch: the group rebalances.
      w2 = smsWorker(slow("w2", false));
      await w2.start();
      await waitForGroup(`${herald.topicPrefix}herald-worker-sms`, 2);
      rebalanced();
      await waitForStatus(ids, Status.SENT, 60_000);
    } finally {
      await Promise.all([w1.close(), w2?.close()]);
    }
    const mine = calls.filter((c) => ids.includes(c.notificationId));
    expect(mine).toHaveLength(ids.length);
    expect(new Set(mine.map((c) => c.notificationId)).size).toBe(ids.length);
    // Each recipient's notifications went out in creation order, across both members.
    for (let u = 0; u < 6; u++) {
      const subjects = mine.filter((c) => c.recipient.userId === `rb-${u}`).map((c) => c.subject);
      expect(subjects).toEqual(Array.from({ length: perUser }, (_, i) => `rb ${u}.${i}`));
    }
    // The second member really took partitions over mid-way.
    expect(w2.counters.sent).toBeGreaterThan(0);
    expect(w1.counters.sent + w2.counters.sent).toBe(ids.length);
    expect(w1.counters.outcomesLost + w2.counters.outcomesLost).toBe(0);
  });
});

describe("records from before an upgrade", () => {
  let old: TestHerald;
  const sent: RenderedMessage[] = [];
  beforeAll(async () => {
    // No relay: the test publishes the outbox row itself, with the key an older Herald gave it.
    old = await startTestHerald({
      roles: ["server", "worker"],
      providers: { email: { name: "recording", send: async (m) => (sent.push(m), { providerMessageId: `old-${m.notificationId}` }), close: async () => {} } },
    });
  });
  afterAll(async () => {
    await old?.stop();
  });

  it("delivers a Dispatch keyed by the bare user id (the key before it named the tenant)", async () => {
    const { notification } = await old.client().create({
      notification: {
        channel: Channel.EMAIL,
        recipient: { userId: "u-upgraded", address: { case: "email", value: "u-upgraded@example.com" } },
        body: { case: "content", value: { subject: "from before", text: "Hello" } },
      },
    });
    const id = notification!.id;
    const { rows } = await old.db.pool.query<{ topic: string; key: string; value: Buffer; headers: Record<string, string> }>(
      "SELECT topic, key, value, headers FROM outbox WHERE notification_id = $1 AND topic = 'herald.email'",
      [id],
    );
    expect(rows.map((r) => r.key)).toEqual(["tenant-a/u-upgraded"]);
    const producer = old.rt.kafka.producer();
    try {
      await producer.sendBatch(rows.map((r) => ({ topic: r.topic, key: "u-upgraded", value: r.value, headers: r.headers })));
    } finally {
      await producer.disconnect();
    }
    await waitFor("the old-keyed record's delivery", async () => {
      const r = await old.db.pool.query<{ status: number }>("SELECT status FROM notifications WHERE id = $1", [id]);
      return r.rows[0]?.status === Status.SENT;
    }, { timeoutMs: 60_000 });
    expect(sent.filter((m) => m.notificationId === id).map((m) => m.subject)).toEqual(["from before"]);
  });
});
