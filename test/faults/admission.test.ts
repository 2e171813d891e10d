import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { NotificationService } from "../../gen/herald/v1/notification_service_pb.js";
import { Channel } from "../../gen/herald/v1/notification_pb.js";
import { RETRY_AFTER_MS } from "../../src/server/edge.js";
import { KEY_A, startTestHerald, type TestHerald } from "../support/herald.js";
import { batchWaiting, HELD_COMMIT_TIMEOUTS, lockNotifications } from "../support/table-lock.js";
import { waitFor } from "../support/wait.js";

// Admission control on real PostgreSQL, on both listeners. The test holds a lock on the
// notifications table (support/table-lock.ts), so the one accept batch allowed in flight waits
// inside its INSERT: "the queue is full" and "the call waited past its deadline" are states
// the test sets up, not races it hopes to win.

const MAX_BATCH = 2;
const MAX_QUEUED = 3;

let herald: TestHerald;

beforeAll(async () => {
  herald = await startTestHerald({
    roles: ["server"],
    env: {
      // The test holds a commit with a table lock for as long as it needs: a slow database,
      // not a lost one, so its statements must not time out first.
      ...HELD_COMMIT_TIMEOUTS,
      HERALD_COMMIT_MAX_BATCH: String(MAX_BATCH),
      HERALD_COMMIT_MAX_IN_FLIGHT: "1",
      HERALD_ACCEPT_QUEUE_MAX: String(MAX_QUEUED),
    },
  });
});
afterAll(async () => {
  await herald?.stop();
});

const auth: Interceptor = (next) => (req) => {
  req.header.set("authorization", `Bearer ${KEY_A}`);
  return next(req);
};

const listeners: Record<string, () => Client<typeof NotificationService>> = {
  "grpc-js (gRPC listener)": () => herald.client(KEY_A),
  "connect h2c (HTTP listener)": () => createClient(NotificationService, createConnectTransport({ baseUrl: herald.httpUrl, httpVersion: "2", interceptors: [auth] })),
};

function email(userId: string) {
  return {
    channel: Channel.EMAIL,
    recipient: { userId, address: { case: "email" as const, value: "ada@example.com" } },
    body: { case: "content" as const, value: { subject: "Hi", text: "Hello" } },
  };
}

type Outcome = { ok: true } | { ok: false; error: ConnectError };
const outcome = (p: Promise<unknown>): Promise<Outcome> =>
  p.then(
    () => ({ ok: true }),
    (err: unknown) => ({ ok: false, error: ConnectError.from(err) }),
  );

/** Takes the lock and sends one full batch (users `${run}-a0`...), which then waits in its INSERT. */
async function holdOneBatch(client: Client<typeof NotificationService>, what: string) {
  const run = `${what}-${randomBytes(4).toString("hex")}`;
  const lock = await lockNotifications(herald.db.pool);
  const flushing = Array.from({ length: MAX_BATCH }, (_, i) => outcome(client.create({ notification: email(`${run}-a${i}`) })));
  await batchWaiting(herald.db.pool);
  return { client, run, lock, flushing };
}

async function storedUsers(prefix: string): Promise<string[]> {
  const r = await herald.db.pool.query<{ user_id: string }>("SELECT user_id FROM notifications WHERE user_id LIKE $1 ORDER BY user_id", [`${prefix}%`]);
  return r.rows.map((row) => row.user_id);
}

describe.each(Object.keys(listeners))("admission over %s", (name) => {
  it("a full accept queue answers RESOURCE_EXHAUSTED at once, with a retry hint; what it admitted is stored", async () => {
    const client = listeners[name]!();
    const run = `full-${randomBytes(4).toString("hex")}`;
    const lock = await lockNotifications(herald.db.pool);
    try {
      // One batch flushing (held by the lock) and a full queue behind it admit MAX_BATCH +
      // MAX_QUEUED calls, whatever order they arrive in; the one more is refused.
      const admitted = MAX_BATCH + MAX_QUEUED;
      const calls = Array.from({ length: admitted + 1 }, (_, i) => outcome(client.create({ notification: email(`${run}-${i}`) })));
      // Nothing admitted can finish while the lock is held, so the first answer is the refusal.
      const first = await Promise.race(calls);
      expect(first.ok).toBe(false);
      const error = (first as Extract<Outcome, { ok: false }>).error;
      expect(error.code).toBe(Code.ResourceExhausted);
      expect(error.rawMessage).toMatch(/^server overloaded, retry after \d+ ms$/);
      expect(Number(error.metadata.get(RETRY_AFTER_MS))).toBeGreaterThan(0);

      await lock.release();
      const all = await Promise.all(calls);
      expect(all.filter((o) => o.ok)).toHaveLength(admitted);
      expect(await storedUsers(run)).toHaveLength(admitted);
    } finally {
      await lock.release();
    }
  });

  it("a call whose deadline passes while it waits in the queue is never committed", async () => {
    const { client, run, lock, flushing } = await holdOneBatch(listeners[name]!(), "late");
    try {
      // It waits behind the held batch until its deadline passes; the lock is still held then.
      // (A deadline well above the queue's expected wait, so it is admitted rather than refused.)
      const late = await outcome(client.create({ notification: email(`${run}-late`) }, { timeoutMs: 2_000 }));
      expect(late.ok ? "OK" : Code[late.error.code]).toBe(Code[Code.DeadlineExceeded]);

      await lock.release();
      expect((await Promise.all(flushing)).every((o) => o.ok)).toBe(true);
      // Batches go out in order, so once a later call is stored the late one has had its turn.
      await client.create({ notification: email(`${run}-z`) });
      expect(await storedUsers(run)).toEqual([`${run}-a0`, `${run}-a1`, `${run}-z`]);
    } finally {
      await lock.release();
    }
  });

  it("a call its client cancels while it waits in the queue is never committed", async () => {
    const { client, run, lock, flushing } = await holdOneBatch(listeners[name]!(), "gone");
    try {
      const abort = new AbortController();
      const leaving = outcome(client.create({ notification: email(`${run}-gone`) }, { signal: abort.signal }));
      const queued = Array.from({ length: MAX_QUEUED - 1 }, (_, i) => outcome(client.create({ notification: email(`${run}-q${i}`) })));
      // A refusal proves the queue is full, so the call to cancel is in it (not still on the wire).
      await waitFor("the queue full", async () => {
        const probe = await Promise.race([outcome(client.create({ notification: email(`${run}-probe`) })), new Promise<undefined>((r) => setTimeout(r, 1000))]);
        return probe !== undefined && !probe.ok && probe.error.code === Code.ResourceExhausted;
      });
      abort.abort();
      const left = await leaving;
      expect(left.ok ? "OK" : Code[left.error.code]).toBe(Code[Code.Canceled]);

      await lock.release();
      expect((await Promise.all([...flushing, ...queued])).every((o) => o.ok)).toBe(true);
      await client.create({ notification: email(`${run}-z`) });
      expect(await storedUsers(run)).not.toContain(`${run}-gone`);
      expect(await storedUsers(run)).toEqual(expect.arrayContaining([`${run}-a0`, `${run}-a1`, `${run}-q0`, `${run}-q1`, `${run}-z`]));
    } finally {
      await lock.release();
    }
  });
});
