import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from "../gen/grpc/health/v1/health_pb.js";
import { Channel, Status } from "../gen/herald/v1/notification_pb.js";
import { DispatchSchema } from "../gen/herald/v1/dispatch_pb.js";
import { createGrpcTransport } from "../src/client/index.js";
import { createTestDatabase, PG_SERVER, type TestDatabase } from "./support/db.js";
import { KEY_A, startTestHerald, type TestHerald } from "./support/herald.js";
import { readTopic } from "./support/kafka-reader.js";
import { startPrivateBroker, type PrivateBroker } from "./support/private-broker.js";
import { startTcpProxy, type TcpProxy } from "./support/tcp-proxy.js";

// What Herald promises while a dependency is away (README, "Errors"): with Kafka down, Create
// still accepts and the outbox holds the work until the broker returns, then every record is
// published once; with PostgreSQL down, calls fail fast with UNAVAILABLE and nothing is half
// written. Either way health and /readyz say so, and recover by themselves.

// Health rounds run every 2 s with a 1.5 s timeout: a change shows within ~4 s; allow more.
const HEALTH_CHANGE_MS = 15_000;
// A call that is neither answered nor refused by then counts as a hang.
const CALL_DEADLINE_MS = 5_000;

function email(userId: string) {
  return {
    channel: Channel.EMAIL,
    recipient: { userId, address: { case: "email" as const, value: `${userId}@example.com` } },
    body: { case: "content" as const, value: { subject: "Outage", text: "Still here" } },
  };
}

/** Health on both listeners: Connect over the HTTP listener, gRPC over the grpc-js one. */
function healthClients(herald: TestHerald): Array<[string, Client<typeof Health>]> {
  const grpc = createGrpcTransport({ address: herald.grpcAddress });
  closers.push(() => grpc.close());
  return [
    ["connect", createClient(Health, createConnectTransport({ baseUrl: herald.httpUrl, httpVersion: "1.1" }))],
    ["grpc", createClient(Health, grpc)],
  ];
}
const closers: Array<() => void> = [];
afterAll(() => closers.splice(0).forEach((close) => close()));

async function expectHealth(herald: TestHerald, status: ServingStatus, kafkaOk: boolean, postgresOk: boolean): Promise<void> {
  for (const [name, client] of healthClients(herald)) {
    await expect
      .poll(async () => (await client.check({ service: "" }, { timeoutMs: 2_000 })).status, { timeout: HEALTH_CHANGE_MS, interval: 250, message: name })
      .toBe(status);
    // The named service shares the overall status.
    expect((await client.check({ service: "herald.v1.NotificationService" })).status, name).toBe(status);
  }
  const res = await fetch(`${herald.httpUrl}/readyz`);
  expect(res.status).toBe(status === ServingStatus.SERVING ? 200 : 503);
  expect(await res.json()).toMatchObject({
    status: status === ServingStatus.SERVING ? "ready" : "not ready",
    checks: { postgres: { ok: postgresOk }, kafka: { ok: kafkaOk } },
  });
}

async function countRows(h: TestHerald, sql: string, params: unknown[] = []): Promise<number> {
  const r = await h.db.pool.query<{ n: string }>(`SELECT count(*) AS n FROM (${sql}) q`, params);
  return Number(r.rows[0]!.n);
}

const PUBLISHED = "SELECT 1 FROM outbox WHERE notification_id = ANY($1::uuid[]) AND published_at IS NOT NULL";

/** The call's error as a ConnectError; fails the test if the call succeeded. */
async function failure(call: Promise<unknown>): Promise<ConnectError> {
  return call.then(
    () => expect.fail("expected the call to fail"),
    (err: unknown) => ConnectError.from(err),
  );
}

describe("Kafka stopped", () => {
  let broker: PrivateBroker | undefined;
  let herald: TestHerald | undefined;

  beforeAll(async () => {
    broker = await startPrivateBroker();
    herald = await startTestHerald({ env: { KAFKA_BROKERS: broker.brokers.join(",") } });
  });
  afterAll(async () => {
    await herald?.stop();
    await broker?.destroy();
  });

  it("accepts while Kafka is down, holds the work in the outbox, publishes each once when it returns", { timeout: 180_000 }, async () => {
    const h = herald!;
    const b = broker!;
    await expectHealth(h, ServingStatus.SERVING, true, true);

    await b.stop();
    await expectHealth(h, ServingStatus.NOT_SERVING, false, true);

    const client = h.client(KEY_A);
    const accepted = await Promise.all(
      Array.from({ length: 30 }, async (_, i) => {
        const { notification } = await client.create({ notification: email(`kafka-down-${i}`) }, { timeoutMs: CALL_DEADLINE_MS });
        expect(notification?.status).toBe(Status.QUEUED);
        return notification!;
      }),
    );
    const ids = accepted.map((n) => n.id);
    const userOf = new Map(accepted.map((n) => [n.id, n.recipient!.userId]));
    expect(new Set(ids).size).toBe(30);

    // Whatever the relay has tried by now (it is woken by each commit's NOTIFY) failed: every
    // row is still unmarked. A row marked without reaching Kafka would also be missing from
    // the topic read below, once the broker is back.
    const unpublished = await h.db.pool.query<{ topic: string; n: string }>(
      `SELECT topic, count(*) AS n FROM outbox WHERE notification_id = ANY($1::uuid[]) AND published_at IS NULL GROUP BY topic ORDER BY topic`,
      [ids],
    );
    expect(unpublished.rows).toEqual([
      { topic: "herald.email", n: "30" },
      { topic: "herald.status", n: "30" },
    ]);
    expect(await countRows(h, PUBLISHED, [ids])).toBe(0);

    await b.start();

    const records = await readTopic(h.topic("herald.email"), {
      brokers: b.brokers,
      until: (rs) => {
        const published = new Set(rs.map((r) => fromBinary(DispatchSchema, r.value).notificationId));
        return ids.every((id) => published.has(id));
      },
      timeoutMs: 60_000,
    });
    const seen = new Map<string, number>();
    for (const r of records) {
      const dispatch = fromBinary(DispatchSchema, r.value);
      seen.set(dispatch.notificationId, (seen.get(dispatch.notificationId) ?? 0) + 1);
      expect(r.key).toBe(`tenant-a/${userOf.get(dispatch.notificationId)}`);
    }
    // Every accepted notification exactly once, and nothing else on the topic.
    expect(Object.fromEntries(seen)).toEqual(Object.fromEntries(ids.map((id) => [id, 1])));

    await expect.poll(() => countRows(h, PUBLISHED, [ids]), { timeout: 30_000, interval: 250 }).toBe(60);
    await expectHealth(h, ServingStatus.SERVING, true, true);
  });
});

describe("PostgreSQL unreachable", () => {
  let db: TestDatabase | undefined;
  let proxy: TcpProxy | undefined;
  let herald: TestHerald | undefined;

  beforeAll(async () => {
    db = await createTestDatabase("herald_outage");
    const server = new URL(PG_SERVER);
    proxy = await startTcpProxy({ host: server.hostname, port: Number(server.port || 5432) });
    // Herald reaches the test database through the proxy; db.pool (the test's view) goes direct.
    const viaProxy = new URL(db.url);
    viaProxy.port = String(proxy.port);
    // Every role runs, the scheduler included: its transactions every 100 ms must survive cuts too.
    herald = await startTestHerald({ db, databaseUrl: viaProxy.toString() });
  });
  afterAll(async () => {
    // Restored first so Herald can flush and close cleanly.
    await proxy?.restore();
    await herald?.stop();
    await proxy?.close();
    await db?.drop();
  });

  it("answers UNAVAILABLE fast, writes nothing, and recovers when the database returns", { timeout: 120_000 }, async () => {
    const h = herald!;
    const p = proxy!;
    const client = h.client(KEY_A);
    await expectHealth(h, ServingStatus.SERVING, true, true);
    const { notification: before } = await client.create({ notification: email("pg-before") });
    expect(p.openConnections()).toBeGreaterThan(0); // Herald really goes through the proxy

    await p.cut();
    try {
      const rowsAtCut = await countRows(h, "SELECT 1 FROM notifications");
      // The deadline turns a hang into DEADLINE_EXCEEDED, so the code assertion also bounds the time.
      const creates = await Promise.all(
        Array.from({ length: 20 }, (_, i) => failure(client.create({ notification: email(`pg-down-${i}`) }, { timeoutMs: CALL_DEADLINE_MS }))),
      );
      expect(creates.map((e) => Code[e.code])).toEqual(creates.map(() => Code[Code.Unavailable]));
      // The cause stays in the logs.
      expect(creates[0]!.rawMessage).toBe("database unavailable, retry later");
      const getErr = await failure(client.get({ id: before!.id }, { timeoutMs: CALL_DEADLINE_MS }));
      expect(getErr.code, getErr.rawMessage).toBe(Code.Unavailable);
      await expectHealth(h, ServingStatus.NOT_SERVING, true, false);
      expect(await countRows(h, "SELECT 1 FROM notifications")).toBe(rowsAtCut);
    } finally {
      await p.restore();
    }

    const { notification: after } = await client.create({ notification: email("pg-after") }, { timeoutMs: CALL_DEADLINE_MS });
    expect(after?.status).toBe(Status.QUEUED);
    expect((await client.get({ id: before!.id }, { timeoutMs: CALL_DEADLINE_MS })).notification?.id).toBe(before!.id);
    await expectHealth(h, ServingStatus.SERVING, true, true);
    expect(await countRows(h, "SELECT 1 FROM notifications WHERE id = ANY($1::uuid[])", [[before!.id, after!.id]])).toBe(2);
    await expectWhole(h);
    // The relay found its way back too: the outbox drains.
    await expect.poll(() => countRows(h, "SELECT 1 FROM outbox WHERE published_at IS NULL"), { timeout: 30_000, interval: 250 }).toBe(0);
  });

  // pg emits 'error' on a checked-out client whose connection drops mid-transaction; unheard,
  // that would kill the process (src/store/db.ts inTransaction listens for it).
  it("a cut inside an accept transaction rolls it back whole and answers UNAVAILABLE", { timeout: 120_000 }, async () => {
    const h = herald!;
    const p = proxy!;
    const client = h.client(KEY_A);
    await client.create({ notification: email("pg-warm-up") }, { timeoutMs: CALL_DEADLINE_MS });
    const rowsBefore = await countRows(h, "SELECT 1 FROM notifications");
    // Hold the accept transaction between its two inserts: its notification row is written,
    // its status event waits for this lock. The cut then lands inside the transaction.
    const locker = await h.db.pool.connect();
    try {
      await locker.query("BEGIN");
      await locker.query("LOCK TABLE status_events IN SHARE MODE");
      const pending = failure(client.create({ notification: email("pg-mid-txn") }, { timeoutMs: 10_000 }));
      await expect.poll(() => countRows(h, WAITING_ON_LOCK), { timeout: 10_000, interval: 50 }).toBe(1);
      await p.cut();
      const err = await pending;
      expect(err.code, err.rawMessage).toBe(Code.Unavailable);
    } finally {
      await locker.query("ROLLBACK");
      locker.release();
      await p.restore();
    }
    // Given the lock, the orphaned backend finds its client gone and rolls back: no COMMIT came.
    await expect.poll(() => countRows(h, STILL_INSERTING), { timeout: 10_000, interval: 50 }).toBe(0);
    expect(await countRows(h, "SELECT 1 FROM notifications")).toBe(rowsBefore);
    await expectWhole(h);
    const { notification } = await client.create({ notification: email("pg-after-mid-txn") }, { timeoutMs: CALL_DEADLINE_MS });
    expect(notification?.status).toBe(Status.QUEUED);
    await expectHealth(h, ServingStatus.SERVING, true, true);
  });
});

const WAITING_ON_LOCK =
  "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'";
const STILL_INSERTING =
  "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND state <> 'idle' AND query LIKE '%INSERT INTO status_events%'";

/** No notification without its first status event and both outbox records, and nothing orphaned. */
async function expectWhole(h: TestHerald): Promise<void> {
  const broken = {
    "notification without its first event": await countRows(
      h,
      "SELECT 1 FROM notifications n WHERE NOT EXISTS (SELECT 1 FROM status_events e WHERE e.notification_id = n.id AND e.sequence = 1)",
    ),
    "notification without dispatch and status records": await countRows(
      h,
      "SELECT 1 FROM notifications n WHERE (SELECT count(*) FROM outbox o WHERE o.notification_id = n.id) <> 2",
    ),
    "event without its notification": await countRows(
      h,
      "SELECT 1 FROM status_events e WHERE NOT EXISTS (SELECT 1 FROM notifications n WHERE n.id = e.notification_id)",
    ),
    "outbox record without its notification": await countRows(
      h,
      "SELECT 1 FROM outbox o WHERE NOT EXISTS (SELECT 1 FROM notifications n WHERE n.id = o.notification_id)",
    ),
  };
  expect(broken).toEqual(Object.fromEntries(Object.keys(broken).map((k) => [k, 0])));
}
