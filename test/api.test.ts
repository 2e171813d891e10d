import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { NotificationService } from "../gen/herald/v1/notification_service_pb.js";
import { Channel, Status, StatusEventSchema } from "../gen/herald/v1/notification_pb.js";
import { DispatchSchema } from "../gen/herald/v1/dispatch_pb.js";
import { KEY_A, KEY_B, startTestHerald, type TestHerald } from "./support/herald.js";
import { readTopic } from "./support/kafka-reader.js";

// The accept path end to end on real PostgreSQL and Kafka: every listener,
// the rows written, and the records the relay puts on Kafka.

let herald: TestHerald;

const auth = (key: string): Interceptor => (next) => (req) => {
  req.header.set("authorization", `Bearer ${key}`);
  return next(req);
};

function email(userId: string, to = "ada@example.com") {
  return {
    channel: Channel.EMAIL,
    recipient: { userId, address: { case: "email" as const, value: to } },
    body: { case: "content" as const, value: { subject: "Hi", text: "Hello" } },
    labels: { campaign: "welcome" },
  };
}

async function countRows(sql: string, params: unknown[] = []): Promise<number> {
  const r = await herald.db.pool.query<{ n: string }>(`SELECT count(*) AS n FROM (${sql}) q`, params);
  return Number(r.rows[0]!.n);
}

beforeAll(async () => {
  herald = await startTestHerald();
});
afterAll(async () => {
  await herald?.stop();
});

describe("Create over every listener", () => {
  const transports = () => ({
    "grpc-js": herald.client(KEY_A),
    "connect http/1.1": createClient(NotificationService, createConnectTransport({ baseUrl: herald.httpUrl, httpVersion: "1.1", interceptors: [auth(KEY_A)] })),
    "connect h2c": createClient(NotificationService, createConnectTransport({ baseUrl: herald.httpUrl, httpVersion: "2", interceptors: [auth(KEY_A)] })),
    "grpc-web http/1.1": createClient(NotificationService, createGrpcWebTransport({ baseUrl: herald.httpUrl, httpVersion: "1.1", interceptors: [auth(KEY_A)] })),
  });

  it("stores the row and first event, and publishes a Dispatch on herald.email keyed by user", async () => {
    const ids: Record<string, string> = {};
    for (const [name, client] of Object.entries(transports())) {
      const userId = `user-${name.replace(/\W/g, "-")}`;
      const { notification } = await client.create({ notification: email(userId) }, { headers: { "x-request-id": `req-${userId}` } });
      expect(notification?.status, name).toBe(Status.QUEUED);
      expect(notification?.recipient?.userId).toBe(userId);
      ids[userId] = notification!.id;

      const row = await herald.db.pool.query("SELECT tenant, status, channel, user_id, correlation_id FROM notifications WHERE id = $1", [notification!.id]);
      expect(row.rows[0]).toEqual({ tenant: "tenant-a", status: Status.QUEUED, channel: Channel.EMAIL, user_id: userId, correlation_id: `req-${userId}` });
      const events = await herald.db.pool.query("SELECT sequence, status, attempt FROM status_events WHERE notification_id = $1", [notification!.id]);
      expect(events.rows).toEqual([{ sequence: 1, status: Status.QUEUED, attempt: 0 }]);
    }

    const records = await readTopic(herald.topic("herald.email"), { until: (r) => r.length >= 4 });
    expect(records).toHaveLength(4);
    for (const record of records) {
      const dispatch = fromBinary(DispatchSchema, record.value);
      // Keyed by tenant and user: <tenant>/<user_id>.
      expect(record.key.startsWith("tenant-a/")).toBe(true);
      const userId = record.key.slice("tenant-a/".length);
      expect(ids[userId]).toBe(dispatch.notificationId);
      expect(record.headers).toMatchObject({ tenant: "tenant-a", "correlation-id": `req-${userId}`, attempt: "1" });
      expect(dispatch).toMatchObject({ tenant: "tenant-a", attempt: 1, correlationId: `req-${userId}` });
      expect(dispatch.notification?.recipient?.address).toEqual({ case: "email", value: "ada@example.com" });
    }
  });

  it("accepts the documented JSON request as written, over plain fetch", async () => {
    const body = `{"notification":{"channel":"CHANNEL_EMAIL","recipient":{"userId":"u-1","email":"ada@example.com"},"content":{"subject":"Hi","text":"Hello"}},"idempotencyKey":"k-1"}`;
    const res = await fetch(`${herald.httpUrl}/herald.v1.NotificationService/Create`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${KEY_A}` },
      body,
    });
    expect(res.status).toBe(200);
    const json = (await res.json()) as { notification: { id: string; status: string; channel: string } };
    expect(json.notification).toMatchObject({ status: "STATUS_QUEUED", channel: "CHANNEL_EMAIL" });
    expect(await countRows("SELECT 1 FROM notifications WHERE id = $1 AND idempotency_key = 'k-1'", [json.notification.id])).toBe(1);
  });

  it("publishes every status event to herald.status keyed by notification id", async () => {
    const { notification } = await herald.client().create({ notification: email("status-user") });
    const records = await readTopic(herald.topic("herald.status"), { until: (r) => r.some((x) => x.key === notification!.id) });
    const mine = records.filter((r) => r.key === notification!.id).map((r) => fromBinary(StatusEventSchema, r.value));
    expect(mine).toHaveLength(1);
    expect(mine[0]).toMatchObject({ notificationId: notification!.id, sequence: 1, status: Status.QUEUED, userId: "status-user", channel: Channel.EMAIL });
  });
});

describe("validation", () => {
  const bad: Array<[string, Record<string, unknown>, string]> = [
    ["no notification", {}, "notification"],
    ["no channel", { notification: { ...email("v"), channel: Channel.UNSPECIFIED } }, "notification.channel"],
    ["bad email", { notification: email("v", "not-an-email") }, "notification.recipient.email"],
    ["phone not E.164", { notification: { ...email("v"), channel: Channel.SMS, recipient: { userId: "v", address: { case: "phone", value: "555-1234" } } } }, "notification.recipient.phone"],
    ["address kind vs channel", { notification: { ...email("v"), channel: Channel.SMS } }, "notification.recipient"],
    ["empty body", { notification: { ...email("v"), body: { case: undefined } } }, "notification"],
    ["empty content", { notification: { ...email("v"), body: { case: "content", value: {} } } }, "notification.content"],
    ["oversized content", { notification: { ...email("v"), body: { case: "content", value: { text: "x".repeat(300 * 1024) } } } }, "notification.content"],
    ["too many labels", { notification: { ...email("v"), labels: Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`k${i}`, "v"])) } }, "notification.labels"],
    ["no user id", { notification: { ...email("v"), recipient: { userId: "", address: { case: "email", value: "a@example.com" } } } }, "notification.recipient.user_id"],
    ["long idempotency key", { notification: email("v"), idempotencyKey: "k".repeat(200) }, "idempotency_key"],
  ];

  it.each(bad)("%s → INVALID_ARGUMENT naming %s, nothing stored", async (_name, request, field) => {
    const before = await countRows("SELECT 1 FROM notifications");
    const err = await herald.client().create(request).then(() => undefined, (e: unknown) => ConnectError.from(e));
    expect(err?.code).toBe(Code.InvalidArgument);
    expect(err?.rawMessage.startsWith(`${field}`)).toBe(true);
    expect(await countRows("SELECT 1 FROM notifications")).toBe(before);
  });

  it("schedule: deliver_at in the past, beyond the horizon, unknown zone, DST gap", async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ case: "deliverAt", value: { seconds: BigInt(Math.floor(Date.now() / 1000) - 60) } }, "deliver_at"],
      [{ case: "deliverAt", value: { seconds: BigInt(Math.floor(Date.now() / 1000) + 400 * 86400) } }, "deliver_at"],
      [{ case: "localTime", value: { dateTime: "2030-01-01T09:00:00", timeZone: "Mars/Olympus" } }, "local_time.time_zone"],
      [{ case: "localTime", value: { dateTime: "2027-03-28T02:30:00", timeZone: "Europe/Berlin" } }, "local_time.date_time"],
    ];
    for (const [when, field] of cases) {
      const err = await herald.client().schedule({ notification: email("s"), when: when as never }).then(() => undefined, (e: unknown) => ConnectError.from(e));
      expect(err?.code, field).toBe(Code.InvalidArgument);
      expect(err?.rawMessage.startsWith(field), err?.rawMessage).toBe(true);
    }
  });

  it("a request over the size limit is refused on both listeners, nothing stored", async () => {
    const before = await countRows("SELECT 1 FROM notifications");
    const huge = { notification: { ...email("big"), body: { case: "content" as const, value: { text: "x".repeat(2 * 1024 * 1024) } } } };
    const grpcErr = await herald.client().create(huge).then(() => undefined, (e: unknown) => ConnectError.from(e));
    expect(grpcErr?.code).toBe(Code.ResourceExhausted);
    const connect = createClient(NotificationService, createConnectTransport({ baseUrl: herald.httpUrl, httpVersion: "1.1", interceptors: [auth(KEY_A)] }));
    const connectErr = await connect.create(huge).then(() => undefined, (e: unknown) => ConnectError.from(e));
    expect(connectErr?.code).toBe(Code.ResourceExhausted);
    expect(await countRows("SELECT 1 FROM notifications")).toBe(before);
  });
});

describe("idempotency", () => {
  it("the same key twice → one row, one Kafka record, the same response", async () => {
    const client = herald.client();
    const first = await client.create({ notification: email("idem-user"), idempotencyKey: "order-42" });
    const second = await client.create({ notification: email("idem-user"), idempotencyKey: "order-42" });
    expect(second.notification?.id).toBe(first.notification?.id);
    // The first answer is built from the row as inserted, the second from the row as stored.
    expect(second.notification).toEqual(first.notification);
    expect(await countRows("SELECT 1 FROM notifications WHERE idempotency_key = 'order-42'")).toBe(1);
    const records = await readTopic(herald.topic("herald.email"), { until: (r) => r.some((x) => x.key === "tenant-a/idem-user") });
    expect(records.filter((r) => r.key === "tenant-a/idem-user")).toHaveLength(1);
  });

  it("the same key with a different request → ALREADY_EXISTS, nothing new", async () => {
    const client = herald.client();
    await client.create({ notification: email("idem-2"), idempotencyKey: "order-43" });
    const err = await client.create({ notification: email("idem-2", "bob@example.com"), idempotencyKey: "order-43" }).then(() => undefined, (e: unknown) => ConnectError.from(e));
    expect(err?.code).toBe(Code.AlreadyExists);
    expect(err?.rawMessage).toMatch(/^idempotency_key: /);
    expect(await countRows("SELECT 1 FROM notifications WHERE idempotency_key = 'order-43'")).toBe(1);
  });

  it("the request hash is stored only with a key: nothing compares a keyless one", async () => {
    const client = herald.client();
    const keyed = await client.create({ notification: email("idem-hash"), idempotencyKey: "order-44" });
    const keyless = await client.create({ notification: email("idem-hash") });
    const hashes = await herald.db.pool.query<{ id: string; request_hash: Buffer | null }>(
      "SELECT id, request_hash FROM notifications WHERE id = ANY($1::uuid[])",
      [[keyed.notification!.id, keyless.notification!.id]],
    );
    const byId = new Map(hashes.rows.map((r) => [r.id, r.request_hash]));
    expect(byId.get(keyed.notification!.id)).toHaveLength(32);
    expect(byId.get(keyless.notification!.id)).toBeNull();
  });

  it("keys are per tenant", async () => {
    const a = await herald.client(KEY_A).create({ notification: email("idem-3"), idempotencyKey: "shared-key" });
    const b = await herald.client(KEY_B).create({ notification: email("idem-3"), idempotencyKey: "shared-key" });
    expect(b.notification?.id).not.toBe(a.notification?.id);
  });
});

describe("auth and tenancy", () => {
  it("no key or an unknown key → UNAUTHENTICATED on both listeners", async () => {
    const noKey = createClient(NotificationService, createConnectTransport({ baseUrl: herald.httpUrl, httpVersion: "1.1" }));
    const e1 = await noKey.create({ notification: email("x") }).then(() => undefined, (e: unknown) => ConnectError.from(e));
    expect(e1?.code).toBe(Code.Unauthenticated);
    const e2 = await herald.client("wrong-key").create({ notification: email("x") }).then(() => undefined, (e: unknown) => ConnectError.from(e));
    expect(e2?.code).toBe(Code.Unauthenticated);
  });

  it("the dev key is refused outside dev mode", async () => {
    const err = await herald.client("herald-dev-key").get({ id: "0190b6a4-0000-7000-8000-000000000000" }).then(() => undefined, (e: unknown) => ConnectError.from(e));
    expect(err?.code).toBe(Code.Unauthenticated);
  });

  it("tenant B cannot Get or Cancel tenant A's notification", async () => {
    const { notification } = await herald.client(KEY_A).create({ notification: email("tenant-user") });
    const b = herald.client(KEY_B);
    const getErr = await b.get({ id: notification!.id }).then(() => undefined, (e: unknown) => ConnectError.from(e));
    expect(getErr?.code).toBe(Code.NotFound);
    const cancelErr = await b.cancel({ id: notification!.id }).then(() => undefined, (e: unknown) => ConnectError.from(e));
    expect(cancelErr?.code).toBe(Code.NotFound);
    const mine = await herald.client(KEY_A).get({ id: notification!.id });
    expect(mine.notification?.status).not.toBe(Status.CANCELED);
  });
});

describe("Get and Cancel", () => {
  it("Get returns the notification and its history", async () => {
    const client = herald.client();
    const { notification } = await client.create({ notification: email("get-user") });
    const got = await client.get({ id: notification!.id });
    expect(got.notification?.id).toBe(notification!.id);
    expect(got.notification?.labels).toEqual({ campaign: "welcome" });
    expect(got.history.map((e) => [e.sequence, e.status])).toEqual([[1, Status.QUEUED]]);
  });

  it("Cancel before release: CANCELED, and never published", async () => {
    const client = herald.client();
    const at = { seconds: BigInt(Math.floor(Date.now() / 1000) + 3), nanos: 0 };
    const { notification } = await client.schedule({ notification: email("cancel-user"), when: { case: "deliverAt", value: at } });
    expect(notification?.status).toBe(Status.SCHEDULED);
    // Due at the same instant and left alone: once it is on the topic, the scheduler has
    // released everything due by then, so the canceled one would be there too.
    await client.schedule({ notification: email("cancel-witness"), when: { case: "deliverAt", value: at } });
    const canceled = await client.cancel({ id: notification!.id });
    expect(canceled.notification?.status).toBe(Status.CANCELED);
    const got = await client.get({ id: notification!.id });
    expect(got.history.map((e) => e.status)).toEqual([Status.SCHEDULED, Status.CANCELED]);
    const records = await readTopic(herald.topic("herald.email"), { until: (r) => r.some((x) => x.key === "tenant-a/cancel-witness") });
    expect(records.filter((r) => r.key === "tenant-a/cancel-user")).toHaveLength(0);
  });

  it("Cancel after it was sent → FAILED_PRECONDITION", async () => {
    const client = herald.client();
    const { notification } = await client.create({ notification: email("late-user") });
    await herald.db.pool.query("UPDATE notifications SET status = $2 WHERE id = $1", [notification!.id, Status.SENT]);
    const err = await client.cancel({ id: notification!.id }).then(() => undefined, (e: unknown) => ConnectError.from(e));
    expect(err?.code).toBe(Code.FailedPrecondition);
    expect(err?.rawMessage).toContain("STATUS_SENT".replace("STATUS_", ""));
  });

  it("a malformed id is INVALID_ARGUMENT, an unknown one NOT_FOUND", async () => {
    const client = herald.client();
    const e1 = await client.get({ id: "nope" }).then(() => undefined, (e: unknown) => ConnectError.from(e));
    expect(e1?.code).toBe(Code.InvalidArgument);
    const e2 = await client.get({ id: "0190b6a4-0000-7000-8000-000000000000" }).then(() => undefined, (e: unknown) => ConnectError.from(e));
    expect(e2?.code).toBe(Code.NotFound);
  });
});

describe("HTTP probes and CORS", () => {
  it("/healthz and /readyz answer", async () => {
    expect((await fetch(`${herald.httpUrl}/healthz`)).status).toBe(200);
    const ready = await fetch(`${herald.httpUrl}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ status: "ready", checks: { postgres: { ok: true }, kafka: { ok: true }, redis: { ok: true } } });
  });
});
