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
// that went silent in it.

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
