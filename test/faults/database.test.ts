import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import { Channel, Status } from "../../gen/herald/v1/notification_pb.js";
import { createTestDatabase, PG_SERVER, type TestDatabase } from "../support/db.js";
import { KEY_A, startTestHerald, type TestHerald } from "../support/herald.js";
import { startTcpProxy, type TcpProxy } from "../support/tcp-proxy.js";
import { waitFor } from "../support/wait.js";

// A lost database fails fast and leaves nothing behind: through a partition that drops packets
// (the proxy's blackhole: nothing refused, nothing answered), every call answers UNAVAILABLE
// rather than hanging to its deadline, and once the partition heals the pool holds no connection
// that went silent in it. And idempotency keys expire.

// Generous: a call still hanging by then is a failure (DEADLINE_EXCEEDED), not a slow machine.
const DEADLINE_MS = 20_000;
const POOL_MAX = 4;

function email(userId: string, text = "Still here") {
  return {
    channel: Channel.EMAIL,
    recipient: { userId, address: { case: "email" as const, value: `${userId}@example.com` } },
    body: { case: "content" as const, value: { subject: "Partition", text } },
  };
}

/** The call's error code; fails the test if the call succeeded. */
async function codeOf(call: Promise<unknown>): Promise<string> {
  return call.then(
    () => expect.fail("expected the call to fail"),
    (err: unknown) => Code[ConnectError.from(err).code],
  );
}

async function count(h: TestHerald, sql: string, params: unknown[] = []): Promise<number> {
  const r = await h.db.pool.query<{ n: string }>(`SELECT count(*) AS n FROM (${sql}) q`, params);
  return Number(r.rows[0]!.n);
}

describe("PostgreSQL blackholed", () => {
  let db: TestDatabase | undefined;
  let proxy: TcpProxy | undefined;
  let herald: TestHerald | undefined;

  beforeAll(async () => {
    db = await createTestDatabase("herald_blackhole");
    const server = new URL(PG_SERVER);
    proxy = await startTcpProxy({ host: server.hostname, port: Number(server.port || 5432) });
    const viaProxy = new URL(db.url);
    viaProxy.port = String(proxy.port);
    // The API alone, so the pool's connections are the calls' (the relay would hold one for
    // its session), in a small pool. The test's own db.pool goes direct.
    herald = await startTestHerald({
      db,
      databaseUrl: viaProxy.toString(),
      roles: ["server"],
      env: {
        HERALD_DB_POOL_MAX: String(POOL_MAX),
        // The status feed's poll would tidy up a kept dead connection as a read does (see below).
        HERALD_WATCH_POLL_MS: "60000",
      },
    });
  });
  afterAll(async () => {
    await proxy?.restore();
    await herald?.stop();
    await proxy?.close();
    await db?.drop();
  });

  it("answers UNAVAILABLE, not a deadline, writes nothing, and keeps no dead connection once healed", { timeout: 180_000 }, async () => {
    const h = herald!;
    const p = proxy!;
    const client = h.client(KEY_A);
    const pool = h.rt.pool;
    // Warm: the pool holds connections, idle and healthy.
    const warm = await Promise.all(Array.from({ length: 8 }, (_, i) => client.create({ notification: email(`warm-${i}`) })));
    await Promise.all(warm.map(({ notification }) => client.get({ id: notification!.id })));
    expect(pool.totalCount).toBeGreaterThan(0);
    const rowsBefore = await count(h, "SELECT 1 FROM notifications");

    p.blackhole();
    try {
      // Creates alone, so the accept path's transactions hold the connections that go silent
      // (where a ROLLBACK once queued behind the stuck BEGIN). Reads would tidy up after them
      // (pg-pool destroys a connection whose plain query failed), hiding a kept one.
      const creates = Array.from({ length: 20 }, (_, i) => client.create({ notification: email(`dark-${i}`) }, { timeoutMs: DEADLINE_MS }));
      expect(await Promise.all(creates.map(codeOf))).toEqual(creates.map(() => "Unavailable"));
      expect(await count(h, "SELECT 1 FROM notifications")).toBe(rowsBefore);
    } finally {
      await p.restore();
    }

    // At once, before anything else can stumble on them: every connection the pool holds
    // answers. One kept after its query went unanswered would wait out the read timeout here.
    const clients = await Promise.all(Array.from({ length: pool.idleCount }, () => pool.connect()));
    try {
      const answers = await Promise.allSettled(clients.map((c) => c.query<{ one: number }>("SELECT 1 AS one")));
      expect(answers.map((a) => (a.status === "fulfilled" ? a.value.rows[0]?.one : String(a.reason)))).toEqual(clients.map(() => 1));
    } finally {
      clients.forEach((c) => c.release());
    }
    expect(pool.totalCount).toBeLessThanOrEqual(POOL_MAX);

    // Recovered by itself: the first call after the partition succeeds.
    const { notification: after } = await client.create({ notification: email("after") }, { timeoutMs: DEADLINE_MS });
    expect(after?.status).toBe(Status.QUEUED);
    // Every connection that lost bytes in the partition is closed by Herald (one still in use
    // by a health check when it healed is dropped when that query times out).
    await waitFor("the connections that lost bytes to be closed", () => p.lostConnections() === 0);
  });
});

describe("idempotency keys expire", () => {
  let herald: TestHerald | undefined;

  beforeAll(async () => {
    // One request per transaction, several at once: racing requests meet in the unique index,
    // not inside one batch.
    herald = await startTestHerald({ roles: ["server"], env: { HERALD_COMMIT_MAX_BATCH: "1", HERALD_COMMIT_MAX_IN_FLIGHT: "4" } });
  });
  afterAll(async () => {
    await herald?.stop();
  });

  /** Moves a notification's creation back past the default 24 h window. */
  const age = (h: TestHerald, id: string) =>
    h.db.pool.query("UPDATE notifications SET created_at = created_at - interval '25 hours' WHERE id = $1", [id]);

  it("inside the window a key returns the first result or refuses another request; after it, creates anew", async () => {
    const h = herald!;
    const client = h.client(KEY_A);
    const key = `expiry-${Date.now()}`;
    const first = (await client.create({ notification: email("ada"), idempotencyKey: key })).notification!;
    expect((await client.create({ notification: email("ada"), idempotencyKey: key })).notification?.id).toBe(first.id);
    expect(await codeOf(client.create({ notification: email("ada", "other"), idempotencyKey: key }))).toBe("AlreadyExists");

    await age(h, first.id);
    const second = (await client.create({ notification: email("ada"), idempotencyKey: key })).notification!;
    expect(second.id).not.toBe(first.id);
    expect(second.status).toBe(Status.QUEUED);
    expect(second.idempotencyKey).toBe(key);
    // The new notification holds the key now, for a window of its own.
    expect((await client.create({ notification: email("ada"), idempotencyKey: key })).notification?.id).toBe(second.id);
    expect(await codeOf(client.create({ notification: email("ada", "other"), idempotencyKey: key }))).toBe("AlreadyExists");
    // The old one still says which key it was created with.
    expect((await client.get({ id: first.id })).notification?.idempotencyKey).toBe(key);
    expect(await count(h, "SELECT 1 FROM outbox WHERE notification_id = $1", [second.id])).toBe(2);
  });

  it("an expired key raced by several requests creates one notification", async () => {
    for (let round = 0; round < 5; round++) await raceExpiredKey(herald!, round);
  });

  async function raceExpiredKey(h: TestHerald, round: number): Promise<void> {
    const client = h.client(KEY_A);
    const key = `race-${round}-${Date.now()}`;
    const first = (await client.create({ notification: email("bob"), idempotencyKey: key })).notification!;
    await age(h, first.id);
    const ids = await Promise.all(
      Array.from({ length: 6 }, async () => (await client.create({ notification: email("bob"), idempotencyKey: key })).notification!.id),
    );
    expect(new Set(ids).size).toBe(1);
    expect(ids[0]).not.toBe(first.id);
    expect(await count(h, "SELECT 1 FROM notifications WHERE $1 IN (idempotency_key, released_idempotency_key)", [key])).toBe(2);
  }
});
