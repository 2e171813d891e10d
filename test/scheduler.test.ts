import { createHash, randomBytes } from "node:crypto";
import { Writable } from "node:stream";
import { create, fromBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { pino } from "pino";
import { uuidv7 } from "uuidv7";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DispatchSchema } from "../gen/herald/v1/dispatch_pb.js";
import { Channel, NotificationSpecSchema, Status, StatusEventSchema } from "../gen/herald/v1/notification_pb.js";
import { createScheduler } from "../src/scheduler/scheduler.js";
import { dispatchRecord } from "../src/outbox/records.js";
import type { NotificationRow } from "../src/store/rows.js";
import { createPool } from "../src/store/db.js";
import type { AcceptInput } from "../src/store/accept-statement.js";
import { createNotificationStore, type NotificationStore } from "../src/store/notifications.js";
import { createTestDatabase, type TestDatabase } from "./support/db.js";
import { waitFor } from "./support/wait.js";

const log = pino({ level: "silent" });
let db: TestDatabase;
let store: NotificationStore;

beforeAll(async () => {
  db = await createTestDatabase("herald_sched");
  store = createNotificationStore({ pool: db.pool, commit: { maxBatch: 256, maxDelayMs: 2 }, log });
});
afterAll(async () => {
  await store?.close();
  await db?.drop();
});

const newTenant = (): string => `t${randomBytes(4).toString("hex")}`;

/** Accepts a SCHEDULED notification due at `deliverAt`; returns its id. */
async function schedule(tenant: string, deliverAt: Date, status = Status.SCHEDULED): Promise<string> {
  const now = new Date();
  const input: AcceptInput = {
    tenant,
    id: uuidv7(),
    spec: create(NotificationSpecSchema, {
      channel: Channel.SMS,
      recipient: { userId: "user-7", address: { case: "phone", value: "+14155550100" } },
      body: { case: "content", value: { text: "Your code is 123456" } },
    }),
    idempotencyKey: "",
    requestHash: createHash("sha256").update("r").digest(),
    correlationId: "corr-s",
    status: status as Status.QUEUED | Status.SCHEDULED,
    deliverAt,
    maxAttempts: 4,
    now,
  };
  const outcome = await store.accept(input);
  if (outcome.kind !== "created") throw new Error(`not created: ${outcome.kind}`);
  return input.id;
}

interface EventRow {
  sequence: number;
  status: Status;
  attempt: number;
  detail: string;
  created_at: Date;
}

async function eventsOf(id: string): Promise<EventRow[]> {
  const r = await db.pool.query<EventRow>(
    "SELECT sequence, status, attempt, detail, created_at FROM status_events WHERE notification_id = $1 ORDER BY sequence",
    [id],
  );
  return r.rows;
}

async function outboxOf(id: string) {
  const r = await db.pool.query<{ topic: string; key: string; value: Buffer; headers: Record<string, string> }>(
    "SELECT topic, key, value, headers FROM outbox WHERE notification_id = $1 ORDER BY id",
    [id],
  );
  return r.rows;
}

/** Per QUEUED notification of `tenant`: its events and records, grouped: one row when all agree. */
async function releasedOnce(tenant: string) {
  const counts = await db.pool.query<{ events: number; queued: number; dispatches: number; statuses: number; n: number }>(
    `SELECT e.events, e.queued, o.dispatches, o.statuses, count(*)::int AS n
     FROM notifications n
     JOIN LATERAL (SELECT count(*)::int AS events, count(*) FILTER (WHERE status = $2)::int AS queued
                   FROM status_events WHERE notification_id = n.id) e ON true
     JOIN LATERAL (SELECT count(*) FILTER (WHERE topic = 'herald.sms')::int AS dispatches,
                          count(*) FILTER (WHERE topic = 'herald.status')::int AS statuses
                   FROM outbox WHERE notification_id = n.id) o ON true
     WHERE n.tenant = $1 AND n.status = $2
     GROUP BY 1, 2, 3, 4`,
    [tenant, Status.QUEUED],
  );
  return counts.rows;
}

const ago = (ms: number): Date => new Date(Date.now() - ms);

describe("scheduler", () => {
  it("releases due SCHEDULED rows with their events and outbox records; leaves the rest", async () => {
    const tenant = newTenant();
    const due = await Promise.all([schedule(tenant, ago(2_000)), schedule(tenant, ago(1_000))]);
    const later = await schedule(tenant, new Date(Date.now() + 3_600_000));
    const scheduler = createScheduler({ pool: db.pool, log, batchSize: 100, pollMs: 200 });

    expect(await scheduler.tick()).toBe(2);
    for (const id of due) {
      const row = await db.pool.query("SELECT status, last_sequence FROM notifications WHERE id = $1", [id]);
      expect(row.rows[0]).toEqual({ status: Status.QUEUED, last_sequence: 2 });
      expect((await eventsOf(id)).map((e) => [e.sequence, e.status, e.attempt, e.detail])).toEqual([
        [1, Status.SCHEDULED, 0, "accepted"],
        [2, Status.QUEUED, 0, "released"],
      ]);
      const [accepted, dispatch, released, ...rest] = await outboxOf(id);
      expect(rest).toEqual([]);
      expect(accepted?.topic).toBe("herald.status");
      expect(dispatch).toMatchObject({
        topic: "herald.sms",
        key: `${tenant}/user-7`,
        headers: { tenant, "correlation-id": "corr-s", attempt: "1" },
      });
      expect(fromBinary(DispatchSchema, dispatch!.value)).toMatchObject({ notificationId: id, tenant, attempt: 1 });
      // The release leaves the spec in PostgreSQL and frames it there: the record must still be
      // byte for byte what records.ts builds from the whole row, as accept does.
      const stored = await db.pool.query<NotificationRow>("SELECT * FROM notifications WHERE id = $1", [id]);
      expect(dispatch!.value).toEqual(Buffer.from(dispatchRecord(stored.rows[0]!, 1).value));
      expect(fromBinary(DispatchSchema, dispatch!.value).notification).toEqual(fromBinary(NotificationSpecSchema, stored.rows[0]!.spec));
      expect(released).toMatchObject({ topic: "herald.status", key: id, headers: { tenant, "correlation-id": "corr-s" } });
      expect(fromBinary(StatusEventSchema, released!.value)).toMatchObject({
        sequence: 2,
        status: Status.QUEUED,
        detail: "released",
        time: timestampFromDate((await eventsOf(id))[1]!.created_at),
      });
    }
    expect((await eventsOf(later)).map((e) => e.status)).toEqual([Status.SCHEDULED]);
    expect((await outboxOf(later)).map((r) => r.topic)).toEqual(["herald.status"]);
    expect(await scheduler.tick()).toBe(0);
    await scheduler.close();
  });

  it("releases due RETRYING rows for the next attempt", async () => {
    const tenant = newTenant();
    const id = await schedule(tenant, new Date(), Status.QUEUED);
    // As a worker leaves it after two failed attempts.
    await db.pool.query(
      "UPDATE notifications SET status = $2, attempts = 2, last_sequence = 5, next_attempt_at = $3 WHERE id = $1",
      [id, Status.RETRYING, ago(10)],
    );
    const notYet = await schedule(tenant, new Date(), Status.QUEUED);
    await db.pool.query("UPDATE notifications SET status = $2, attempts = 1, next_attempt_at = $3 WHERE id = $1", [
      notYet,
      Status.RETRYING,
      new Date(Date.now() + 60_000),
    ]);
    const scheduler = createScheduler({ pool: db.pool, log, batchSize: 100, pollMs: 200 });
    expect(await scheduler.tick()).toBe(1);

    const row = await db.pool.query("SELECT status, last_sequence, next_attempt_at FROM notifications WHERE id = $1", [id]);
    expect(row.rows[0]).toEqual({ status: Status.QUEUED, last_sequence: 6, next_attempt_at: null });
    expect((await eventsOf(id)).at(-1)).toMatchObject({ sequence: 6, status: Status.QUEUED, attempt: 2, detail: "retry due" });
    const dispatches = (await outboxOf(id)).filter((r) => r.topic === "herald.sms");
    expect(dispatches.map((r) => r.headers.attempt)).toEqual(["1", "3"]);
    expect(fromBinary(DispatchSchema, dispatches[1]!.value).attempt).toBe(3);
    const untouched = await db.pool.query("SELECT status FROM notifications WHERE id = $1", [notYet]);
    expect(untouched.rows[0]).toEqual({ status: Status.RETRYING });
    await scheduler.close();
  });

  it("two schedulers at once release each of 500 due rows exactly once", async () => {
    const tenant = newTenant();
    await Promise.all(Array.from({ length: 500 }, () => schedule(tenant, ago(1_000))));
    // Separate pools, as two processes would have.
    const pools = [createPool({ url: db.url, max: 2 }), createPool({ url: db.url, max: 2 })];
    const schedulers = pools.map((pool) => createScheduler({ pool, log, batchSize: 40, pollMs: 200 }));
    const drain = async (s: (typeof schedulers)[number]): Promise<number> => {
      let total = 0;
      for (let n = await s.tick(); n > 0; n = await s.tick()) total += n;
      return total;
    };
    const released = await Promise.all(schedulers.map(drain));
    expect(released[0]! + released[1]!).toBe(500);

    expect(await releasedOnce(tenant)).toEqual([{ events: 2, queued: 1, dispatches: 1, statuses: 2, n: 500 }]);
    await Promise.all(schedulers.map((s) => s.close()));
    await Promise.all(pools.map((p) => p.end()));
  });

  it("a started scheduler drains a burst in overlapping batches, each row exactly once", async () => {
    const tenant = newTenant();
    await Promise.all(Array.from({ length: 300 }, () => schedule(tenant, ago(1_000))));
    const pool = createPool({ url: db.url, max: 4 });
    let busy = 0;
    let mostBusy = 0;
    pool.on("acquire", () => (mostBusy = Math.max(mostBusy, ++busy)));
    pool.on("release", () => busy--);
    const scheduler = createScheduler({ pool, log, batchSize: 25, pollMs: 200 });
    scheduler.start();
    await expect
      .poll(async () => (await db.pool.query("SELECT 1 FROM notifications WHERE tenant = $1 AND status = $2", [tenant, Status.SCHEDULED])).rowCount, {
        timeout: 10_000,
        interval: 50,
      })
      .toBe(0);
    await scheduler.close();
    await pool.end();
    // The next batch locked its rows while the one before was still being written.
    expect(mostBusy).toBeGreaterThanOrEqual(2);
    expect(await releasedOnce(tenant)).toEqual([{ events: 2, queued: 1, dispatches: 1, statuses: 2, n: 300 }]);
  });

  it("a started scheduler releases a row once it is due, not before", async () => {
    const scheduler = createScheduler({ pool: db.pool, log, batchSize: 100, pollMs: 200 });
    scheduler.start();
    const deliverAt = new Date(Date.now() + 1_500);
    const id = await schedule(newTenant(), deliverAt);
    const released: EventRow = await waitFor("the release", async () => (await eventsOf(id)).find((e) => e.status === Status.QUEUED));
    await scheduler.close();
    // How soon after its time is the loop's property, tested with an injected clock in
    // test/unit/release-records.test.ts; measured here it would measure the machine.
    expect(released.created_at.getTime()).toBeGreaterThanOrEqual(deliverAt.getTime());
  });

  it("keeps going through a database outage, logging once, and closes without hanging", async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const pool = createPool({ url: "postgres://postgres@127.0.0.1:1/herald", connectTimeoutMs: 500 });
    let tries = 0;
    // Counted as pg's pool.query reaches it too (with a callback), so every argument passes through.
    const connect = pool.connect.bind(pool) as (...args: unknown[]) => unknown;
    pool.connect = ((...args: unknown[]) => (tries++, connect(...args))) as typeof pool.connect;
    const scheduler = createScheduler({ pool, log: pino({ level: "info" }, sink), batchSize: 10, pollMs: 20 });
    scheduler.start();
    scheduler.start(); // no second loop
    await waitFor("several failed ticks", () => tries >= 3);
    // Closes without hanging (a hang would time the test out).
    await Promise.all([scheduler.close(), scheduler.close()]);
    const errors = lines.map((l) => JSON.parse(l) as { level: number; msg: string }).filter((l) => l.level >= 40);
    expect(errors).toHaveLength(1);
    expect(errors[0]!.msg).toMatch(/scheduler tick failed/);
    await pool.end();
  });
});
