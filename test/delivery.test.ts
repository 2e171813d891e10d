import { createHash, randomBytes } from "node:crypto";
import { Writable } from "node:stream";
import { create, fromBinary } from "@bufbuild/protobuf";
import { pino, type Logger } from "pino";
import { uuidv7 } from "uuidv7";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DeadLetterSchema } from "../gen/herald/v1/dead_letter_pb.js";
import { DispatchSchema, type Dispatch } from "../gen/herald/v1/dispatch_pb.js";
import { Channel, NotificationSpecSchema, Priority, Status, StatusEventSchema } from "../gen/herald/v1/notification_pb.js";
import { createScheduler } from "../src/scheduler/scheduler.js";
import { createDeliveryStore, type DeliveryStore } from "../src/store/deliveries.js";
import { UnavailableError } from "../src/errors.js";
import { createNotificationStore, type NotificationStore } from "../src/store/notifications.js";
import type { Renderer } from "../src/templates/notification-renderer.js";
import { RenderError } from "../src/templates/render-fields.js";
import { backoffCeilingMs } from "../src/loop/backoff.js";
import { createDeliveryHandler, type DeliveryHandlerDeps } from "../src/workers/delivery.js";
import { DeliveryAbandonedError, type DeliverySignals } from "../src/workers/delivery-signals.js";
import { createHighFirst } from "../src/workers/high-first.js";
import { createLeaseKeeper } from "../src/workers/lease-keeper.js";
import { createSlots } from "../src/workers/slots.js";
import { PermanentError, TransientError } from "../src/errors.js";
import { type Provider, type RenderedMessage, type SendResult } from "../src/workers/providers/provider.js";
import { createMetricsRegistry } from "../src/metrics/registry.js";
import { createDeliveryMetrics } from "../src/metrics/delivery.js";
import { createTestDatabase, type TestDatabase } from "./support/db.js";
import { metricValue } from "./support/metric-values.js";
import { waitFor } from "./support/wait.js";

// The per-message handler against the real PostgreSQL schema, with a fake
// provider, renderer and rate limiter passed in. No Kafka: Dispatch records
// are read from the outbox, exactly as the relay would publish them.

let db: TestDatabase;
let notifications: NotificationStore;
let store: DeliveryStore;
const LEASE_MS = 1500;
const BACKOFF = { baseMs: 1000, capMs: 300_000 };

beforeAll(async () => {
  db = await createTestDatabase("herald_delivery");
  notifications = createNotificationStore({ pool: db.pool, commit: { maxBatch: 64, maxDelayMs: 1 }, log: pino({ level: "silent" }) });
  store = createDeliveryStore({ pool: db.pool, leaseMs: LEASE_MS });
});
afterAll(async () => {
  await notifications?.close();
  await db?.drop();
});

const never = new AbortController().signal;
const running: DeliverySignals = { stop: never, abort: never };

/** A log that keeps its JSON lines. */
function captureLog(): { log: Logger; lines: () => Array<Record<string, unknown> & { msg: string; level: number }> } {
  const out: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      out.push(chunk.toString());
      done();
    },
  });
  return { log: pino({ level: "debug" }, sink), lines: () => out.map((l) => JSON.parse(l) as never) };
}

/** A provider that records every send and answers with `answer(message, callNumber)`. */
function fakeProvider(answer: (m: RenderedMessage, n: number, signal: AbortSignal) => Promise<SendResult> = async (m) => ({ providerMessageId: `pm-${m.notificationId}` })) {
  const calls: RenderedMessage[] = [];
  const provider: Provider & { calls: RenderedMessage[] } = {
    name: "fake",
    calls,
    send(message, signal) {
      calls.push(message);
      return answer(message, calls.length, signal);
    },
    close: async () => {},
  };
  return provider;
}

const renderer: Renderer = {
  async render(_tenant, spec) {
    if (spec.body.case !== "content") throw new RenderError("no template store in this test");
    const { subject, text, html, data } = spec.body.value;
    return { subject, text, html, data: { ...data } };
  },
};

function handler(provider: Provider, over: Partial<DeliveryHandlerDeps> = {}) {
  let takes = 0;
  const h = createDeliveryHandler({
    store,
    renderer,
    provider,
    limiter: { take: async () => void takes++ },
    backoff: BACKOFF,
    log: pino({ level: "silent" }),
    ...over,
  });
  return Object.assign(h, { takes: () => takes });
}

/** Accepts a QUEUED email notification; returns its id, tenant and its first Dispatch as published. */
async function queued(opts: { maxAttempts?: number; subject?: string; priority?: Priority } = {}): Promise<{ id: string; tenant: string; dispatch: Dispatch }> {
  const tenant = `t${randomBytes(4).toString("hex")}`;
  const id = uuidv7();
  const outcome = await notifications.accept({
    tenant,
    id,
    spec: create(NotificationSpecSchema, {
      channel: Channel.EMAIL,
      recipient: { userId: "u-1", address: { case: "email", value: "ada@example.com" } },
      body: { case: "content", value: { subject: opts.subject ?? "Hi", text: "Hello", data: { k: "v" } } },
      labels: { team: "growth" },
      priority: opts.priority,
    }),
    idempotencyKey: "",
    requestHash: createHash("sha256").update(id).digest(),
    correlationId: "corr-1",
    status: Status.QUEUED,
    deliverAt: new Date(),
    maxAttempts: opts.maxAttempts ?? 4,
    now: new Date(),
  });
  if (outcome.kind !== "created") throw new Error(outcome.kind);
  return { id, tenant, dispatch: (await dispatches(id))[0]! };
}

/** Its Dispatches, on either lane of the email channel. */
async function dispatches(id: string): Promise<Dispatch[]> {
  const r = await db.pool.query<{ value: Buffer }>(
    "SELECT value FROM outbox WHERE notification_id = $1 AND topic IN ('herald.email', 'herald.email.high') ORDER BY id",
    [id],
  );
  return r.rows.map((row) => fromBinary(DispatchSchema, row.value));
}

async function rowOf(id: string) {
  const r = await db.pool.query<{
    status: Status;
    attempts: number;
    provider_message_id: string;
    last_error: string;
    next_attempt_at: Date | null;
    lease_until: Date | null;
    last_sequence: number;
  }>("SELECT status, attempts, provider_message_id, last_error, next_attempt_at, lease_until, last_sequence FROM notifications WHERE id = $1", [id]);
  return r.rows[0]!;
}

async function eventsOf(id: string): Promise<Array<[number, Status, number, string]>> {
  const r = await db.pool.query<{ sequence: number; status: Status; attempt: number; detail: string }>(
    "SELECT sequence, status, attempt, detail FROM status_events WHERE notification_id = $1 ORDER BY sequence",
    [id],
  );
  return r.rows.map((e) => [e.sequence, e.status, e.attempt, e.detail]);
}

/** herald.status outbox records of `id`, decoded, in outbox order. */
async function statusRecords(id: string): Promise<Array<[number, Status, number]>> {
  const r = await db.pool.query<{ value: Buffer }>("SELECT value FROM outbox WHERE notification_id = $1 AND topic = 'herald.status' ORDER BY id", [id]);
  return r.rows.map((row) => {
    const e = fromBinary(StatusEventSchema, row.value);
    return [e.sequence, e.status, e.attempt];
  });
}

async function deadLetterOf(id: string) {
  const row = await db.pool.query<{ status: Status; last_error: string; attempts: number }>(
    "SELECT status, last_error, attempts FROM dead_letters WHERE notification_id = $1",
    [id],
  );
  const dlq = await db.pool.query<{ key: string; value: Buffer }>("SELECT key, value FROM outbox WHERE notification_id = $1 AND topic = 'herald.dlq'", [id]);
  return { row: row.rows[0], dlq: dlq.rows.map((r) => ({ key: r.key, value: fromBinary(DeadLetterSchema, r.value) })) };
}

describe("delivery handler", () => {
  it("claims and sends: SENDING then SENT, with events and herald.status records in sequence", async () => {
    const { id, tenant, dispatch } = await queued();
    const provider = fakeProvider();
    const h = handler(provider);
    await h.handle(dispatch, running);

    expect(await rowOf(id)).toMatchObject({ status: Status.SENT, attempts: 1, provider_message_id: `pm-${id}`, last_error: "", lease_until: null, last_sequence: 3 });
    expect(await eventsOf(id)).toEqual([
      [1, Status.QUEUED, 0, "accepted"],
      [2, Status.SENDING, 1, "claimed"],
      [3, Status.SENT, 1, "sent via fake"],
    ]);
    expect(await statusRecords(id)).toEqual([
      [1, Status.QUEUED, 0],
      [2, Status.SENDING, 1],
      [3, Status.SENT, 1],
    ]);
    expect(provider.calls).toHaveLength(1);
    expect(provider.calls[0]).toMatchObject({
      notificationId: id,
      tenant,
      channel: Channel.EMAIL,
      recipient: { userId: "u-1", address: { case: "email", value: "ada@example.com" } },
      subject: "Hi",
      text: "Hello",
      data: { k: "v" },
      labels: { team: "growth" },
      idempotencyKey: id,
      attempt: 1,
    });
    expect(h.takes()).toBe(1);
    expect(h.counters).toMatchObject({ claimed: 1, sent: 1, skipped: 0 });
  });

  it("handles the same Dispatch twice, in a row or at once, with one provider call", async () => {
    const first = await queued();
    const provider = fakeProvider();
    const h = handler(provider);
    await h.handle(first.dispatch, running);
    await h.handle(first.dispatch, running);
    expect(provider.calls).toHaveLength(1);
    expect(h.counters).toMatchObject({ sent: 1, skipped: 1 });
    expect((await eventsOf(first.id)).map((e) => e[1])).toEqual([Status.QUEUED, Status.SENDING, Status.SENT]);

    // At once: the loser finds the attempt done, or a live claim it waits out before finding it done.
    const second = await queued();
    await Promise.all([h.handle(second.dispatch, running), h.handle(second.dispatch, running)]);
    expect(provider.calls.filter((c) => c.notificationId === second.id)).toHaveLength(1);
    expect((await eventsOf(second.id)).map((e) => e[1])).toEqual([Status.QUEUED, Status.SENDING, Status.SENT]);
    expect(h.counters).toMatchObject({ sent: 2, skipped: 2, claimed: 2 });
  });

  it("a transient failure: RETRYING, due within the backoff bounds, with the error", async () => {
    const { id, dispatch } = await queued();
    const h = handler(fakeProvider(async () => Promise.reject(new TransientError("smtp 451: try again later"))));
    const before = Date.now();
    await h.handle(dispatch, running);
    const after = Date.now();

    const row = await rowOf(id);
    expect(row).toMatchObject({ status: Status.RETRYING, attempts: 1, last_error: "smtp 451: try again later", lease_until: null });
    const due = row.next_attempt_at!.getTime();
    expect(due).toBeGreaterThanOrEqual(before);
    expect(due).toBeLessThanOrEqual(after + backoffCeilingMs(1, BACKOFF));
    expect((await eventsOf(id)).at(-1)).toEqual([3, Status.RETRYING, 1, "smtp 451: try again later"]);
    expect((await statusRecords(id)).at(-1)).toEqual([3, Status.RETRYING, 1]);
    expect((await deadLetterOf(id)).row).toBeUndefined();
    expect(h.counters).toMatchObject({ retried: 1 });
  });

  it("uses the injected random source within the bounds, growing with the attempt", async () => {
    const { id, dispatch } = await queued();
    // As the scheduler leaves it for attempt 3: QUEUED after two attempts.
    await db.pool.query("UPDATE notifications SET attempts = 2 WHERE id = $1", [id]);
    const h = handler(fakeProvider(async () => Promise.reject(new Error("socket hang up"))), { random: () => 0.5 });
    const before = Date.now();
    await h.handle({ ...dispatch, attempt: 3 }, running);
    const after = Date.now();
    const row = await rowOf(id);
    // Unclassified errors count as transient; attempt 3's ceiling is 4 s, half of it drawn,
    // counted from when the outcome was decided, however long handle() took.
    expect(row).toMatchObject({ status: Status.RETRYING, attempts: 3, last_error: "socket hang up" });
    expect(row.next_attempt_at!.getTime()).toBeGreaterThanOrEqual(before + 2000);
    expect(row.next_attempt_at!.getTime()).toBeLessThanOrEqual(after + 2000);
  });

  it("honours Retry-After when it is longer than the backoff", async () => {
    const { id, dispatch } = await queued();
    const h = handler(fakeProvider(async () => Promise.reject(new TransientError("429 too many requests", { retryAfterMs: 60_000 }))));
    const before = Date.now();
    await h.handle(dispatch, running);
    const after = Date.now();
    const due = (await rowOf(id)).next_attempt_at!.getTime();
    expect(due).toBeGreaterThanOrEqual(before + 60_000);
    expect(due).toBeLessThanOrEqual(after + 60_000);
  });

  it("a permanent failure: FAILED at once, with a dead letter and a herald.dlq record", async () => {
    const { id, dispatch } = await queued();
    const h = handler(fakeProvider(async () => Promise.reject(new PermanentError("550 mailbox does not exist"))));
    await h.handle(dispatch, running);
    expect(await rowOf(id)).toMatchObject({ status: Status.FAILED, attempts: 1, last_error: "550 mailbox does not exist", next_attempt_at: null });
    expect((await eventsOf(id)).at(-1)).toEqual([3, Status.FAILED, 1, "550 mailbox does not exist"]);
    const dead = await deadLetterOf(id);
    expect(dead.row).toEqual({ status: Status.FAILED, last_error: "550 mailbox does not exist", attempts: 1 });
    expect(dead.dlq).toHaveLength(1);
    expect(dead.dlq[0]).toMatchObject({ key: id, value: { notificationId: id, status: Status.FAILED, lastError: "550 mailbox does not exist", attempts: 1 } });
    expect(h.counters).toMatchObject({ failed: 1 });
  });

  it("a render error is permanent and never reaches the provider", async () => {
    const { id, dispatch } = await queued();
    const provider = fakeProvider();
    const h = handler(provider, {
      renderer: { render: async () => Promise.reject(new RenderError('template "welcome" has no version 3')) },
    });
    await h.handle(dispatch, running);
    expect(provider.calls).toHaveLength(0);
    expect(await rowOf(id)).toMatchObject({ status: Status.FAILED, last_error: 'template "welcome" has no version 3' });
    expect((await deadLetterOf(id)).row?.status).toBe(Status.FAILED);
  });

  it("a transient failure of the last attempt: DEAD_LETTERED, with a dead letter and a herald.dlq record", async () => {
    const { id, dispatch } = await queued({ maxAttempts: 2 });
    await db.pool.query("UPDATE notifications SET attempts = 1 WHERE id = $1", [id]);
    const h = handler(fakeProvider(async () => Promise.reject(new TransientError("503 service unavailable"))));
    await h.handle({ ...dispatch, attempt: 2 }, running);
    expect(await rowOf(id)).toMatchObject({ status: Status.DEAD_LETTERED, attempts: 2, last_error: "503 service unavailable", next_attempt_at: null });
    expect((await eventsOf(id)).slice(1)).toEqual([
      [2, Status.SENDING, 2, "claimed"],
      [3, Status.DEAD_LETTERED, 2, "503 service unavailable"],
    ]);
    expect((await statusRecords(id)).at(-1)).toEqual([3, Status.DEAD_LETTERED, 2]);
    const dead = await deadLetterOf(id);
    expect(dead.row).toEqual({ status: Status.DEAD_LETTERED, last_error: "503 service unavailable", attempts: 2 });
    expect(dead.dlq.map((d) => [d.key, d.value.status, d.value.attempts])).toEqual([[id, Status.DEAD_LETTERED, 2]]);
    expect(h.counters).toMatchObject({ deadLettered: 1, retried: 0 });
  });

  it("bounds a long provider error in the event and last_error", async () => {
    const { id, dispatch } = await queued();
    const h = handler(fakeProvider(async () => Promise.reject(new TransientError("x".repeat(5000)))));
    await h.handle(dispatch, running);
    const row = await rowOf(id);
    expect(row.last_error).toHaveLength(1000);
    expect(row.last_error.endsWith("…")).toBe(true);
    expect((await eventsOf(id)).at(-1)![3]).toBe(row.last_error);
  });

  it("re-claims an attempt whose lease expired: the same idempotency key again, counted and logged", async () => {
    const { id, tenant, dispatch } = await queued();
    // Worker A claims and sends, then is never heard of again (its send hangs).
    let finishA!: (r: SendResult) => void;
    const providerA = fakeProvider(() => new Promise((resolve) => (finishA = resolve)));
    const a = handler(providerA);
    const handlingA = a.handle(dispatch, running);
    await waitFor("A to send", () => providerA.calls.length === 1);
    // Its lease runs out.
    await db.pool.query("UPDATE notifications SET lease_until = now() - interval '1 second' WHERE id = $1", [id]);

    const { log, lines } = captureLog();
    const providerB = fakeProvider();
    const b = handler(providerB, { log });
    await b.handle(dispatch, running);
    expect(providerB.calls).toHaveLength(1);
    expect(providerB.calls[0]!.idempotencyKey).toBe(providerA.calls[0]!.idempotencyKey);
    expect(providerB.calls[0]!.idempotencyKey).toBe(id);
    expect(b.counters).toMatchObject({ resentAfterLostOutcome: 1, sent: 1 });
    const warned = lines().find((l) => l.msg === "re-sending after a lost outcome");
    expect(warned).toMatchObject({ level: 40, notificationId: id, tenant, channel: "email", attempt: 1 });
    // Every line about the notification carries its fields.
    for (const line of lines()) expect(line).toMatchObject({ notificationId: id, tenant, channel: "email", attempt: 1 });

    // A finally answers: its outcome no longer matches the claim and changes nothing.
    finishA({ providerMessageId: "late" });
    await handlingA;
    expect(a.counters).toMatchObject({ outcomesLost: 1, sent: 0 });
    expect(await rowOf(id)).toMatchObject({ status: Status.SENT, provider_message_id: `pm-${id}` });
    expect((await eventsOf(id)).slice(1)).toEqual([
      [2, Status.SENDING, 1, "claimed"],
      [3, Status.SENDING, 1, "re-claimed after an expired lease"],
      [4, Status.SENT, 1, "sent via fake"],
    ]);
  });

  it("waits while another worker's lease is live, then finds the attempt done", async () => {
    const { id, dispatch } = await queued();
    let finishA!: (r: SendResult) => void;
    const providerA = fakeProvider(() => new Promise((resolve) => (finishA = resolve)));
    const handlingA = handler(providerA).handle(dispatch, running);
    await waitFor("A to send", () => providerA.calls.length === 1);

    // B looks again every 20 ms; each look it has taken while A still holds the lease must
    // find it live and send nothing.
    const providerB = fakeProvider();
    const looks: string[] = [];
    const counted: DeliveryStore = {
      ...store,
      claim: async (input) => {
        const result = await store.claim(input);
        looks.push(result.kind);
        return result;
      },
    };
    const b = handler(providerB, { store: counted, maxLeaseWaitMs: 20 });
    let doneB = false;
    const handlingB = b.handle(dispatch, running).then(() => (doneB = true));
    await waitFor("B to find A's lease live three times", () => looks.length >= 3);
    expect(b.counters.leaseWaits).toBe(1);
    expect(looks.slice(0, 3)).toEqual(["leased", "leased", "leased"]);
    expect(doneB).toBe(false);
    expect(providerB.calls).toHaveLength(0);

    finishA({ providerMessageId: "pm-a" });
    await handlingA;
    await handlingB;
    expect(providerB.calls).toHaveLength(0);
    expect(b.counters).toMatchObject({ skipped: 1, claimed: 0 });
    expect(await rowOf(id)).toMatchObject({ status: Status.SENT, provider_message_id: "pm-a" });
  });

  it("yields to high priority: a normal record does not claim while a high one is being handled, and goes on after it", async () => {
    const high = await queued({ priority: Priority.HIGH });
    const normal = await queued();
    let finishHigh!: (r: SendResult) => void;
    let highDone = false;
    let normalSentAfterHigh: boolean | undefined;
    const provider = fakeProvider((m) => {
      if (m.notificationId === high.id) return new Promise((resolve) => (finishHigh = resolve));
      normalSentAfterHigh = highDone;
      return Promise.resolve({ providerMessageId: `pm-${m.notificationId}` });
    });
    const h = handler(provider, { highFirst: createHighFirst({ maxYieldMs: 60_000 }) });
    const handlingHigh = h.handle(high.dispatch, running);
    await waitFor("the high one to send", () => provider.calls.length === 1);
    const handlingNormal = h.handle(normal.dispatch, running);
    // Fifty database round trips, together far longer than the normal one's claim and send would
    // take without the yield (it is SENT within a few of them then): it stays QUEUED.
    for (let i = 0; i < 50; i++) expect((await rowOf(normal.id)).status).toBe(Status.QUEUED);
    highDone = true;
    finishHigh({ providerMessageId: "pm-high" });
    await Promise.all([handlingHigh, handlingNormal]);
    expect(normalSentAfterHigh).toBe(true);
    expect((await rowOf(normal.id)).status).toBe(Status.SENT);
    expect((await rowOf(high.id)).status).toBe(Status.SENT);
  });

  it("renews a live send's lease past its length, so another worker waits instead of re-sending; the lease lapses once renewals stop", async () => {
    const { id, dispatch } = await queued();
    const leases = createLeaseKeeper({ store, intervalMs: LEASE_MS / 5, log: pino({ level: "silent" }) });
    try {
      let finishA!: (r: SendResult) => void;
      const providerA = fakeProvider(() => new Promise((resolve) => (finishA = resolve)));
      const handlingA = handler(providerA, { leases }).handle(dispatch, running);
      await waitFor("A to send", () => providerA.calls.length === 1);
      expect(leases.held).toBe(1);
      const claimedUntil = (await rowOf(id)).lease_until!;
      // Wait, on the database clock that leases use, until the lease set by the claim is over.
      await waitFor("the claim's first lease to end", async () => {
        const r = await db.pool.query<{ over: boolean }>("SELECT now() > $1::timestamptz AS over", [claimedUntil]);
        return r.rows[0]!.over;
      }, { timeoutMs: 30_000 });
      expect((await rowOf(id)).lease_until!.getTime()).toBeGreaterThan(claimedUntil.getTime());

      // B finds the claim live, however long A's send has taken.
      const providerB = fakeProvider();
      const b = handler(providerB, { maxLeaseWaitMs: 20 });
      const handlingB = b.handle(dispatch, running);
      await waitFor("B to find A's lease live", () => b.counters.leaseWaits === 1);
      expect(providerB.calls).toHaveLength(0);
      finishA({ providerMessageId: "pm-a" });
      await handlingA;
      await handlingB;
      expect(leases.held).toBe(0);
      expect(providerB.calls).toHaveLength(0);
      expect(await rowOf(id)).toMatchObject({ status: Status.SENT, provider_message_id: "pm-a", lease_until: null });
    } finally {
      await leases.close();
    }

    // A worker that stops renewing (it died) loses the claim one lease later.
    const second = await queued();
    const dead = createLeaseKeeper({ store, intervalMs: LEASE_MS / 5, log: pino({ level: "silent" }) });
    const providerC = fakeProvider(() => new Promise(() => {}));
    void handler(providerC, { leases: dead }).handle(second.dispatch, running);
    await waitFor("C to send", () => providerC.calls.length === 1);
    await dead.close();
    const providerD = fakeProvider();
    const d = handler(providerD, { maxLeaseWaitMs: 50 });
    await d.handle(second.dispatch, running);
    expect(providerD.calls).toHaveLength(1);
    expect(d.counters).toMatchObject({ resentAfterLostOutcome: 1, sent: 1 });
  });

  it("renews only claims still ours and live: not another attempt, not a finished row, not a lapsed lease", async () => {
    const live = await queued();
    const lapsed = await queued();
    const other = await queued();
    const done = await queued();
    await db.pool.query("UPDATE notifications SET status = $2, attempts = 1, lease_until = now() + interval '1 second' WHERE id = ANY($1::uuid[])", [
      [live.id, other.id],
      Status.SENDING,
    ]);
    await db.pool.query("UPDATE notifications SET status = $2, attempts = 1, lease_until = now() - interval '1 second' WHERE id = $1", [lapsed.id, Status.SENDING]);
    await db.pool.query("UPDATE notifications SET status = $2, attempts = 1, lease_until = NULL WHERE id = $1", [done.id, Status.SENT]);
    const before = new Map(await Promise.all([live, lapsed, other, done].map(async (n) => [n.id, (await rowOf(n.id)).lease_until] as const)));

    const renewed = await store.renew([
      { id: live.id, attempt: 1 },
      { id: lapsed.id, attempt: 1 },
      { id: other.id, attempt: 2 },
      { id: done.id, attempt: 1 },
    ]);
    expect(renewed).toBe(1);
    expect((await rowOf(live.id)).lease_until!.getTime()).toBeGreaterThan(before.get(live.id)!.getTime());
    for (const n of [lapsed, other]) expect((await rowOf(n.id)).lease_until).toEqual(before.get(n.id));
    expect((await rowOf(done.id)).lease_until).toBeNull();
  });

  it("stops waiting for a lease at shutdown, without claiming", async () => {
    const { id, dispatch } = await queued();
    await db.pool.query("UPDATE notifications SET status = $2, attempts = 1, lease_until = now() + interval '1 hour' WHERE id = $1", [id, Status.SENDING]);
    const stop = new AbortController();
    const provider = fakeProvider();
    const h = handler(provider, { maxLeaseWaitMs: 60_000 });
    const handling = h.handle(dispatch, { stop: stop.signal, abort: never });
    await waitFor("the handler to wait for the lease", () => h.counters.leaseWaits === 1);
    stop.abort();
    await expect(handling).rejects.toBeInstanceOf(DeliveryAbandonedError);
    expect(provider.calls).toHaveLength(0);
  });

  it("does nothing for a notification canceled before the claim", async () => {
    const { id, tenant, dispatch } = await queued();
    expect((await notifications.cancel(tenant, id, { now: new Date(), correlationId: "c" })).kind).toBe("canceled");
    const provider = fakeProvider();
    const h = handler(provider);
    await h.handle(dispatch, running);
    expect(provider.calls).toHaveLength(0);
    expect(h.counters).toMatchObject({ skipped: 1, claimed: 0 });
    expect((await eventsOf(id)).map((e) => e[1])).toEqual([Status.QUEUED, Status.CANCELED]);
  });

  it("skips a record for an attempt already past, and one for an unknown notification", async () => {
    const { id, dispatch } = await queued();
    const provider = fakeProvider();
    const h = handler(provider);
    await db.pool.query("UPDATE notifications SET attempts = 2 WHERE id = $1", [id]); // QUEUED for attempt 3
    await h.handle(dispatch, running);
    await h.handle({ ...dispatch, notificationId: uuidv7() }, running);
    await h.handle({ ...dispatch, notificationId: "not-a-uuid" }, running);
    expect(provider.calls).toHaveLength(0);
    expect(h.counters).toMatchObject({ skipped: 2, malformed: 1 });
  });

  it("waits out a database outage while claiming and storing: logged once each way, nothing lost", async () => {
    const { id, dispatch } = await queued();
    let claimFailures = 2;
    let finishFailures = 3;
    const down = () => new UnavailableError("database", "database unavailable", { cause: new Error("connect ECONNREFUSED") });
    const flaky: DeliveryStore = {
      claim: (input) => (claimFailures-- > 0 ? Promise.reject(down()) : store.claim(input)),
      finish: (input) => (finishFailures-- > 0 ? Promise.reject(down()) : store.finish(input)),
      release: (input) => store.release(input),
      renew: (held) => store.renew(held),
    };
    const { log, lines } = captureLog();
    const provider = fakeProvider();
    const h = handler(provider, { store: flaky, log, maxStoreBackoffMs: 50 });
    await h.handle(dispatch, running);

    expect(provider.calls).toHaveLength(1);
    expect(await rowOf(id)).toMatchObject({ status: Status.SENT, attempts: 1 });
    expect(h.counters.storeRetries).toBe(5);
    const outage = lines().filter((l) => l.level >= 40 && l.msg !== "re-sending after a lost outcome");
    // Claim: down, then back. Finish: down, then back. One line per change of state, never per retry.
    expect(outage.map((l) => l.msg)).toEqual(["database unavailable; deliveries wait and retry", "database unavailable; deliveries wait and retry"]);
    expect(lines().filter((l) => l.msg === "database answers again; deliveries resume")).toHaveLength(2);
  });

  it("gives up on a claim at shutdown while the database is down, leaving the record unfinished", async () => {
    const { id, dispatch } = await queued();
    const flaky: DeliveryStore = {
      claim: () => Promise.reject(new UnavailableError("database", "database unavailable")),
      finish: (input) => store.finish(input),
      release: (input) => store.release(input),
      renew: (held) => store.renew(held),
    };
    const stop = new AbortController();
    const h = handler(fakeProvider(), { store: flaky, maxStoreBackoffMs: 20 });
    const handling = h.handle(dispatch, { stop: stop.signal, abort: never });
    await waitFor("three store retries", () => h.counters.storeRetries >= 3);
    stop.abort();
    await expect(handling).rejects.toBeInstanceOf(DeliveryAbandonedError);
    expect(await rowOf(id)).toMatchObject({ status: Status.QUEUED, attempts: 0 });
  });

  it("counts a re-claim after an expired lease as a lease takeover, and only the outcome that was stored", async () => {
    const registry = createMetricsRegistry({ processMetrics: false });
    const metrics = createDeliveryMetrics(registry).channel("email", ["fake"]);
    const { id, dispatch } = await queued();
    let finishA!: (r: SendResult) => void;
    const providerA = fakeProvider(() => new Promise((resolve) => (finishA = resolve)));
    const a = handler(providerA, { metrics });
    const handlingA = a.handle(dispatch, running);
    await waitFor("A to send", () => providerA.calls.length === 1);
    expect(await metricValue(registry, "herald_sends_in_flight", { channel: "email" })).toBe(1);
    await db.pool.query("UPDATE notifications SET lease_until = now() - interval '1 second' WHERE id = $1", [id]);

    const b = handler(fakeProvider(), { metrics });
    await b.handle(dispatch, running);
    finishA({ providerMessageId: "late" });
    await handlingA;

    expect(await metricValue(registry, "herald_lease_takeovers_total", { channel: "email" })).toBe(1);
    // B's SENT was stored; A's late outcome found the claim taken over and was not.
    expect(await metricValue(registry, "herald_deliveries_total", { channel: "email", provider: "fake", outcome: "sent" })).toBe(1);
    expect(await metricValue(registry, "herald_deliveries_total")).toBe(1);
    expect(await metricValue(registry, "herald_delivery_e2e_seconds_count", { channel: "email" })).toBe(1);
    // Both calls reached the provider.
    expect(await metricValue(registry, "herald_provider_request_duration_seconds_count", { channel: "email", provider: "fake" })).toBe(2);
    expect(await metricValue(registry, "herald_sends_in_flight", { channel: "email" })).toBe(0);
  });

  it("at the end of the drain, cancels the send in flight and ends its lease for the next owner", async () => {
    const { id, dispatch } = await queued();
    const abort = new AbortController();
    const provider = fakeProvider(
      (_m, _n, signal) => new Promise((_, reject) => signal.addEventListener("abort", () => reject(new TransientError("send aborted")))),
    );
    const h = handler(provider);
    const handling = h.handle(dispatch, { stop: abort.signal, abort: abort.signal });
    await waitFor("the send", () => provider.calls.length === 1);
    abort.abort();
    await expect(handling).rejects.toBeInstanceOf(DeliveryAbandonedError);
    // No outcome is made up; the claim stays with an ended lease, so the redelivery takes over at once.
    const row = await rowOf(id);
    expect(row).toMatchObject({ status: Status.SENDING, attempts: 1 });
    expect(row.lease_until!.getTime()).toBeLessThanOrEqual(Date.now() + 1000);
    const next = fakeProvider();
    const h2 = handler(next);
    await h2.handle(dispatch, running);
    expect(next.calls.map((c) => c.idempotencyKey)).toEqual([id]);
    expect(h2.counters).toMatchObject({ resentAfterLostOutcome: 1, sent: 1, leaseWaits: 0 });
  });

  it("holds a send slot only while sending; a record still waiting for one at stop is given back unsent", async () => {
    const first = await queued();
    const second = await queued();
    const stop = new AbortController();
    let answer!: (r: SendResult) => void;
    const provider = fakeProvider((m) =>
      m.notificationId === first.id ? new Promise<SendResult>((resolve) => (answer = resolve)) : Promise.resolve({ providerMessageId: "never" }),
    );
    const h = handler(provider, { sends: createSlots(1) });
    const signals = { stop: stop.signal, abort: never };
    const sending = h.handle(first.dispatch, signals);
    await waitFor("the send", () => provider.calls.length === 1);
    const waiting = h.handle(second.dispatch, signals);
    // Claimed while the only send slot is taken: its claim did not wait for the send.
    await waitFor("the second claim", async () => (await rowOf(second.id)).status === Status.SENDING);
    expect(provider.calls.map((c) => c.notificationId)).toEqual([first.id]);
    stop.abort();
    await expect(waiting).rejects.toBeInstanceOf(DeliveryAbandonedError);
    // The send in flight is not cancelled by a stop; it finishes and stores its outcome.
    answer({ providerMessageId: "pm-first" });
    await sending;
    expect(await rowOf(first.id)).toMatchObject({ status: Status.SENT, provider_message_id: "pm-first" });
    expect(provider.calls.map((c) => c.notificationId)).toEqual([first.id]);
    // The given-back claim is taken over at once, not after its lease.
    const next = fakeProvider();
    const h2 = handler(next);
    await h2.handle(second.dispatch, running);
    expect(next.calls.map((c) => c.notificationId)).toEqual([second.id]);
    expect(h2.counters).toMatchObject({ sent: 1, leaseWaits: 0 });
  });
});

describe("stale-claim sweep (scheduler)", () => {
  it("returns a claim whose worker is lost to retry, and the late outcome of that worker changes nothing", async () => {
    const lost = await queued();
    const fresh = await queued();
    // Worker A claims both and is never heard of again (its sends hang).
    const finishes: Array<(r: SendResult) => void> = [];
    const providerA = fakeProvider(() => new Promise((resolve) => finishes.push(resolve)));
    const a = handler(providerA);
    const handling = [a.handle(lost.dispatch, running), a.handle(fresh.dispatch, running)];
    await waitFor("A to send both", () => providerA.calls.length === 2);
    // One lease ended long ago; the other only just now, within the grace.
    await db.pool.query("UPDATE notifications SET lease_until = now() - interval '10 seconds' WHERE id = $1", [lost.id]);
    await db.pool.query("UPDATE notifications SET lease_until = now() - interval '1 second' WHERE id = $1", [fresh.id]);

    const scheduler = createScheduler({ pool: db.pool, log: pino({ level: "silent" }), batchSize: 100, pollMs: 200, claimGraceMs: 5_000 });
    await scheduler.tick();
    await scheduler.close();

    expect(await rowOf(lost.id)).toMatchObject({ status: Status.QUEUED, attempts: 1, lease_until: null, last_error: "claim expired: worker lost" });
    expect((await eventsOf(lost.id)).slice(1)).toEqual([
      [2, Status.SENDING, 1, "claimed"],
      [3, Status.RETRYING, 1, "claim expired: worker lost"],
      [4, Status.QUEUED, 1, "retry due"],
    ]);
    expect((await statusRecords(lost.id)).map((r) => r[1])).toEqual([Status.QUEUED, Status.SENDING, Status.RETRYING, Status.QUEUED]);
    expect((await dispatches(lost.id)).map((d) => d.attempt)).toEqual([1, 2]);
    expect(await rowOf(fresh.id)).toMatchObject({ status: Status.SENDING, attempts: 1 });

    // A answers at last: its outcome for attempt 1 no longer matches the lost row; the other is stored.
    finishes.forEach((finish) => finish({ providerMessageId: "late" }));
    await Promise.all(handling);
    expect(a.counters).toMatchObject({ outcomesLost: 1, sent: 1 });
    expect((await rowOf(lost.id)).status).toBe(Status.QUEUED);
    expect((await rowOf(fresh.id)).status).toBe(Status.SENT);

    // Attempt 2 goes out with the same idempotency key.
    const next = fakeProvider();
    await handler(next).handle((await dispatches(lost.id))[1]!, running);
    expect(next.calls.map((c) => [c.idempotencyKey, c.attempt])).toEqual([[lost.id, 2]]);
    expect(await rowOf(lost.id)).toMatchObject({ status: Status.SENT, attempts: 2 });
  });

  it("a claim lost on the last attempt is dead-lettered, not retried beyond the budget", async () => {
    const last = await queued({ maxAttempts: 1 });
    const pending: Array<(r: SendResult) => void> = [];
    const a = handler(fakeProvider(() => new Promise((resolve) => pending.push(resolve))));
    const handling = a.handle(last.dispatch, running);
    await waitFor("the send", () => pending.length === 1);
    await db.pool.query("UPDATE notifications SET lease_until = now() - interval '10 seconds' WHERE id = $1", [last.id]);

    const scheduler = createScheduler({ pool: db.pool, log: pino({ level: "silent" }), batchSize: 100, pollMs: 200, claimGraceMs: 5_000 });
    await scheduler.tick();
    await scheduler.close();

    expect(await rowOf(last.id)).toMatchObject({ status: Status.DEAD_LETTERED, attempts: 1, next_attempt_at: null });
    const dead = await db.pool.query("SELECT status, attempts, last_error FROM dead_letters WHERE notification_id = $1", [last.id]);
    expect(dead.rows).toEqual([{ status: Status.DEAD_LETTERED, attempts: 1, last_error: "claim expired: worker lost" }]);
    expect((await dispatches(last.id)).map((d) => d.attempt)).toEqual([1]);
    pending.forEach((finish) => finish({ providerMessageId: "late" }));
    await handling;
    expect((await rowOf(last.id)).status).toBe(Status.DEAD_LETTERED);
  });
});
