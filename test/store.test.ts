import { createHash, randomBytes } from "node:crypto";
import { create, equals, fromBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import pg from "pg";
import { pino } from "pino";
import { uuidv7 } from "uuidv7";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DispatchSchema } from "../gen/herald/v1/dispatch_pb.js";
import {
  Channel,
  NotificationSpecSchema,
  Priority,
  Status,
  StatusEventSchema,
  type NotificationSpec,
} from "../gen/herald/v1/notification_pb.js";
import { OUTBOX_CHANNEL } from "../src/outbox/channel.js";
import { createPool } from "../src/store/db.js";
import { InvalidInputError, UnavailableError } from "../src/errors.js";
import type { AcceptInput } from "../src/store/accept-statement.js";
import { createNotificationStore, type NotificationStore } from "../src/store/notifications.js";
import { createTestDatabase, type TestDatabase } from "./support/db.js";

const log = pino({ level: "silent" });
let db: TestDatabase;
let store: NotificationStore;

beforeAll(async () => {
  db = await createTestDatabase("herald_store");
  store = createNotificationStore({ pool: db.pool, commit: { maxBatch: 256, maxDelayMs: 2 }, log });
});
afterAll(async () => {
  await store?.close();
  await db?.drop();
});

// The plain-object form of the init shape, so overrides can be spread.
type SpecInit = Exclude<MessageInitShape<typeof NotificationSpecSchema>, NotificationSpec>;

const spec = (over: Partial<SpecInit> = {}) =>
  create(NotificationSpecSchema, {
    channel: Channel.EMAIL,
    recipient: { userId: "user-1", address: { case: "email", value: "ada@example.com" } },
    body: { case: "content", value: { subject: "Hello", text: "Hi Ada" } },
    priority: Priority.HIGH,
    labels: { team: "growth" },
    ...over,
  });

const hash = (s: string): Buffer => createHash("sha256").update(s).digest();
const newTenant = (): string => `t${randomBytes(4).toString("hex")}`;

function input(over: Partial<AcceptInput> = {}): AcceptInput {
  const now = new Date();
  return {
    tenant: "acme",
    id: uuidv7(),
    spec: spec(),
    idempotencyKey: "",
    requestHash: hash("request"),
    correlationId: "req-1",
    status: Status.QUEUED,
    deliverAt: now,
    maxAttempts: 4,
    now,
    ...over,
  };
}

interface OutboxRow {
  id: string;
  topic: string;
  key: string;
  value: Buffer;
  headers: Record<string, string>;
  notification_id: string;
  published_at: Date | null;
}

async function outboxOf(id: string): Promise<OutboxRow[]> {
  const r = await db.pool.query<OutboxRow>("SELECT * FROM outbox WHERE notification_id = $1 ORDER BY id", [id]);
  return r.rows;
}

async function countFor(tenant: string): Promise<{ rows: number; events: number; outbox: number }> {
  const r = await db.pool.query<{ rows: number; events: number; outbox: number }>(
    `SELECT (SELECT count(*)::int FROM notifications WHERE tenant = $1) AS rows,
            (SELECT count(*)::int FROM status_events WHERE tenant = $1) AS events,
            (SELECT count(*)::int FROM outbox o JOIN notifications n ON n.id = o.notification_id WHERE n.tenant = $1) AS outbox`,
    [tenant],
  );
  return r.rows[0]!;
}

describe("accept", () => {
  it("writes the row, its first event and the exact outbox records in one transaction", async () => {
    const tenant = newTenant();
    const i = input({ tenant, correlationId: "corr-42", idempotencyKey: "k1" });
    const outcome = await store.accept(i);
    expect(outcome.kind).toBe("created");
    if (outcome.kind !== "created") return;
    const n = outcome.notification;
    expect(n.id).toBe(i.id);
    expect(n.status).toBe(Status.QUEUED);
    expect(n.channel).toBe(Channel.EMAIL);
    expect(n.recipient?.userId).toBe("user-1");
    expect(n.body).toEqual(i.spec.body);
    expect(n.labels).toEqual({ team: "growth" });
    expect(n.priority).toBe(Priority.HIGH);
    expect(n.idempotencyKey).toBe("k1");
    expect(timestampDate(n.createTime!).getTime()).toBe(i.now.getTime());

    const row = (
      await db.pool.query(
        "SELECT *, xmin::text AS tx FROM notifications WHERE id = $1",
        [i.id],
      )
    ).rows[0] as Record<string, unknown>;
    expect(row).toMatchObject({ tenant, channel: Channel.EMAIL, user_id: "user-1", status: Status.QUEUED, last_sequence: 1 });
    expect(equals(NotificationSpecSchema, fromBinary(NotificationSpecSchema, row.spec as Buffer), i.spec)).toBe(true);

    const events = (
      await db.pool.query("SELECT *, xmin::text AS tx FROM status_events WHERE notification_id = $1", [i.id])
    ).rows as Record<string, unknown>[];
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ sequence: 1, status: Status.QUEUED, attempt: 0, detail: "accepted", tx: row.tx });

    const [dispatch, status, ...rest] = await outboxOf(i.id);
    expect(rest).toEqual([]);
    expect(dispatch).toMatchObject({
      // The input is PRIORITY_HIGH: its Dispatch goes on the channel's high lane.
      topic: "herald.email.high",
      key: `${tenant}/user-1`,
      headers: { tenant, "correlation-id": "corr-42", attempt: "1" },
      published_at: null,
    });
    const d = fromBinary(DispatchSchema, dispatch!.value);
    expect(d).toMatchObject({ notificationId: i.id, tenant, attempt: 1, correlationId: "corr-42" });
    expect(equals(NotificationSpecSchema, d.notification!, i.spec)).toBe(true);
    expect(timestampDate(d.createTime!).getTime()).toBe(i.now.getTime());

    expect(status).toMatchObject({ topic: "herald.status", key: i.id, headers: { tenant, "correlation-id": "corr-42" } });
    const e = fromBinary(StatusEventSchema, status!.value);
    expect(e).toMatchObject({
      notificationId: i.id,
      sequence: 1,
      status: Status.QUEUED,
      attempt: 0,
      detail: "accepted",
      channel: Channel.EMAIL,
      userId: "user-1",
    });
    expect(timestampDate(e.time!).getTime()).toBe(i.now.getTime());
  });

  it("wakes the relay (NOTIFY herald_outbox) when the batch commits", async () => {
    const listener = new pg.Client({ connectionString: db.url });
    await listener.connect();
    try {
      await listener.query(`LISTEN ${OUTBOX_CHANNEL}`);
      const heard = new Promise<string>((resolve) => listener.on("notification", (m) => resolve(m.channel)));
      await store.accept(input());
      expect(await heard).toBe(OUTBOX_CHANNEL);
    } finally {
      await listener.end();
    }
  });

  it("a SCHEDULED accept writes only the herald.status record, and keeps its local time", async () => {
    const deliverAt = new Date(Date.now() + 3_600_000);
    const localTime = { dateTime: "2030-01-01T09:00:00", timeZone: "Europe/Berlin" };
    const i = input({ status: Status.SCHEDULED, deliverAt, localTime });
    const outcome = await store.accept(i);
    expect(outcome.kind).toBe("created");
    if (outcome.kind !== "created") return;
    expect(outcome.notification.status).toBe(Status.SCHEDULED);
    expect(timestampDate(outcome.notification.deliverTime!).getTime()).toBe(deliverAt.getTime());
    expect(outcome.notification.localTime).toMatchObject(localTime);
    const records = await outboxOf(i.id);
    expect(records.map((r) => r.topic)).toEqual(["herald.status"]);
    expect(fromBinary(StatusEventSchema, records[0]!.value).status).toBe(Status.SCHEDULED);
  });

  it("a repeat with the same key and request returns the first result, as stored now, and writes nothing", async () => {
    const tenant = newTenant();
    const first = input({ tenant, idempotencyKey: "same" });
    expect((await store.accept(first)).kind).toBe("created");
    const before = await countFor(tenant);
    expect(before).toEqual({ rows: 1, events: 1, outbox: 2 });
    await db.pool.query("UPDATE notifications SET status = $2 WHERE id = $1", [first.id, Status.SENT]);

    const again = await store.accept(input({ tenant, idempotencyKey: "same" }));
    expect(again.kind).toBe("duplicate");
    if (again.kind !== "duplicate") return;
    expect(again.notification.id).toBe(first.id);
    expect(again.notification.status).toBe(Status.SENT);
    expect(await countFor(tenant)).toEqual(before);
  });

  it("a repeat with the same key and a different request is a key conflict", async () => {
    const tenant = newTenant();
    expect((await store.accept(input({ tenant, idempotencyKey: "k", requestHash: hash("a") }))).kind).toBe("created");
    expect(await store.accept(input({ tenant, idempotencyKey: "k", requestHash: hash("b") }))).toEqual({
      kind: "key_conflict",
    });
    // Keys are per tenant: the same key elsewhere is a new notification.
    expect((await store.accept(input({ tenant: newTenant(), idempotencyKey: "k" }))).kind).toBe("created");
    expect(await countFor(tenant)).toEqual({ rows: 1, events: 1, outbox: 2 });
  });

  it("the same key twice in one batch behaves as if sequential", async () => {
    const tenant = newTenant();
    const a = input({ tenant, idempotencyKey: "dup" });
    const b = input({ tenant, idempotencyKey: "dup" });
    const c = input({ tenant, idempotencyKey: "dup", requestHash: hash("other") });
    // Submitted in the same tick, so they share one flush.
    const [ra, rb, rc] = await Promise.all([store.accept(a), store.accept(b), store.accept(c)]);
    expect(ra?.kind).toBe("created");
    expect(rb).toMatchObject({ kind: "duplicate", notification: { id: a.id } });
    expect(rc).toEqual({ kind: "key_conflict" });
    expect(await countFor(tenant)).toEqual({ rows: 1, events: 1, outbox: 2 });
  });

  it("200 concurrent accepts all commit, sharing a few transactions", async () => {
    const tenant = newTenant();
    const batched = createNotificationStore({ pool: db.pool, commit: { maxBatch: 50, maxDelayMs: 2 }, log });
    const inputs = Array.from({ length: 200 }, (_, k) =>
      input({ tenant, idempotencyKey: k % 2 === 0 ? `key-${k}` : "" }),
    );
    const outcomes = await Promise.all(inputs.map((i) => batched.accept(i)));
    await batched.close();
    expect(outcomes.every((o) => o.kind === "created")).toBe(true);
    expect(await countFor(tenant)).toEqual({ rows: 200, events: 200, outbox: 400 });

    // xmin is the id of the transaction that wrote a row: one per commit.
    const tx = await db.pool.query<{ txs: number }>(
      "SELECT count(DISTINCT xmin::text)::int AS txs FROM notifications WHERE tenant = $1",
      [tenant],
    );
    const txs = tx.rows[0]!.txs;
    expect(txs).toBeGreaterThanOrEqual(4); // maxBatch 50 caps a batch
    expect(txs).toBeLessThanOrEqual(8);
    // Each row's event and outbox records committed with it.
    const split = await db.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM notifications n
       JOIN status_events e ON e.notification_id = n.id
       JOIN outbox o ON o.notification_id = n.id
       WHERE n.tenant = $1 AND (e.xmin::text <> n.xmin::text OR o.xmin::text <> n.xmin::text)`,
      [tenant],
    );
    expect(split.rows[0]!.n).toBe(0);
    console.info(`200 concurrent accepts: ${txs} transactions, ${200 / txs} rows per transaction`);
  });

  it("two transactions in flight with the same keys in opposite orders: each key once, no batch failed", async () => {
    const tenant = newTenant();
    const warnings: string[] = [];
    const watched = pino({ level: "warn" }, { write: (line: string) => void warnings.push(line) });
    const overlapping = createNotificationStore({ pool: db.pool, commit: { maxBatch: 50, maxDelayMs: 1, maxInFlight: 2 }, log: watched });
    const keys = Array.from({ length: 50 }, (_, k) => `key-${k}`);
    // Two idle connections, so the second transaction does not start only after connecting.
    await Promise.all([db.pool.query("SELECT pg_sleep(0.01)"), db.pool.query("SELECT pg_sleep(0.01)")]);
    // Two full batches at once: both flush at the same time, each inserting all 50 keys.
    const first = keys.map((key) => input({ tenant, idempotencyKey: key }));
    const second = [...keys].reverse().map((key) => input({ tenant, idempotencyKey: key }));
    const outcomes = await Promise.all([...first, ...second].map((i) => overlapping.accept(i)));
    await overlapping.close();
    expect(warnings).toEqual([]); // a failed batch (a deadlock, say) is logged and retried in halves
    const byKey = new Map<string, string[]>();
    [...first, ...second].forEach((i, n) => {
      const o = outcomes[n]!;
      expect(o.kind).not.toBe("key_conflict");
      if (o.kind !== "key_conflict") byKey.set(i.idempotencyKey, [...(byKey.get(i.idempotencyKey) ?? []), o.notification.id]);
    });
    for (const ids of byKey.values()) expect(new Set(ids).size).toBe(1);
    expect(outcomes.filter((o) => o.kind === "created")).toHaveLength(50);
    expect(await countFor(tenant)).toEqual({ rows: 50, events: 50, outbox: 100 });
  });

  it("an input PostgreSQL refuses fails alone, not the batch it shares", async () => {
    const tenant = newTenant();
    const good = Array.from({ length: 9 }, () => input({ tenant }));
    const nul = input({ tenant, spec: spec({ labels: { team: "a\u0000b" } }) });
    const surrogate = input({ tenant, spec: spec({ recipient: { userId: "x\ud800" } }) });
    const badId = input({ tenant, id: "not-a-uuid" });
    const results = await Promise.allSettled([...good, nul, surrogate, badId].map((i) => store.accept(i)));
    expect(results.slice(0, 9).every((r) => r.status === "fulfilled" && r.value.kind === "created")).toBe(true);
    const [rNul, rSurrogate, rBad] = results.slice(9);
    expect((rNul as PromiseRejectedResult).reason).toBeInstanceOf(InvalidInputError);
    expect((rNul as PromiseRejectedResult).reason).toEqual(
      new InvalidInputError("notification.labels: must not contain NUL or unpaired surrogates"),
    );
    expect((rSurrogate as PromiseRejectedResult).reason).toEqual(
      new InvalidInputError("notification.recipient.user_id: must not contain NUL or unpaired surrogates"),
    );
    // Not caught up front: the batch failed, was split, and only this input's part failed.
    expect(rBad).toMatchObject({ status: "rejected", reason: { code: "22P02" } });
    expect(await countFor(tenant)).toEqual({ rows: 9, events: 9, outbox: 18 });
  });

  it("an unreachable database is UnavailableError, quickly", async () => {
    const pool = createPool({ url: "postgres://postgres@127.0.0.1:1/herald", connectTimeoutMs: 1000 });
    const down = createNotificationStore({ pool, commit: { maxBatch: 10, maxDelayMs: 2 }, log });
    const results = await Promise.allSettled([down.accept(input()), down.accept(input())]);
    for (const r of results) {
      expect(r.status).toBe("rejected");
      const reason = (r as PromiseRejectedResult).reason as UnavailableError;
      expect(reason).toBeInstanceOf(UnavailableError);
      expect(reason.cause).toHaveProperty("code", "ECONNREFUSED");
    }
    await expect(down.get("acme", uuidv7())).rejects.toBeInstanceOf(UnavailableError);
    await expect(down.cancel("acme", uuidv7(), { now: new Date(), correlationId: "c" })).rejects.toBeInstanceOf(
      UnavailableError,
    );
    await down.close();
    await pool.end();
  });

  it("close() flushes what waits, then refuses new work", async () => {
    const closing = createNotificationStore({ pool: db.pool, commit: { maxBatch: 100, maxDelayMs: 1_000 }, log });
    const pending = closing.accept(input());
    await closing.close();
    await closing.close(); // idempotent
    expect((await pending).kind).toBe("created");
    await expect(closing.accept(input())).rejects.toBeInstanceOf(UnavailableError);
    await expect(closing.get("acme", uuidv7())).rejects.toBeInstanceOf(UnavailableError);
  });
});

describe("get", () => {
  it("returns the notification and its history, scoped by tenant", async () => {
    const tenant = newTenant();
    const i = input({ tenant });
    await store.accept(i);
    await store.cancel(tenant, i.id, { now: new Date(), correlationId: "c2" });
    const got = await store.get(tenant, i.id);
    expect(got?.notification).toMatchObject({ id: i.id, status: Status.CANCELED });
    expect(got?.history.map((e) => [e.sequence, e.status, e.detail])).toEqual([
      [1, Status.QUEUED, "accepted"],
      [2, Status.CANCELED, "canceled"],
    ]);
    expect(await store.get(newTenant(), i.id)).toBeUndefined();
    expect(await store.get(tenant, uuidv7())).toBeUndefined();
    expect(await store.get(tenant, "not-a-uuid")).toBeUndefined();
  });
});

describe("findByIdempotencyKey", () => {
  it("finds the notification a live key names for the same request only, in the same tenant", async () => {
    const tenant = newTenant();
    const i = input({ tenant, idempotencyKey: "key-1", requestHash: hash("first") });
    await store.accept(i);
    const now = new Date();
    expect((await store.findByIdempotencyKey(tenant, "key-1", hash("first"), now))?.id).toBe(i.id);
    expect(await store.findByIdempotencyKey(tenant, "key-1", hash("another request"), now)).toBeUndefined();
    expect(await store.findByIdempotencyKey(tenant, "key-2", hash("first"), now)).toBeUndefined();
    expect(await store.findByIdempotencyKey(newTenant(), "key-1", hash("first"), now)).toBeUndefined();
  });

  it("does not find a key past its window", async () => {
    const windowed = createNotificationStore({ pool: db.pool, commit: { maxBatch: 10, maxDelayMs: 1 }, idempotencyTtlMs: 60_000, log });
    try {
      const tenant = newTenant();
      const i = input({ tenant, idempotencyKey: "key-1", requestHash: hash("first") });
      await windowed.accept(i);
      expect((await windowed.findByIdempotencyKey(tenant, "key-1", hash("first"), new Date(i.now.getTime() + 59_000)))?.id).toBe(i.id);
      expect(await windowed.findByIdempotencyKey(tenant, "key-1", hash("first"), new Date(i.now.getTime() + 60_000))).toBeUndefined();
    } finally {
      await windowed.close();
    }
  });
});

describe("cancel", () => {
  it("cancels a QUEUED notification and withdraws its unpublished Dispatch", async () => {
    const tenant = newTenant();
    const i = input({ tenant });
    await store.accept(i);
    const now = new Date();
    const outcome = await store.cancel(tenant, i.id, { now, correlationId: "cancel-1" });
    expect(outcome).toMatchObject({ kind: "canceled", notification: { id: i.id, status: Status.CANCELED } });

    const records = await outboxOf(i.id);
    expect(records.map((r) => r.topic)).toEqual(["herald.status", "herald.status"]);
    expect(records[1]!.headers).toEqual({ tenant, "correlation-id": "cancel-1" });
    expect(fromBinary(StatusEventSchema, records[1]!.value)).toMatchObject({
      sequence: 2,
      status: Status.CANCELED,
      detail: "canceled",
    });
    const row = await db.pool.query("SELECT status, last_sequence, updated_at FROM notifications WHERE id = $1", [i.id]);
    expect(row.rows[0]).toEqual({ status: Status.CANCELED, last_sequence: 2, updated_at: now });
  });

  it("cancels a SCHEDULED notification; a Dispatch already published stays (the worker's claim refuses it)", async () => {
    const tenant = newTenant();
    const scheduled = input({ tenant, status: Status.SCHEDULED, deliverAt: new Date(Date.now() + 60_000) });
    await store.accept(scheduled);
    expect((await store.cancel(tenant, scheduled.id, { now: new Date(), correlationId: "c" })).kind).toBe("canceled");

    const queued = input({ tenant });
    await store.accept(queued);
    await db.pool.query("UPDATE outbox SET published_at = now() WHERE notification_id = $1", [queued.id]);
    expect((await store.cancel(tenant, queued.id, { now: new Date(), correlationId: "c" })).kind).toBe("canceled");
    expect((await outboxOf(queued.id)).map((r) => r.topic)).toEqual(["herald.email.high", "herald.status", "herald.status"]);
  });

  it("is not_found for another tenant and too_late once sent", async () => {
    const tenant = newTenant();
    const i = input({ tenant });
    await store.accept(i);
    const opts = { now: new Date(), correlationId: "c" };
    expect(await store.cancel(newTenant(), i.id, opts)).toEqual({ kind: "not_found" });
    expect(await store.cancel(tenant, uuidv7(), opts)).toEqual({ kind: "not_found" });
    expect(await store.cancel(tenant, "nope", opts)).toEqual({ kind: "not_found" });

    await db.pool.query("UPDATE notifications SET status = $2 WHERE id = $1", [i.id, Status.SENT]);
    expect(await store.cancel(tenant, i.id, opts)).toEqual({ kind: "too_late", status: Status.SENT });
    expect(await countFor(tenant)).toEqual({ rows: 1, events: 1, outbox: 2 });
  });

  it("a second cancel is too_late with CANCELED", async () => {
    const tenant = newTenant();
    const i = input({ tenant, status: Status.SCHEDULED });
    await store.accept(i);
    const opts = { now: new Date(), correlationId: "c" };
    expect((await store.cancel(tenant, i.id, opts)).kind).toBe("canceled");
    expect(await store.cancel(tenant, i.id, opts)).toEqual({ kind: "too_late", status: Status.CANCELED });
  });
});
