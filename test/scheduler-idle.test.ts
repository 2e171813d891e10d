import { createHash } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { pino } from "pino";
import { uuidv7 } from "uuidv7";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Channel, NotificationSpecSchema, Status } from "../gen/herald/v1/notification_pb.js";
import { createScheduler } from "../src/scheduler/scheduler.js";
import { createNotificationStore, type NotificationStore } from "../src/store/notifications.js";
import { createTestDatabase, type TestDatabase } from "./support/db.js";
import { waitFor } from "./support/wait.js";

// An idle scheduler's wake-up is one read of the next due time: the release transaction (lock,
// sweep, commit) runs only when a row is due, or once a sweepMs for stale claims. The clock is
// held still, so the count of releases does not depend on how fast this machine is.

const log = pino({ level: "silent" });
let db: TestDatabase;
let store: NotificationStore;

beforeAll(async () => {
  db = await createTestDatabase("herald_sched_idle");
  store = createNotificationStore({ pool: db.pool, commit: { maxBatch: 16, maxDelayMs: 2 }, log });
});
afterAll(async () => {
  await store?.close();
  await db?.drop();
});

async function schedule(deliverAt: Date): Promise<string> {
  const id = uuidv7();
  const outcome = await store.accept({
    tenant: "tenant-idle",
    id,
    spec: create(NotificationSpecSchema, {
      channel: Channel.SMS,
      recipient: { userId: "user-1", address: { case: "phone", value: "+14155550100" } },
      body: { case: "content", value: { text: "hello" } },
    }),
    idempotencyKey: "",
    requestHash: createHash("sha256").update(id).digest(),
    correlationId: "corr-idle",
    status: Status.SCHEDULED,
    deliverAt,
    maxAttempts: 4,
    now: new Date(),
  });
  if (outcome.kind !== "created") throw new Error(`not created: ${outcome.kind}`);
  return id;
}

describe("idle scheduler", () => {
  it("wakes every pollMs but runs the release transaction only when a row is due or a sweep is", async () => {
    let now = Date.now();
    const scheduler = createScheduler({ pool: db.pool, log, batchSize: 100, pollMs: 20, sweepMs: 1000, clock: { now: () => now } });
    scheduler.start();
    try {
      // The first wake-up sweeps; the next forty find nothing due and the clock has not moved.
      await waitFor("40 idle wake-ups", () => scheduler.loops.wakeups >= 41);
      expect(scheduler.loops.releases).toBe(1);

      // A row due by the scheduler's clock is released at a later wake-up, without the clock moving.
      const id = await schedule(new Date(now - 1000));
      await waitFor("the due row released", async () => {
        const r = await db.pool.query<{ status: Status }>("SELECT status FROM notifications WHERE id = $1", [id]);
        return r.rows[0]?.status === Status.QUEUED;
      });
      const afterDue = scheduler.loops.releases;
      expect(afterDue).toBeGreaterThanOrEqual(2);

      // A row due later than the clock says is left alone: still idle.
      await schedule(new Date(now + 60_000));
      const wakeups = scheduler.loops.wakeups;
      await waitFor("20 more idle wake-ups", () => scheduler.loops.wakeups >= wakeups + 20);
      expect(scheduler.loops.releases).toBe(afterDue);

      // Once sweepMs has passed, one wake-up sweeps for stale claims.
      now += 1000;
      await waitFor("the sweep after sweepMs", () => scheduler.loops.releases === afterDue + 1);
      const swept = scheduler.loops.wakeups;
      await waitFor("20 more idle wake-ups", () => scheduler.loops.wakeups >= swept + 20);
      expect(scheduler.loops.releases).toBe(afterDue + 1);
    } finally {
      await scheduler.close();
    }
  });
});
