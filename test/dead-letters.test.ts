import { create, fromBinary } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DeadLetterFilterSchema, DeadLetterSchema, type DeadLetterFilter } from "../gen/herald/v1/dead_letter_pb.js";
import { DispatchSchema } from "../gen/herald/v1/dispatch_pb.js";
import { Channel, Status, StatusEventSchema } from "../gen/herald/v1/notification_pb.js";
import { runDlqCommand } from "../src/cli/dlq-commands.js";
import { createDeadLetterClient, type DeadLetterClient } from "../src/client/index.js";
import { inTransaction } from "../src/store/db.js";
import { writeDeadLetter } from "../src/store/dead-letter-record.js";
import { createDeadLetterStore } from "../src/store/dead-letters.js";
import type { NotificationRow } from "../src/store/rows.js";
import { transitionWrites, writeTransitions } from "../src/store/transitions.js";
import { KEY_A, KEY_B, startTestHerald, type TestHerald } from "./support/herald.js";
import { readTopic } from "./support/kafka-reader.js";

// Dead letters end to end on real PostgreSQL and Kafka. No worker runs here:
// notifications are created through the API, then killed the way a worker's
// outcome transaction does it (SQL transitions + writeDeadLetter). Each test
// works in its own window of dead-letter times, so they share one Herald.

let herald: TestHerald;
let dlqA: DeadLetterClient;
let dlqB: DeadLetterClient;

beforeAll(async () => {
  herald = await startTestHerald();
  dlqA = createDeadLetterClient({ address: herald.grpcAddress, apiKey: KEY_A });
  dlqB = createDeadLetterClient({ address: herald.grpcAddress, apiKey: KEY_B });
});
afterAll(async () => {
  dlqA?.close();
  dlqB?.close();
  await herald?.stop();
});

const addresses = {
  [Channel.EMAIL]: { case: "email", value: "ada@example.com" },
  [Channel.SMS]: { case: "phone", value: "+14155550100" },
  [Channel.PUSH]: { case: "deviceToken", value: "device-token-1" },
  [Channel.WEBHOOK]: { case: "webhookUrl", value: "https://hooks.example.com/in" },
} as const;

type DeliverableChannel = keyof typeof addresses;

async function createNotification(channel: DeliverableChannel, key = KEY_A, userId = "dl-user"): Promise<string> {
  const { notification } = await herald.client(key).create({
    notification: {
      channel,
      recipient: { userId, address: addresses[channel] },
      body: { case: "content", value: { text: "Hello" } },
    },
  });
  return notification!.id;
}

/** What a worker does when the last attempt fails: QUEUED → SENDING → dead, with events and the dead letter. */
async function kill(
  id: string,
  opts: { status?: Status.FAILED | Status.DEAD_LETTERED; error?: string; attempts?: number; at: Date; correlationId?: string },
): Promise<NotificationRow> {
  return inTransaction(herald.db.pool, async (client) => {
    const sending = await client.query<NotificationRow>(
      `UPDATE notifications SET status = $2, attempts = $3, last_sequence = last_sequence + 1, updated_at = $4
       WHERE id = $1 AND status = $5 RETURNING *`,
      [id, Status.SENDING, opts.attempts ?? 1, opts.at, Status.QUEUED],
    );
    const claimed = sending.rows[0];
    if (!claimed) throw new Error(`kill: ${id} is not QUEUED`);
    const dead = await client.query<NotificationRow>(
      `UPDATE notifications SET status = $2, last_error = $3, last_sequence = last_sequence + 1, updated_at = $4
       WHERE id = $1 RETURNING *`,
      [id, opts.status ?? Status.FAILED, opts.error ?? "550 mailbox unavailable", opts.at],
    );
    const row = dead.rows[0]!;
    await writeTransitions(client, [
      transitionWrites(claimed, { detail: "claimed" }),
      transitionWrites(row, { detail: "gave up" }),
    ]);
    await writeDeadLetter(client, row, { now: opts.at, correlationId: opts.correlationId });
    return row;
  });
}

const minute = 60_000;
type FilterInit = { channel?: Channel; status?: Status; errorContains?: string };
/** A window of dead-letter times no other test uses. */
function windowAt(iso: string) {
  const start = new Date(iso);
  return {
    at: (minutes: number) => new Date(start.getTime() + minutes * minute),
    filter: (over: FilterInit = {}): DeadLetterFilter =>
      create(DeadLetterFilterSchema, {
        since: timestampFromDate(start),
        until: timestampFromDate(new Date(start.getTime() + 60 * minute)),
        ...over,
      }),
  };
}

async function rejection(p: Promise<unknown>): Promise<ConnectError> {
  return p.then(
    () => {
      throw new Error("expected the call to fail");
    },
    (e: unknown) => ConnectError.from(e),
  );
}

async function deadLetterRow(id: string) {
  const r = await herald.db.pool.query<{ redriven_at: Date | null; redrive_count: number; status: Status; created_at: Date }>(
    "SELECT redriven_at, redrive_count, status, created_at FROM dead_letters WHERE notification_id = $1",
    [id],
  );
  return r.rows[0];
}

describe("writeDeadLetter", () => {
  it("stores the dead letter and publishes a DeadLetter on herald.dlq keyed by notification id", async () => {
    const w = windowAt("2021-01-01T00:00:00Z");
    const id = await createNotification(Channel.EMAIL);
    await kill(id, { status: Status.DEAD_LETTERED, error: "503 try later", attempts: 4, at: w.at(1), correlationId: "corr-dlq-1" });

    expect(await deadLetterRow(id)).toEqual({ redriven_at: null, redrive_count: 0, status: Status.DEAD_LETTERED, created_at: w.at(1) });
    const records = await readTopic(herald.topic("herald.dlq"), { until: (r) => r.some((x) => x.key === id) });
    const mine = records.filter((r) => r.key === id);
    expect(mine).toHaveLength(1);
    expect(mine[0]!.headers).toEqual({ tenant: "tenant-a", "correlation-id": "corr-dlq-1" });
    const dl = fromBinary(DeadLetterSchema, mine[0]!.value);
    expect(dl).toMatchObject({
      notificationId: id,
      channel: Channel.EMAIL,
      status: Status.DEAD_LETTERED,
      lastError: "503 try later",
      attempts: 4,
      redriveCount: 0,
    });
    expect(timestampDate(dl.deadLetterTime!)).toEqual(w.at(1));
    expect(dl.notification).toMatchObject({ id, status: Status.DEAD_LETTERED, attempts: 4, lastError: "503 try later" });
  });

  it("refuses a row that is not FAILED or DEAD_LETTERED", async () => {
    const id = await createNotification(Channel.EMAIL);
    const err = await inTransaction(herald.db.pool, async (client) => {
      const row = (await client.query<NotificationRow>("SELECT * FROM notifications WHERE id = $1", [id])).rows[0]!;
      return writeDeadLetter(client, row, { now: new Date() }).then(() => undefined, (e: unknown) => e as Error);
    });
    expect(err?.message).toBe(`writeDeadLetter: notification ${id} is QUEUED, not FAILED or DEAD_LETTERED`);
    expect(await deadLetterRow(id)).toBeUndefined();
  });
});

describe("ListDeadLetters", () => {
  it("pages newest first (page_size 2 over 5), ties broken by id, with no repeats", async () => {
    const w = windowAt("2021-02-01T00:00:00Z");
    const times = [0, 1, 2, 2, 3];
    const ids: string[] = [];
    for (const t of times) {
      const id = await createNotification(Channel.EMAIL);
      await kill(id, { at: w.at(t) });
      ids.push(id);
    }
    const [a, b, c, d, e] = ids as [string, string, string, string, string];
    const tied = [c, d].sort();
    const expected = [e, ...tied, b, a];

    const pages: string[][] = [];
    let pageToken = "";
    do {
      const res = await dlqA.listDeadLetters({ filter: w.filter(), pageSize: 2, pageToken });
      pages.push(res.deadLetters.map((dl) => dl.notificationId));
      pageToken = res.nextPageToken;
      expect(pages.length).toBeLessThanOrEqual(3);
    } while (pageToken !== "");
    expect(pages).toEqual([expected.slice(0, 2), expected.slice(2, 4), expected.slice(4)]);

    const all = await dlqA.listDeadLetters({ filter: w.filter() });
    expect(all.deadLetters.map((dl) => dl.notificationId)).toEqual(expected);
    expect(all.nextPageToken).toBe("");
    expect(all.deadLetters[0]!.notification).toMatchObject({ id: e, status: Status.FAILED, recipient: { userId: "dl-user" } });
  });

  it("pages exactly across rows dead within the same millisecond", async () => {
    const w = windowAt("2021-02-02T00:00:00Z");
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const id = await createNotification(Channel.EMAIL);
      await kill(id, { at: w.at(0) });
      ids.push(id);
    }
    // Microseconds a JS Date cannot carry: 5, 6 and 7 µs past the same instant.
    await herald.db.pool.query(
      `UPDATE dead_letters SET created_at = created_at + (x.us || ' microseconds')::interval
       FROM unnest($1::uuid[], $2::int[]) AS x(id, us) WHERE notification_id = x.id`,
      [ids, [5, 6, 7]],
    );
    const seen: string[] = [];
    let pageToken = "";
    do {
      const res = await dlqA.listDeadLetters({ filter: w.filter(), pageSize: 1, pageToken });
      seen.push(...res.deadLetters.map((dl) => dl.notificationId));
      pageToken = res.nextPageToken;
    } while (pageToken !== "" && seen.length < 10);
    expect(seen).toEqual([...ids].reverse());
  });

  describe("filters", () => {
    const w = windowAt("2021-03-01T00:00:00Z");
    const made: Record<string, string> = {};
    beforeAll(async () => {
      const specs: Array<[string, DeliverableChannel, Status.FAILED | Status.DEAD_LETTERED, string]> = [
        ["email-failed", Channel.EMAIL, Status.FAILED, "550 Mailbox unavailable"],
        ["sms-dead", Channel.SMS, Status.DEAD_LETTERED, "timeout after 30s"],
        ["push-failed", Channel.PUSH, Status.FAILED, "token 100% invalid_registration"],
        ["webhook-dead", Channel.WEBHOOK, Status.DEAD_LETTERED, "HTTP 503 from receiver"],
        ["email-dead", Channel.EMAIL, Status.DEAD_LETTERED, "mailbox full (MAILBOX_FULL)"],
      ];
      for (const [i, [name, channel, status, error]] of specs.entries()) {
        made[name] = await createNotification(channel);
        await kill(made[name], { status, error, at: w.at(i * 10) });
      }
    });

    const cases: Array<[string, FilterInit, string[]]> = [
      ["everything, newest first", {}, ["email-dead", "webhook-dead", "push-failed", "sms-dead", "email-failed"]],
      ["channel", { channel: Channel.EMAIL }, ["email-dead", "email-failed"]],
      ["status", { status: Status.FAILED }, ["push-failed", "email-failed"]],
      ["error, case-insensitive", { errorContains: "MAILBOX" }, ["email-dead", "email-failed"]],
      ["error % taken literally", { errorContains: "%" }, ["push-failed"]],
      ["error _ taken literally", { errorContains: "_" }, ["email-dead", "push-failed"]],
      ["error \\ taken literally", { errorContains: "\\" }, []],
      ["channel and status", { channel: Channel.EMAIL, status: Status.DEAD_LETTERED }, ["email-dead"]],
    ];
    it.each(cases)("%s", async (_name, over, names) => {
      const res = await dlqA.listDeadLetters({ filter: w.filter(over) });
      expect(res.deadLetters.map((dl) => dl.notificationId)).toEqual(names.map((n) => made[n]));
    });

    it("since is inclusive, until exclusive", async () => {
      const res = await dlqA.listDeadLetters({
        filter: { since: timestampFromDate(w.at(10)), until: timestampFromDate(w.at(30)) },
      });
      expect(res.deadLetters.map((dl) => dl.notificationId)).toEqual([made["push-failed"], made["sms-dead"]]);
    });
  });
});

describe("GetDeadLetter", () => {
  it("returns one with the notification as it is now; not dead or unknown is NOT_FOUND", async () => {
    const w = windowAt("2021-04-01T00:00:00Z");
    const id = await createNotification(Channel.SMS);
    await kill(id, { status: Status.DEAD_LETTERED, error: "carrier timeout", attempts: 4, at: w.at(0) });
    const { deadLetter } = await dlqA.getDeadLetter({ notificationId: id });
    expect(deadLetter).toMatchObject({
      notificationId: id,
      channel: Channel.SMS,
      status: Status.DEAD_LETTERED,
      lastError: "carrier timeout",
      attempts: 4,
      redriveCount: 0,
      notification: { id, status: Status.DEAD_LETTERED, recipient: { address: { case: "phone", value: "+14155550100" } } },
    });
    expect(timestampDate(deadLetter!.deadLetterTime!)).toEqual(w.at(0));

    const queued = await createNotification(Channel.SMS);
    const notDead = await rejection(dlqA.getDeadLetter({ notificationId: queued }));
    expect([notDead.code, notDead.rawMessage]).toEqual([Code.NotFound, `no dead letter for notification ${queued}`]);
    const unknown = "0190f5e2-0000-7000-8000-000000000000";
    expect((await rejection(dlqA.getDeadLetter({ notificationId: unknown }))).code).toBe(Code.NotFound);
  });
});

describe("RedriveDeadLetters", () => {
  it("queues one again with a fresh budget, a new Dispatch and a 'redriven' event; it leaves the list", async () => {
    const w = windowAt("2021-05-01T00:00:00Z");
    const id = await createNotification(Channel.EMAIL, KEY_A, "redrive-user");
    await kill(id, { status: Status.DEAD_LETTERED, error: "503", attempts: 4, at: w.at(0) });

    const before = Date.now();
    const res = await dlqA.redriveDeadLetters(
      { target: { case: "notificationId", value: id } },
      { headers: { "x-request-id": "req-redrive-1" } },
    );
    expect(res.notificationIds).toEqual([id]);

    const { notification, history } = await herald.client().get({ id });
    expect(notification).toMatchObject({ status: Status.QUEUED, attempts: 4 });
    expect(history.slice(-2).map((e) => [e.status, e.detail, e.attempt])).toEqual([
      [Status.DEAD_LETTERED, "gave up", 4],
      [Status.QUEUED, "redriven", 4],
    ]);
    const row = await herald.db.pool.query("SELECT attempts, max_attempts, next_attempt_at FROM notifications WHERE id = $1", [id]);
    expect(row.rows[0]).toEqual({ attempts: 4, max_attempts: 4 + herald.config.delivery.maxAttempts.email, next_attempt_at: null });
    const dl = await deadLetterRow(id);
    expect(dl?.redrive_count).toBe(1);
    expect(dl?.redriven_at?.getTime()).toBeGreaterThanOrEqual(before - 1000);

    expect((await dlqA.listDeadLetters({ filter: w.filter() })).deadLetters).toEqual([]);
    expect((await rejection(dlqA.getDeadLetter({ notificationId: id }))).code).toBe(Code.NotFound);

    const dispatches = await readTopic(herald.topic("herald.email"), {
      until: (r) => r.some((x) => x.headers.attempt === "5" && fromBinary(DispatchSchema, x.value).notificationId === id),
    });
    const mine = dispatches.filter((r) => fromBinary(DispatchSchema, r.value).notificationId === id);
    expect(mine.map((r) => [r.key, r.headers.attempt, fromBinary(DispatchSchema, r.value).attempt])).toEqual([
      ["tenant-a/redrive-user", "1", 1],
      ["tenant-a/redrive-user", "5", 5],
    ]);
    const statuses = await readTopic(herald.topic("herald.status"), {
      until: (r) => r.some((x) => x.key === id && fromBinary(StatusEventSchema, x.value).detail === "redriven"),
    });
    const redriven = statuses.find((x) => x.key === id && fromBinary(StatusEventSchema, x.value).detail === "redriven");
    expect(redriven?.headers).toMatchObject({ tenant: "tenant-a", "correlation-id": "req-redrive-1" });

    // Redriving it again is too late: it is QUEUED now.
    const again = await rejection(dlqA.redriveDeadLetters({ target: { case: "notificationId", value: id } }));
    expect([again.code, again.rawMessage]).toEqual([
      Code.FailedPrecondition,
      `notification ${id} is QUEUED; only FAILED and DEAD_LETTERED notifications can be redriven`,
    ]);
  });

  it("reopens the dead letter when a redriven notification dies again", async () => {
    const w = windowAt("2021-05-02T00:00:00Z");
    const id = await createNotification(Channel.WEBHOOK);
    await kill(id, { at: w.at(0), error: "first" });
    await dlqA.redriveDeadLetters({ target: { case: "notificationId", value: id } });
    await kill(id, { at: w.at(5), error: "second", attempts: 2 });

    expect(await deadLetterRow(id)).toEqual({ redriven_at: null, redrive_count: 1, status: Status.FAILED, created_at: w.at(5) });
    const { deadLetters } = await dlqA.listDeadLetters({ filter: w.filter() });
    expect(deadLetters.map((d) => [d.notificationId, d.lastError, d.attempts, d.redriveCount])).toEqual([[id, "second", 2, 1]]);
    const records = await readTopic(herald.topic("herald.dlq"), { until: (r) => r.filter((x) => x.key === id).length >= 2 });
    expect(records.filter((x) => x.key === id).map((x) => fromBinary(DeadLetterSchema, x.value).redriveCount)).toEqual([0, 1]);
  });

  it("redrives by filter up to limit, newest first, and leaves the rest", async () => {
    const w = windowAt("2021-06-01T00:00:00Z");
    const sms: string[] = [];
    for (let i = 0; i < 3; i++) {
      sms.push(await createNotification(Channel.SMS));
      await kill(sms[i]!, { status: Status.DEAD_LETTERED, at: w.at(i) });
    }
    const email = await createNotification(Channel.EMAIL);
    await kill(email, { at: w.at(10) });

    const first = await dlqA.redriveDeadLetters({ target: { case: "filter", value: w.filter({ channel: Channel.SMS }) }, limit: 2 });
    expect(first.notificationIds).toEqual([sms[2], sms[1]]);
    const rest = await dlqA.redriveDeadLetters({ target: { case: "filter", value: w.filter({ channel: Channel.SMS }) } });
    expect(rest.notificationIds).toEqual([sms[0]]);

    const statuses = await herald.db.pool.query<{ id: string; status: Status }>(
      "SELECT id, status FROM notifications WHERE id = ANY($1::uuid[]) ORDER BY id",
      [[...sms, email]],
    );
    expect(Object.fromEntries(statuses.rows.map((r) => [r.id, r.status]))).toEqual({
      [sms[0]!]: Status.QUEUED,
      [sms[1]!]: Status.QUEUED,
      [sms[2]!]: Status.QUEUED,
      [email]: Status.FAILED,
    });
    expect((await dlqA.listDeadLetters({ filter: w.filter() })).deadLetters.map((d) => d.notificationId)).toEqual([email]);
  });

  it("works through a filter in batches of one transaction each", async () => {
    const w = windowAt("2021-06-02T00:00:00Z");
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      ids.push(await createNotification(Channel.PUSH));
      await kill(ids[i]!, { at: w.at(i), attempts: 3 });
    }
    const store = createDeadLetterStore({ pool: herald.db.pool, maxAttempts: () => 2, batchSize: 2 });
    const filter = { since: w.at(0), until: w.at(60) };
    const opts = { now: new Date(), correlationId: "batch-test" };
    expect(await store.redrive("tenant-a", { filter, limit: 4 }, opts)).toEqual({ kind: "redriven", ids: ids.slice(1).reverse() });
    expect(await store.redrive("tenant-a", { filter, limit: 4 }, opts)).toEqual({ kind: "redriven", ids: [ids[0]] });
    expect(await store.redrive("tenant-a", { filter, limit: 4 }, opts)).toEqual({ kind: "redriven", ids: [] });
    const rows = await herald.db.pool.query<{ max_attempts: number }>("SELECT max_attempts FROM notifications WHERE id = ANY($1::uuid[])", [ids]);
    expect(rows.rows.map((r) => r.max_attempts)).toEqual([5, 5, 5, 5, 5]);
  });

  it("refuses one that is not dead (FAILED_PRECONDITION) or unknown (NOT_FOUND), changing nothing", async () => {
    const queued = await createNotification(Channel.EMAIL);
    const err = await rejection(dlqA.redriveDeadLetters({ target: { case: "notificationId", value: queued } }));
    expect([err.code, err.rawMessage]).toEqual([
      Code.FailedPrecondition,
      `notification ${queued} is QUEUED; only FAILED and DEAD_LETTERED notifications can be redriven`,
    ]);
    const events = await herald.db.pool.query("SELECT status FROM status_events WHERE notification_id = $1", [queued]);
    expect(events.rows).toEqual([{ status: Status.QUEUED }]);

    const unknown = "0190f5e2-0000-7000-8000-000000000001";
    const missing = await rejection(dlqA.redriveDeadLetters({ target: { case: "notificationId", value: unknown } }));
    expect([missing.code, missing.rawMessage]).toEqual([Code.NotFound, `notification ${unknown} not found`]);
  });
});

describe("tenant isolation", () => {
  it("tenant B sees none of A's dead letters and cannot redrive them", async () => {
    const w = windowAt("2021-07-01T00:00:00Z");
    const id = await createNotification(Channel.EMAIL);
    await kill(id, { at: w.at(0) });

    expect((await dlqB.listDeadLetters({})).deadLetters).toEqual([]);
    expect((await rejection(dlqB.getDeadLetter({ notificationId: id }))).code).toBe(Code.NotFound);
    const one = await rejection(dlqB.redriveDeadLetters({ target: { case: "notificationId", value: id } }));
    expect([one.code, one.rawMessage]).toEqual([Code.NotFound, `notification ${id} not found`]);
    expect((await dlqB.redriveDeadLetters({ target: { case: "filter", value: {} } })).notificationIds).toEqual([]);

    expect((await dlqA.listDeadLetters({ filter: w.filter() })).deadLetters.map((d) => d.notificationId)).toEqual([id]);
    expect((await deadLetterRow(id))?.redriven_at).toBeNull();
  });
});

describe("validation", () => {
  const ts = (seconds: bigint, nanos = 0) => ({ seconds, nanos });
  const list: Array<[string, Record<string, unknown>, string]> = [
    ["page_size negative", { pageSize: -1 }, "page_size: must be 0 to 500 (0 means 100)"],
    ["page_size too big", { pageSize: 501 }, "page_size: must be 0 to 500 (0 means 100)"],
    ["page_token garbage", { pageToken: "not-a-token" }, "page_token: must be a next_page_token from a previous response"],
    [
      "page_token forged out of range",
      { pageToken: Buffer.from(JSON.stringify({ v: 1, createdUs: "9223372036854775807", id: "0190a8f0-0000-7000-8000-000000000000" })).toString("base64url") },
      "page_token: must be a next_page_token from a previous response",
    ],
    ["since nanos", { filter: { since: ts(0n, -1) } }, "filter.since.nanos: must be 0 to 999999999"],
    ["until seconds", { filter: { until: ts(300_000_000_000n) } }, "filter.until.seconds: must be between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z"],
    ["until before since", { filter: { since: ts(100n), until: ts(100n) } }, "filter.until: must be after filter.since"],
    ["unknown channel", { filter: { channel: 99 } }, "filter.channel: must be a known channel, got 99"],
    ["status not dead", { filter: { status: Status.SENT } }, "filter.status: must be STATUS_FAILED or STATUS_DEAD_LETTERED when set"],
    ["error too long", { filter: { errorContains: "x".repeat(257) } }, "filter.error_contains: must be at most 256 characters"],
    ["error with NUL", { filter: { errorContains: "a\u0000b" } }, "filter.error_contains: must not contain NUL"],
  ];
  it.each(list)("ListDeadLetters: %s", async (_name, req, message) => {
    const err = await rejection(dlqA.listDeadLetters(req));
    expect([err.code, err.rawMessage]).toEqual([Code.InvalidArgument, message]);
  });

  const redrive: Array<[string, Record<string, unknown>, string]> = [
    ["no target", {}, "target: is required: set notification_id or filter"],
    ["empty id", { target: { case: "notificationId", value: "" } }, "notification_id: is required"],
    ["bad id", { target: { case: "notificationId", value: "nope" } }, "notification_id: must be a UUID like 123e4567-e89b-12d3-a456-426614174000"],
    ["limit negative", { target: { case: "filter", value: {} }, limit: -1 }, "limit: must be 0 to 10000 (0 means 1000)"],
    ["limit too big", { target: { case: "filter", value: {} }, limit: 10_001 }, "limit: must be 0 to 10000 (0 means 1000)"],
    ["bad filter", { target: { case: "filter", value: { status: Status.QUEUED } } }, "filter.status: must be STATUS_FAILED or STATUS_DEAD_LETTERED when set"],
  ];
  it.each(redrive)("RedriveDeadLetters: %s", async (_name, req, message) => {
    const err = await rejection(dlqA.redriveDeadLetters(req));
    expect([err.code, err.rawMessage]).toEqual([Code.InvalidArgument, message]);
  });

  it("GetDeadLetter: a bad id", async () => {
    const err = await rejection(dlqA.getDeadLetter({ notificationId: "x" }));
    expect([err.code, err.rawMessage]).toEqual([Code.InvalidArgument, "notification_id: must be a UUID like 123e4567-e89b-12d3-a456-426614174000"]);
  });
});

describe("herald dlq", () => {
  function captured() {
    let out = "";
    let err = "";
    return {
      io: { out: { write: (s: string) => (out += s) }, err: { write: (s: string) => (err += s) } },
      get out() {
        return out;
      },
      get err() {
        return err;
      },
    };
  }
  const run = async (...args: string[]) => {
    const c = captured();
    await runDlqCommand([...args, "--addr", herald.grpcAddress, "--api-key", KEY_A], {}, c.io);
    return c;
  };

  it("lists as a table or JSON, and redrives by id and with --all", async () => {
    const w = windowAt("2021-08-01T00:00:00Z");
    const window = ["--since", w.at(0).toISOString(), "--until", w.at(60).toISOString()];
    const email = await createNotification(Channel.EMAIL);
    await kill(email, { at: w.at(1), error: "550 Mailbox unavailable\nremote said no", attempts: 1 });
    const sms = await createNotification(Channel.SMS);
    await kill(sms, { status: Status.DEAD_LETTERED, at: w.at(2), error: "x".repeat(100), attempts: 4 });

    const listed = await run("list", ...window);
    const lines = listed.out.trimEnd().split("\n");
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^TIME\s+ID\s+CHANNEL\s+STATUS\s+ATTEMPTS\s+LAST ERROR$/);
    expect(lines[1]!.split(/\s{2,}/)).toEqual([w.at(2).toISOString(), sms, "sms", "dead_lettered", "4", `${"x".repeat(59)}…`]);
    expect(lines[2]!.split(/\s{2,}/)).toEqual([w.at(1).toISOString(), email, "email", "failed", "1", "550 Mailbox unavailable remote said no"]);

    const limited = await run("list", ...window, "--limit", "1");
    expect(limited.out.trimEnd().split("\n")).toHaveLength(2);
    expect(limited.err).toContain("raise --limit");

    const json = JSON.parse((await run("list", ...window, "--channel", "email", "--json")).out) as {
      deadLetters: Array<{ notificationId: string; status: string; notification: { id: string } }>;
    };
    expect(json.deadLetters.map((d) => [d.notificationId, d.status, d.notification.id])).toEqual([[email, "STATUS_FAILED", email]]);

    expect((await run("redrive", email)).out).toBe(`${email}\n`);
    const all = await run("redrive", "--all", ...window, "--status", "dead_lettered");
    expect(all.out).toBe(`${sms}\n`);
    const empty = await run("list", ...window);
    expect([empty.out, empty.err]).toEqual(["", "no dead letters\n"]);
  });

  it("refuses ambiguous redrive usage", async () => {
    await expect(run("redrive")).rejects.toThrow(/redrive takes one ID, or --all/);
    await expect(run("redrive", "0190f5e2-0000-7000-8000-000000000000", "--all")).rejects.toThrow(/redrive takes one ID/);
    await expect(run("redrive", "0190f5e2-0000-7000-8000-000000000000", "--channel", "sms")).rejects.toThrow(
      "--channel goes with --all, not with an ID",
    );
    await expect(run("list", "--status", "sent")).rejects.toThrow("--status must be failed or dead_lettered");
  });
});
