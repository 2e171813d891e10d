import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { NotificationService } from "../../gen/herald/v1/notification_service_pb.js";
import { Channel } from "../../gen/herald/v1/notification_pb.js";
import { KEY_A, startTestHerald, type TestHerald } from "../support/herald.js";
import { batchWaiting, HELD_COMMIT_TIMEOUTS, lockNotifications } from "../support/table-lock.js";
import { rise, scrape, valueOf } from "../support/metrics.js";
import { waitFor } from "../support/wait.js";

// Admission control's metrics on real PostgreSQL, on both listeners, in the setting of
// admission.test.ts: a lock on the notifications table holds the one batch in flight, so a
// full queue and a call whose deadline passes in it are states the test sets up. What the
// server counts must equal what the clients saw.

const MAX_BATCH = 2;
const MAX_QUEUED = 3;

let herald: TestHerald;

beforeAll(async () => {
  herald = await startTestHerald({
    roles: ["server"],
    env: {
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

const listeners: Record<"grpc" | "http", () => Client<typeof NotificationService>> = {
  grpc: () => herald.client(KEY_A),
  http: () => createClient(NotificationService, createConnectTransport({ baseUrl: herald.httpUrl, httpVersion: "2", interceptors: [auth] })),
};

function email(userId: string) {
  return {
    channel: Channel.EMAIL,
    recipient: { userId, address: { case: "email" as const, value: "ada@example.com" } },
    body: { case: "content" as const, value: { subject: "Hi", text: "Hello" } },
  };
}

const codeOf = (p: Promise<unknown>): Promise<Code | "OK"> =>
  p.then(
    () => "OK" as const,
    (err: unknown) => ConnectError.from(err).code,
  );

describe.each(["grpc", "http"] as const)("admission metrics on the %s listener", (listener) => {
  const create = (code: string) => ({ listener, service: "herald.v1.NotificationService", method: "Create", code });

  it("counts every call refused for a full queue once, as the clients saw them, and the queue's depth while it waits", async () => {
    const client = listeners[listener]();
    const run = `full-${randomBytes(4).toString("hex")}`;
    const before = await scrape(herald.httpUrl);
    const lock = await lockNotifications(herald.db.pool);
    try {
      const flushing = Array.from({ length: MAX_BATCH }, (_, i) => codeOf(client.create({ notification: email(`${run}-a${i}`) })));
      await batchWaiting(herald.db.pool);
      const queued = Array.from({ length: MAX_QUEUED }, (_, i) => codeOf(client.create({ notification: email(`${run}-q${i}`) })));
      await waitFor("the queue full", async () => valueOf(await scrape(herald.httpUrl), "herald_accept_queue_depth") === MAX_QUEUED);
      // Nothing admitted can finish while the lock is held: each of these is refused.
      const refused = await Promise.all(Array.from({ length: 4 }, (_, i) => codeOf(client.create({ notification: email(`${run}-r${i}`) }))));
      expect(refused).toEqual(Array(4).fill(Code.ResourceExhausted));
      await lock.release();
      expect(await Promise.all([...flushing, ...queued])).toEqual(Array(MAX_BATCH + MAX_QUEUED).fill("OK"));

      const after = await scrape(herald.httpUrl);
      expect(rise(before, after, "herald_admission_rejected_total", { reason: "queue_full" })).toBe(4);
      expect(rise(before, after, "herald_admission_rejected_total", { reason: "deadline" })).toBe(0);
      expect(rise(before, after, "herald_rpc_requests_total", create("resource_exhausted"))).toBe(4);
      expect(rise(before, after, "herald_rpc_requests_total", create("ok"))).toBe(MAX_BATCH + MAX_QUEUED);
      expect(rise(before, after, "herald_accepted_total", { channel: "email", method: "create" })).toBe(MAX_BATCH + MAX_QUEUED);
      expect(valueOf(after, "herald_accept_queue_depth")).toBe(0);
    } finally {
      await lock.release();
    }
  });

  it("counts a call whose deadline passed in the queue as abandoned, never accepted", async () => {
    const client = listeners[listener]();
    const run = `late-${randomBytes(4).toString("hex")}`;
    const before = await scrape(herald.httpUrl);
    const lock = await lockNotifications(herald.db.pool);
    try {
      const flushing = Array.from({ length: MAX_BATCH }, (_, i) => codeOf(client.create({ notification: email(`${run}-a${i}`) })));
      await batchWaiting(herald.db.pool);
      expect(await codeOf(client.create({ notification: email(`${run}-late`) }, { timeoutMs: 2_000 }))).toBe(Code.DeadlineExceeded);
      await lock.release();
      expect(await Promise.all(flushing)).toEqual(["OK", "OK"]);
      // The late call is dropped when its batch forms, after the lock is gone.
      const after = await waitFor("the late call dropped", async () => {
        const s = await scrape(herald.httpUrl);
        return rise(before, s, "herald_admission_rejected_total", { reason: "abandoned" }) === 1 && s;
      });
      // Counted once, as the server saw it end: past its deadline, or cancelled by a client whose
      // own timer ran out a moment before the server's (the server's deadline starts when the call
      // arrives, the client's when it is sent).
      const ended = ["deadline_exceeded", "canceled"].map((code) => rise(before, after, "herald_rpc_requests_total", create(code)));
      expect(ended[0]! + ended[1]!).toBe(1);
      expect(rise(before, after, "herald_accepted_total", { channel: "email", method: "create" })).toBe(MAX_BATCH);
      expect(rise(before, after, "herald_accept_batch_size_sum")).toBe(MAX_BATCH);
    } finally {
      await lock.release();
    }
  });
});
