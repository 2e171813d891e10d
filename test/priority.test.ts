import { fromBinary } from "@bufbuild/protobuf";
import { afterEach, describe, expect, it } from "vitest";
import { DispatchSchema } from "../gen/herald/v1/dispatch_pb.js";
import { Channel, Priority, Status } from "../gen/herald/v1/notification_pb.js";
import { TransientError } from "../src/errors.js";
import type { Provider, RenderedMessage } from "../src/workers/providers/provider.js";
import { startTestHerald, type TestHerald } from "./support/herald.js";
import { readTopic } from "./support/kafka-reader.js";
import { metricValue } from "./support/metric-values.js";
import { waitFor } from "./support/wait.js";

// Priority lanes end to end (real PostgreSQL, Kafka, Redis): a PRIORITY_HIGH notification goes
// past a backlog of low-priority ones on the same channel, its retries stay in the high lane,
// and with HERALD_PRIORITY_LANES=off it waits behind the backlog as before. Order is read from
// status_events positions (the order outcomes were stored), never from time.

const BACKLOG = 30;

/**
 * A provider whose sends all wait for `open()`; afterwards they answer at once. Subjects starting
 * with "flaky" fail their first attempt with a 503.
 */
function gatedProvider() {
  const calls: RenderedMessage[] = [];
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  let waiting = 0;
  const provider: Provider = {
    name: "gated",
    async send(message) {
      calls.push(message);
      waiting++;
      try {
        await gate;
      } finally {
        waiting--;
      }
      if (message.subject.startsWith("flaky") && message.attempt === 1) throw new TransientError("503 service unavailable");
      return { providerMessageId: `g-${message.notificationId}-${message.attempt}` };
    },
    close: async () => {},
  };
  return { provider, calls, open: () => open(), waiting: () => waiting };
}

const heralds: TestHerald[] = [];
afterEach(async () => {
  for (const h of heralds.splice(0)) await h.stop();
});

async function startHerald(provider: Provider, env: Record<string, string> = {}): Promise<TestHerald> {
  const herald = await startTestHerald({
    roles: ["server", "relay", "scheduler", "worker"],
    providers: { email: provider },
    // One send slot: the order in which sends get it is the order they are stored in.
    env: { HERALD_WORKER_CONCURRENCY: "1", HERALD_RELAY_POLL_MS: "100", HERALD_BACKOFF_BASE_MS: "50", HERALD_BACKOFF_CAP_MS: "100", ...env },
  });
  heralds.push(herald);
  return herald;
}

async function create(herald: TestHerald, userId: string, priority: Priority, subject = "hello"): Promise<string> {
  const { notification } = await herald.client().create({
    notification: {
      channel: Channel.EMAIL,
      priority,
      recipient: { userId, address: { case: "email", value: `${userId}@example.com` } },
      body: { case: "content", value: { subject, text: "Hello" } },
    },
  });
  return notification!.id;
}

async function statusOf(herald: TestHerald, id: string): Promise<Status> {
  const { rows } = await herald.db.pool.query<{ status: Status }>("SELECT status FROM notifications WHERE id = $1", [id]);
  return rows[0]!.status;
}

/** Notification ids in the order their SENT was stored. */
async function sentOrder(herald: TestHerald, ids: readonly string[]): Promise<string[]> {
  await waitFor(`${ids.length} SENT`, async () => {
    const { rows } = await herald.db.pool.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM notifications WHERE id = ANY($1::uuid[]) AND status = $2",
      [ids, Status.SENT],
    );
    return rows[0]!.n === ids.length;
  }, { timeoutMs: 60_000 });
  const { rows } = await herald.db.pool.query<{ id: string }>(
    "SELECT notification_id AS id FROM status_events WHERE notification_id = ANY($1::uuid[]) AND status = $2 ORDER BY position",
    [ids, Status.SENT],
  );
  return rows.map((r) => r.id);
}

/** A backlog of low-priority notifications of one person, the first of them held by the provider. */
async function backlog(herald: TestHerald, gated: ReturnType<typeof gatedProvider>, userId: string): Promise<string[]> {
  const low: string[] = [];
  for (let i = 0; i < BACKLOG; i++) low.push(await create(herald, userId, Priority.LOW, `digest ${i}`));
  await waitFor("the first low-priority send to reach the provider", () => gated.waiting() === 1);
  return low;
}

describe("priority lanes", () => {
  it("delivers a HIGH created after a backlog of LOW ones ahead of that backlog, even the same person's", async () => {
    const gated = gatedProvider();
    const herald = await startHerald(gated.provider);
    const low = await backlog(herald, gated, "pat");
    const high = await create(herald, "pat", Priority.HIGH, "sign-in code");
    // Claimed from herald.email.high while the backlog waits on herald.email: it now waits for the send slot, ahead of the rest.
    await waitFor("the HIGH to be claimed", async () => (await statusOf(herald, high)) === Status.SENDING);
    gated.open();

    const order = await sentOrder(herald, [...low, high]);
    // Only the send already at the provider when it arrived may go before it.
    expect(order.indexOf(high)).toBeLessThanOrEqual(1);
    // The backlog itself stays in its order (one person, one lane).
    expect(order.filter((id) => id !== high)).toEqual(low);
    const { rows } = await herald.db.pool.query<{ topic: string }>("SELECT DISTINCT topic FROM outbox WHERE notification_id = $1 AND topic LIKE 'herald.email%'", [high]);
    expect(rows.map((r) => r.topic)).toEqual(["herald.email.high"]);
    // The high-priority histogram counts it, and only it.
    expect(await metricValue(herald.rt.metrics, "herald_delivery_high_e2e_seconds_count", { channel: "email" })).toBe(1);
    expect(await metricValue(herald.rt.metrics, "herald_delivery_e2e_seconds_count", { channel: "email" })).toBe(BACKLOG + 1);
  });

  it("sends a HIGH's retry through the high lane again", async () => {
    const gated = gatedProvider();
    gated.open();
    const herald = await startHerald(gated.provider);
    const id = await create(herald, "robin", Priority.HIGH, "flaky code");
    await sentOrder(herald, [id]);

    const records = await readTopic(herald.topic("herald.email.high"), { until: (rs) => rs.filter((r) => r.key === "tenant-a/robin").length >= 2 });
    const attempts = records
      .map((r) => fromBinary(DispatchSchema, r.value))
      .filter((d) => d.notificationId === id)
      .map((d) => d.attempt);
    expect(attempts).toEqual([1, 2]);
    const { rows } = await herald.db.pool.query<{ n: number }>("SELECT count(*)::int AS n FROM outbox WHERE notification_id = $1 AND topic = 'herald.email'", [id]);
    expect(rows[0]!.n).toBe(0);
    expect(gated.calls.filter((c) => c.notificationId === id).map((c) => c.attempt)).toEqual([1, 2]);
  });

  it("with HERALD_PRIORITY_LANES=off, a HIGH waits behind the backlog on the channel's one topic", async () => {
    const gated = gatedProvider();
    const herald = await startHerald(gated.provider, { HERALD_PRIORITY_LANES: "off" });
    const low = await backlog(herald, gated, "sam");
    const high = await create(herald, "sam", Priority.HIGH, "sign-in code");
    await waitFor("the HIGH's Dispatch to be published", async () => {
      const { rows } = await herald.db.pool.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM outbox WHERE notification_id = $1 AND published_at IS NOT NULL AND topic LIKE 'herald.email%'",
        [high],
      );
      return rows[0]!.n === 1;
    });
    gated.open();

    const order = await sentOrder(herald, [...low, high]);
    expect(order).toEqual([...low, high]);
    // The relay put it on herald.email: the high lane's topic got nothing.
    const records = await readTopic(herald.topic("herald.email"), { until: (rs) => rs.some((r) => fromBinary(DispatchSchema, r.value).notificationId === high) });
    expect(records.filter((r) => r.key === "tenant-a/sam")).toHaveLength(BACKLOG + 1);
    const lag = await herald.rt.kafka.consumerLag([{ group: "herald-worker-email-high", topic: "herald.email.high" }]);
    expect(lag.reduce((sum, p) => sum + p.logEndOffset, 0)).toBe(0);
  });
});
