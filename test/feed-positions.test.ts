import { randomUUID } from "node:crypto";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type pg from "pg";
import { pino } from "pino";
import { uuidv7 } from "uuidv7";
import { afterEach, describe, expect, it } from "vitest";
import { Channel, NotificationSpecSchema, Priority, Status, StatusEventSchema, type StatusEvent } from "../gen/herald/v1/notification_pb.js";
import type { WatchSelection } from "../src/domain/watch-request.js";
import { FEED_POSITION_HEADER, type FeedEvent } from "../src/feed/feed-event.js";
import type { KafkaRecord } from "../src/kafka/kafka.js";
import type { RecordSink } from "../src/relay/publish.js";
import { createRelay } from "../src/relay/relay.js";
import { createNotificationStore, type NotificationStore } from "../src/store/notifications.js";
import type { NotificationRow } from "../src/store/rows.js";
import { transitionWrites, writeTransitions } from "../src/store/transitions.js";
import { createStatusFeedStore } from "../src/feed/feed-store.js";
import { assignFeedPositions, type FeedAssignInput } from "../src/feed/positions.js";
import { createTestDatabase, type TestDatabase } from "./support/db.js";

// Feed positions on real PostgreSQL: assignFeedPositions (as the relay leader runs it), the
// StatusFeedStore reads API instances make, and the relay publishing herald.status records
// with their positions. Each test has a database of its own: status_feed.head is global.

const log = pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" });

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn().catch(() => {});
});

interface Env {
  db: TestDatabase;
  pool: pg.Pool;
  store: NotificationStore;
}

async function setup(): Promise<Env> {
  const db = await createTestDatabase("herald_feedpos");
  cleanups.push(() => db.drop());
  const store = createNotificationStore({ pool: db.pool, commit: { maxBatch: 64, maxDelayMs: 1 }, log });
  cleanups.push(() => store.close());
  return { db, pool: db.pool, store };
}

interface NotificationInit {
  tenant: string;
  userId: string;
  channel?: Channel.EMAIL | Channel.SMS;
  status?: Status.QUEUED | Status.SCHEDULED;
}

/** Accepts one notification through the real store (its first event and outbox rows); returns its id. */
async function accept(env: Env, init: NotificationInit): Promise<string> {
  const channel = init.channel ?? Channel.EMAIL;
  const now = new Date();
  const id = uuidv7();
  const outcome = await env.store.accept({
    tenant: init.tenant,
    id,
    spec: create(NotificationSpecSchema, {
      channel,
      recipient: {
        userId: init.userId,
        address: channel === Channel.SMS ? { case: "phone", value: "+14155550100" } : { case: "email", value: "ada@example.com" },
      },
      body: { case: "content", value: { text: "hello" } },
      priority: Priority.NORMAL,
    }),
    idempotencyKey: "",
    requestHash: Buffer.alloc(32),
    correlationId: `c-${id}`,
    status: init.status ?? Status.QUEUED,
    deliverAt: init.status === Status.SCHEDULED ? new Date(now.getTime() + 3_600_000) : now,
    maxAttempts: 3,
    now,
  });
  expect(outcome.kind).toBe("created");
  return id;
}

async function cancel(env: Env, tenant: string, id: string): Promise<void> {
  expect((await env.store.cancel(tenant, id, { now: new Date(), correlationId: "cancel" })).kind).toBe("canceled");
}

/** A transition to SENDING written as the worker would: row, status event and outbox in the caller's transaction. */
async function markSending(client: pg.ClientBase, id: string): Promise<void> {
  const { rows } = await client.query<NotificationRow>(
    `UPDATE notifications SET status = $2, attempts = attempts + 1, last_sequence = last_sequence + 1, updated_at = now()
     WHERE id = $1 RETURNING *`,
    [id, Status.SENDING],
  );
  await writeTransitions(client, [transitionWrites(rows[0]!, { detail: "attempt 1" })]);
}

/** The herald.status outbox rows' events, in outbox order: what the relay would number. */
async function statusOutbox(pool: pg.Pool): Promise<FeedAssignInput[]> {
  const { rows } = await pool.query<{ value: Buffer }>("SELECT value FROM outbox WHERE topic = 'herald.status' ORDER BY id");
  return rows.map((r) => {
    const e = fromBinary(StatusEventSchema, r.value);
    return { notificationId: e.notificationId, sequence: e.sequence };
  });
}

async function assign(pool: pg.Pool, inputs: readonly FeedAssignInput[]): Promise<(number | undefined)[]> {
  const client = await pool.connect();
  try {
    return await assignFeedPositions(client, inputs);
  } finally {
    client.release();
  }
}

async function head(pool: pg.Pool): Promise<number> {
  const { rows } = await pool.query<{ head: string }>("SELECT head FROM status_feed WHERE id = 1");
  return Number(rows[0]!.head);
}

/** status_feed_log, with the (notification, sequence) its event_position points at. */
async function feedLog(pool: pg.Pool) {
  const { rows } = await pool.query<{ position: string; tenant: string; user_id: string; notification_id: string; sequence: number; event_matches: boolean }>(
    `SELECT f.position, f.tenant, f.user_id, f.notification_id, e.sequence,
            (e.tenant = f.tenant AND e.user_id = f.user_id AND e.notification_id = f.notification_id) AS event_matches
     FROM status_feed_log f JOIN status_events e ON e.position = f.event_position ORDER BY f.position`,
  );
  return rows.map((r) => ({ position: Number(r.position), tenant: r.tenant, userId: r.user_id, notificationId: r.notification_id, sequence: r.sequence, eventMatches: r.event_matches }));
}

const ev = (notificationId: string, sequence = 1): FeedAssignInput => ({ notificationId, sequence });

describe("assignFeedPositions", () => {
  it("numbers new events densely from head + 1 in the order given, logging tenant, user and notification", async () => {
    const env = await setup();
    const n1 = await accept(env, { tenant: "acme", userId: "ada" });
    const n2 = await accept(env, { tenant: "acme", userId: "bob", channel: Channel.SMS });
    const n3 = await accept(env, { tenant: "globex", userId: "ada", status: Status.SCHEDULED });
    const first = await statusOutbox(env.pool);
    expect(first).toEqual([ev(n1), ev(n2), ev(n3)]);

    expect(await assign(env.pool, first)).toEqual([1, 2, 3]);
    expect(await head(env.pool)).toBe(3);

    await cancel(env, "acme", n1);
    const n4 = await accept(env, { tenant: "globex", userId: "carol" });
    const next = (await statusOutbox(env.pool)).slice(3);
    expect(next).toEqual([ev(n1, 2), ev(n4)]);
    expect(await assign(env.pool, next)).toEqual([4, 5]);
    expect(await head(env.pool)).toBe(5);

    expect(await feedLog(env.pool)).toEqual([
      { position: 1, tenant: "acme", userId: "ada", notificationId: n1, sequence: 1, eventMatches: true },
      { position: 2, tenant: "acme", userId: "bob", notificationId: n2, sequence: 1, eventMatches: true },
      { position: 3, tenant: "globex", userId: "ada", notificationId: n3, sequence: 1, eventMatches: true },
      { position: 4, tenant: "acme", userId: "ada", notificationId: n1, sequence: 2, eventMatches: true },
      { position: 5, tenant: "globex", userId: "carol", notificationId: n4, sequence: 1, eventMatches: true },
    ]);
  });

  it("gives known events their positions again without moving head, in any order", async () => {
    const env = await setup();
    for (const userId of ["ada", "bob", "carol"]) await accept(env, { tenant: "acme", userId });
    const events = await statusOutbox(env.pool);
    expect(await assign(env.pool, events)).toEqual([1, 2, 3]);

    expect(await assign(env.pool, events)).toEqual([1, 2, 3]);
    expect(await assign(env.pool, [events[2]!, events[0]!])).toEqual([3, 1]);
    expect(await head(env.pool)).toBe(3);
    expect((await feedLog(env.pool)).map((r) => r.position)).toEqual([1, 2, 3]);
  });

  it("mixing known and new events numbers only the new ones, in input order", async () => {
    const env = await setup();
    const [a, b, c, d, e] = [
      await accept(env, { tenant: "acme", userId: "u1" }),
      await accept(env, { tenant: "acme", userId: "u2" }),
      await accept(env, { tenant: "globex", userId: "u3" }),
      await accept(env, { tenant: "acme", userId: "u4" }),
      await accept(env, { tenant: "globex", userId: "u5" }),
    ];
    expect(await assign(env.pool, [ev(a), ev(b)])).toEqual([1, 2]);
    expect(await assign(env.pool, [ev(c), ev(a), ev(d), ev(b), ev(e)])).toEqual([3, 1, 4, 2, 5]);
    expect(await head(env.pool)).toBe(5);
    expect((await feedLog(env.pool)).map((r) => [r.position, r.notificationId])).toEqual([
      [1, a],
      [2, b],
      [3, c],
      [4, d],
      [5, e],
    ]);
  });

  it("an event without a status_events row gets no position and takes none; an empty batch changes nothing", async () => {
    const env = await setup();
    const a = await accept(env, { tenant: "acme", userId: "ada" });
    expect(await assign(env.pool, [])).toEqual([]);
    expect(await head(env.pool)).toBe(0);
    expect(await assign(env.pool, [ev(randomUUID()), ev(a), ev(a, 99)])).toEqual([undefined, 1, undefined]);
    expect(await head(env.pool)).toBe(1);
    expect(await assign(env.pool, [ev(randomUUID())])).toEqual([undefined]);
    expect(await head(env.pool)).toBe(1);
  });
});

describe("StatusFeedStore", () => {
  /**
   * Positions: 1 acme/ada/n1 EMAIL QUEUED, 2 acme/ada/n2 SMS QUEUED, 3 globex/ada/n4 EMAIL QUEUED,
   * 4 acme/bob/n3 EMAIL SCHEDULED, 5 acme/ada/n1 EMAIL CANCELED (sequence 2).
   */
  async function dataset() {
    const env = await setup();
    const n1 = await accept(env, { tenant: "acme", userId: "ada" });
    const n2 = await accept(env, { tenant: "acme", userId: "ada", channel: Channel.SMS });
    const n4 = await accept(env, { tenant: "globex", userId: "ada" });
    const n3 = await accept(env, { tenant: "acme", userId: "bob", status: Status.SCHEDULED });
    await cancel(env, "acme", n1);
    expect(await assign(env.pool, await statusOutbox(env.pool))).toEqual([1, 2, 3, 4, 5]);
    return { env, feedStore: createStatusFeedStore({ pool: env.pool }), n1, n2, n3, n4 };
  }

  const sel = (tenant: string, over: Partial<WatchSelection> = {}): WatchSelection => ({ tenant, statuses: new Set(), channels: new Set(), ...over });
  const at = (events: FeedEvent[]) => events.map((e) => e.position);

  it("read() keeps to the tenant, the selector and the filters", async () => {
    const { feedStore, n1 } = await dataset();
    const read = async (s: WatchSelection) => at(await feedStore.read(s, 0, 5, 100));

    expect(await read(sel("acme"))).toEqual([1, 2, 4, 5]);
    expect(await read(sel("globex"))).toEqual([3]);
    expect(await read(sel("initech"))).toEqual([]);
    expect(await read(sel("acme", { userId: "ada" }))).toEqual([1, 2, 5]);
    expect(await read(sel("globex", { userId: "ada" }))).toEqual([3]);
    expect(await read(sel("acme", { userId: "Ada" }))).toEqual([]);
    expect(await read(sel("acme", { notificationId: n1 }))).toEqual([1, 5]);
    // Another tenant's notification id reads nothing.
    expect(await read(sel("globex", { notificationId: n1 }))).toEqual([]);

    expect(await read(sel("acme", { statuses: new Set([Status.CANCELED]) }))).toEqual([5]);
    expect(await read(sel("acme", { statuses: new Set([Status.QUEUED, Status.SCHEDULED]) }))).toEqual([1, 2, 4]);
    expect(await read(sel("acme", { channels: new Set([Channel.SMS]) }))).toEqual([2]);
    expect(await read(sel("acme", { channels: new Set([Channel.EMAIL]), statuses: new Set([Status.QUEUED]) }))).toEqual([1]);
    expect(await read(sel("acme", { userId: "ada", channels: new Set([Channel.EMAIL]) }))).toEqual([1, 5]);
    expect(await read(sel("acme", { notificationId: n1, statuses: new Set([Status.SENT]) }))).toEqual([]);
  });

  it("read() returns (after, upTo], at most `limit`, in position order, with the events as stored", async () => {
    const { env, feedStore, n1 } = await dataset();
    const acme = sel("acme");
    expect(at(await feedStore.read(acme, 1, 4, 100))).toEqual([2, 4]);
    expect(at(await feedStore.read(acme, 0, 1, 100))).toEqual([1]);
    expect(at(await feedStore.read(acme, 4, 5, 100))).toEqual([5]);
    expect(at(await feedStore.read(acme, 2, 2, 100))).toEqual([]);
    expect(at(await feedStore.read(acme, 5, 100, 100))).toEqual([]);
    expect(at(await feedStore.read(acme, 0, 5, 2))).toEqual([1, 2]);
    expect(at(await feedStore.read(acme, 2, 5, 1))).toEqual([4]);

    const events = await feedStore.read(sel("acme", { notificationId: n1 }), 0, 5, 100);
    const stored = await env.store.get("acme", n1);
    expect(events.map((e) => ({ position: e.position, tenant: e.tenant, event: e.event }))).toEqual([
      { position: 1, tenant: "acme", event: stored!.history[0] },
      { position: 5, tenant: "acme", event: stored!.history[1] },
    ]);
    expect(events.map((e): Partial<StatusEvent> => ({ status: e.event.status, sequence: e.event.sequence, detail: e.event.detail }))).toEqual([
      { status: Status.QUEUED, sequence: 1, detail: "accepted" },
      { status: Status.CANCELED, sequence: 2, detail: "canceled" },
    ]);
  });

  it("between() returns every tenant's events strictly between its bounds, at most `limit`; head() is the last position", async () => {
    const { feedStore, n4 } = await dataset();
    expect(await feedStore.head()).toBe(5);
    const all = await feedStore.between(0, 6, 100);
    expect(all.map((e) => [e.position, e.tenant])).toEqual([
      [1, "acme"],
      [2, "acme"],
      [3, "globex"],
      [4, "acme"],
      [5, "acme"],
    ]);
    expect(all[2]!.event.notificationId).toBe(n4);
    expect(at(await feedStore.between(2, 5, 100))).toEqual([3, 4]);
    expect(at(await feedStore.between(0, 6, 2))).toEqual([1, 2]);
    expect(at(await feedStore.between(3, 4, 100))).toEqual([]);
    expect(at(await feedStore.between(5, 100, 100))).toEqual([]);
  });

  it("head() is 0 before any position is assigned", async () => {
    const env = await setup();
    expect(await createStatusFeedStore({ pool: env.pool }).head()).toBe(0);
  });
});

describe("relay: feed positions on herald.status records", () => {
  interface Sent {
    topic: string;
    position: string | undefined;
    notificationId?: string;
    sequence?: number;
    headers: Record<string, string>;
  }

  /** A sink that keeps what it is sent, per batch, and can be told to fail. */
  function sink() {
    const batches: Sent[][] = [];
    let failing = false;
    const producer: RecordSink = {
      async sendBatch(records: readonly KafkaRecord[]) {
        if (failing) throw new Error("broker unreachable");
        batches.push(
          records.map((r) => {
            const sent: Sent = { topic: r.topic, position: r.headers[FEED_POSITION_HEADER], headers: r.headers };
            if (r.topic === "herald.status") {
              const e = fromBinary(StatusEventSchema, r.value);
              Object.assign(sent, { notificationId: e.notificationId, sequence: e.sequence });
            }
            return sent;
          }),
        );
      },
    };
    return { producer, batches, fail: (on: boolean) => (failing = on) };
  }

  function relay(env: Env, producer: RecordSink) {
    const r = createRelay({ pool: env.pool, producer, log, batchSize: 100, pollMs: 60_000, closeTimeoutMs: 1000 });
    cleanups.push(() => r.close());
    return r;
  }

  const statusOnly = (batch: Sent[]) => batch.filter((s) => s.topic === "herald.status");

  it("status records carry their position, in position order, after the batch's other records", async () => {
    const env = await setup();
    const ids = [
      await accept(env, { tenant: "acme", userId: "ada" }),
      await accept(env, { tenant: "globex", userId: "bob", channel: Channel.SMS }),
      await accept(env, { tenant: "acme", userId: "carol", status: Status.SCHEDULED }),
    ];
    const out = sink();
    expect(await relay(env, out.producer).runOnce()).toBe(5); // two dispatches, three status records

    const [batch] = out.batches;
    expect(batch!.map((s) => [s.topic, s.position])).toEqual([
      ["herald.email", undefined],
      ["herald.sms", undefined],
      ["herald.status", "1"],
      ["herald.status", "2"],
      ["herald.status", "3"],
    ]);
    expect(statusOnly(batch!).map((s) => s.notificationId)).toEqual(ids);
    // The record's other headers are kept.
    expect(statusOnly(batch!)[1]!.headers).toEqual({ tenant: "globex", "correlation-id": `c-${ids[1]}`, [FEED_POSITION_HEADER]: "2" });
    expect((await feedLog(env.pool)).map((r) => [r.position, r.notificationId])).toEqual(ids.map((id, i) => [i + 1, id]));
  });

  it("a republished batch carries the same positions and does not move head", async () => {
    const env = await setup();
    await accept(env, { tenant: "acme", userId: "ada" });
    await accept(env, { tenant: "acme", userId: "bob" });
    const out = sink();
    const r = relay(env, out.producer);
    expect(await r.runOnce()).toBe(4);
    // As after a crash between publish and mark.
    await env.pool.query("UPDATE outbox SET published_at = NULL");
    expect(await r.runOnce()).toBe(4);

    expect(out.batches).toHaveLength(2);
    expect(statusOnly(out.batches[1]!)).toEqual(statusOnly(out.batches[0]!));
    expect(statusOnly(out.batches[1]!).map((s) => s.position)).toEqual(["1", "2"]);
    expect(await head(env.pool)).toBe(2);
  });

  it("a row numbered by a failed batch keeps its position when a lower outbox id commits later, and goes out first", async () => {
    const env = await setup();
    const early = await accept(env, { tenant: "acme", userId: "ada" });
    const late = await accept(env, { tenant: "acme", userId: "bob" });
    const out = sink();
    const r = relay(env, out.producer);
    expect(await r.runOnce()).toBe(4); // positions 1 and 2: the QUEUED events

    // `early` draws the lower outbox id but commits last.
    const slow = await env.pool.connect();
    cleanups.push(async () => slow.release());
    await slow.query("BEGIN");
    await markSending(slow, early);
    const fast = await env.pool.connect();
    try {
      await fast.query("BEGIN");
      await markSending(fast, late);
      await fast.query("COMMIT");
    } finally {
      fast.release();
    }

    out.fail(true);
    await expect(r.runOnce()).rejects.toThrow("publish failed"); // `late` got position 3, unpublished
    expect(await head(env.pool)).toBe(3);
    await slow.query("COMMIT");

    out.fail(false);
    expect(await r.runOnce()).toBe(2);
    const { rows } = await env.pool.query<{ notification_id: string }>(
      "SELECT notification_id FROM outbox WHERE topic = 'herald.status' ORDER BY id DESC LIMIT 2",
    );
    expect(rows.map((row) => row.notification_id)).toEqual([late, early]); // outbox order: early, then late
    expect(statusOnly(out.batches[1]!).map((s) => [s.notificationId, s.sequence, s.position])).toEqual([
      [late, 2, "3"],
      [early, 2, "4"],
    ]);
    expect(await head(env.pool)).toBe(4);
  });

  it("a status record whose event has no status_events row goes out last, without a position", async () => {
    const env = await setup();
    const known = await accept(env, { tenant: "acme", userId: "ada", status: Status.SCHEDULED });
    // An event with no status_events row, at the lowest outbox id: going out last is the relay's doing.
    const orphan = create(StatusEventSchema, { notificationId: randomUUID(), sequence: 1, status: Status.SENT, userId: "x" });
    await env.pool.query("INSERT INTO outbox (id, topic, key, value, headers) VALUES (0, 'herald.status', 'k', $1, $2)", [
      Buffer.from(toBinary(StatusEventSchema, orphan)),
      { tenant: "acme" },
    ]);
    const out = sink();
    expect(await relay(env, out.producer).runOnce()).toBe(2);
    expect(out.batches[0]!.map((s) => [s.notificationId, s.position])).toEqual([
      [known, "1"],
      [orphan.notificationId, undefined],
    ]);
  });
});
