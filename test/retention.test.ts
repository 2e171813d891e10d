import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Status } from "../gen/herald/v1/notification_pb.js";
import { createMetricsRegistry } from "../src/metrics/registry.js";
import { createRetentionMetrics } from "../src/metrics/retention.js";
import { createPurger } from "../src/retention/purger.js";
import { createPool } from "../src/store/db.js";
import { PURGE_LOCK_KEY } from "../src/store/purge.js";
import { createTestDatabase, type TestDatabase } from "./support/db.js";
import { metricValue } from "./support/metric-values.js";
import { waitFor } from "./support/wait.js";

// The retention purge (src/retention/purger.ts over src/store/purge.ts) on a database of its own,
// seeded by SQL: terminal notifications older than the retention go in batches with their status
// events, feed rows, outbox rows, dead letters and receipts; young ones and those that can still
// change (whatever their age) stay with everything of theirs; one purger works at a time; a
// database that cannot be reached makes the loop wait and say so, never throw.

const DAY = 86_400_000;
let db: TestDatabase;
const quiet = pino({ level: "silent" });

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

/** `n` notifications of `status`, last changed `ageDays` ago, each with an event, a feed row, a published outbox row, a dead letter and a receipt. */
async function seed(tag: string, n: number, status: Status, ageDays: number): Promise<void> {
  await db.pool.query(
    `WITH ins AS (
       INSERT INTO notifications (id, tenant, channel, user_id, status, spec, correlation_id, deliver_at, last_sequence, created_at, updated_at)
       SELECT gen_random_uuid(), 'tenant-a', 1, $1 || i, $2, '\\x'::bytea, '', now() - $3 * interval '1 day', 1,
              now() - $3 * interval '1 day', now() - $3 * interval '1 day'
       FROM generate_series(1, $4) AS i RETURNING id, user_id),
     ev AS (
       INSERT INTO status_events (notification_id, sequence, tenant, user_id, channel, status, attempt, created_at)
       SELECT id, 1, 'tenant-a', user_id, 1, $2, 1, now() FROM ins RETURNING position, notification_id, user_id),
     feed AS (
       INSERT INTO status_feed_log (position, event_position, tenant, user_id, notification_id)
       SELECT position, position, 'tenant-a', user_id, notification_id FROM ev RETURNING 1),
     box AS (
       INSERT INTO outbox (topic, key, value, notification_id, published_at) SELECT 'herald.status', id::text, '\\x'::bytea, id, now() FROM ins RETURNING 1),
     dead AS (
       INSERT INTO dead_letters (notification_id, tenant, channel, status, last_error, attempts, created_at)
       SELECT id, 'tenant-a', 1, $2, 'x', 1, now() FROM ins RETURNING 1)
     INSERT INTO receipts (notification_id, provider, provider_message_id, status, received_at) SELECT id, 'twilio', 'SM', 5, now() FROM ins`,
    [tag, status, ageDays, n],
  );
}

async function left(tag: string): Promise<Record<string, number>> {
  const { rows } = await db.pool.query<Record<string, number>>(
    `SELECT (SELECT count(*) FROM notifications WHERE user_id LIKE $1)::int AS notifications,
            (SELECT count(*) FROM status_events WHERE user_id LIKE $1)::int AS events,
            (SELECT count(*) FROM status_feed_log WHERE user_id LIKE $1)::int AS feed,
            (SELECT count(*) FROM outbox o JOIN notifications n ON n.id = o.notification_id WHERE n.user_id LIKE $1)::int AS outbox,
            (SELECT count(*) FROM dead_letters d JOIN notifications n ON n.id = d.notification_id WHERE n.user_id LIKE $1)::int AS dead_letters,
            (SELECT count(*) FROM receipts r JOIN notifications n ON n.id = r.notification_id WHERE n.user_id LIKE $1)::int AS receipts`,
    [`${tag}%`],
  );
  return rows[0]!;
}

describe("retention purge", () => {
  it("purges old terminal notifications in batches with everything keyed to them, keeps young and live ones, counts them", async () => {
    const terminal = [Status.SENT, Status.DELIVERED, Status.FAILED, Status.DEAD_LETTERED, Status.CANCELED];
    for (const s of terminal) await seed(`old-${s}-`, 5, s, 31);
    await seed("young-", 4, Status.DELIVERED, 29);
    for (const s of [Status.SCHEDULED, Status.QUEUED, Status.SENDING, Status.RETRYING]) await seed(`live-${s}-`, 2, s, 400);
    // Outbox rows of other origins (no notification) are the outbox retention's, not this one's.
    await db.pool.query("INSERT INTO outbox (topic, key, value, published_at) VALUES ('herald.dlq', 'k', '\\x'::bytea, now())");
    // Notify's request rows go by their own age: 9 old ones (a batch of 7, then 2), 3 young.
    await db.pool.query(
      `INSERT INTO notify_requests (id, tenant, user_id, created_at)
       SELECT gen_random_uuid(), 'tenant-a', 'req-' || i, now() - CASE WHEN i <= 9 THEN interval '31 days' ELSE interval '29 days' END
       FROM generate_series(1, 12) AS i`,
    );

    const registry = createMetricsRegistry();
    const lines: Array<Record<string, unknown>> = [];
    const log = pino({ level: "info" }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
    const purger = createPurger({ pool: db.pool, log, retentionMs: 30 * DAY, batchSize: 7, pauseMs: 0, metrics: createRetentionMetrics(registry) });
    const round = await purger.runRound();

    // 25 expired: batches of 7, 7, 7, 4.
    expect(round).toEqual({ notifications: 25, statusEvents: 25, outbox: 25, notifyRequests: 9, batches: 4, busy: false });
    expect((await db.pool.query("SELECT 1 FROM notify_requests")).rowCount).toBe(3);
    expect(await left("old-")).toEqual({ notifications: 0, events: 0, feed: 0, outbox: 0, dead_letters: 0, receipts: 0 });
    expect(await left("young-")).toEqual({ notifications: 4, events: 4, feed: 4, outbox: 4, dead_letters: 4, receipts: 4 });
    expect(await left("live-")).toMatchObject({ notifications: 8, events: 8, feed: 8, outbox: 8 });
    expect((await db.pool.query("SELECT 1 FROM outbox WHERE notification_id IS NULL")).rowCount).toBe(1);

    expect(await metricValue(registry, "herald_retention_purged_total", { table: "notifications" })).toBe(25);
    expect(await metricValue(registry, "herald_retention_purged_total", { table: "status_events" })).toBe(25);
    expect(await metricValue(registry, "herald_retention_purged_total", { table: "outbox" })).toBe(25);
    expect(await metricValue(registry, "herald_retention_purged_total", { table: "notify_requests" })).toBe(9);
    expect(lines.filter((l) => l.msg === "retention purged expired notifications")).toEqual([
      expect.objectContaining({ notifications: 25, statusEvents: 25, outbox: 25, notifyRequests: 9, batches: 4 }) as unknown,
    ]);

    // Nothing left to do: one empty batch.
    expect(await purger.runRound()).toEqual({ notifications: 0, statusEvents: 0, outbox: 0, notifyRequests: 0, batches: 1, busy: false });
    await purger.close();
  });

  it("leaves the work to the purger holding the lock: another finds it busy and deletes nothing", async () => {
    await seed("locked-", 3, Status.SENT, 60);
    const holder = await db.pool.connect();
    try {
      await holder.query("BEGIN");
      await holder.query("SELECT pg_advisory_xact_lock($1)", [PURGE_LOCK_KEY]);
      const purger = createPurger({ pool: db.pool, log: quiet, retentionMs: 30 * DAY, batchSize: 500, pauseMs: 0 });
      expect(await purger.runRound()).toMatchObject({ notifications: 0, busy: true });
      expect((await left("locked-")).notifications).toBe(3);
    } finally {
      await holder.query("ROLLBACK");
      holder.release();
    }
  });

  it("skips a row another transaction holds (a receipt or redrive in flight) and takes it next round", async () => {
    await seed("held-", 2, Status.SENT, 60);
    const holder = await db.pool.connect();
    const purger = createPurger({ pool: db.pool, log: quiet, retentionMs: 30 * DAY, batchSize: 500, pauseMs: 0 });
    try {
      await holder.query("BEGIN");
      await holder.query("SELECT id FROM notifications WHERE user_id = 'held-1' FOR UPDATE");
      await purger.runRound();
      expect((await left("held-")).notifications).toBe(1);
    } finally {
      await holder.query("ROLLBACK");
      holder.release();
    }
    await purger.runRound();
    expect((await left("held-")).notifications).toBe(0);
  });

  it("waits and says so while the database cannot be reached, and counts the failures", async () => {
    const nowhere = createPool({ url: "postgres://postgres@127.0.0.1:1/none", max: 1, connectTimeoutMs: 200 });
    nowhere.on("error", () => {});
    const registry = createMetricsRegistry();
    const lines: Array<Record<string, unknown>> = [];
    const log = pino({ level: "info" }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
    const purger = createPurger({ pool: nowhere, log, retentionMs: DAY, batchSize: 10, pauseMs: 0, everyMs: 50, metrics: createRetentionMetrics(registry) });
    purger.start();
    await waitFor("the outage logged", () => lines.find((l) => l.msg === "retention purge cannot reach the database; waiting"));
    await waitFor("two failed batches counted", async () => (await metricValue(registry, "herald_retention_errors_total")) >= 2);
    await purger.close();
    await nowhere.end();
    expect(lines.filter((l) => l.msg === "retention purge cannot reach the database; waiting")).toHaveLength(1);
  });
});
