import { createHash, randomBytes } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { pino } from "pino";
import { uuidv7 } from "uuidv7";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Channel, NotificationSpecSchema, Status } from "../../gen/herald/v1/notification_pb.js";
import { registerBacklogGauges } from "../../src/metrics/backlog-gauges.js";
import { createMetricsRegistry } from "../../src/metrics/registry.js";
import { createSchedulerMetrics } from "../../src/metrics/scheduler.js";
import { createScheduler } from "../../src/scheduler/scheduler.js";
import { readBacklog } from "../../src/store/backlog.js";
import { createNotificationStore, type NotificationStore } from "../../src/store/notifications.js";
import { createTestDatabase, type TestDatabase } from "../support/db.js";
import { metricValue } from "../support/metric-values.js";

// The scheduler's metrics against the real schema, one tick at a time (as test/scheduler.test.ts
// drives it): rows due a known time ago are released, and the lag observed is at least that.

const log = pino({ level: "silent" });
let db: TestDatabase;
let store: NotificationStore;

beforeAll(async () => {
  db = await createTestDatabase("herald_sched_metrics");
  store = createNotificationStore({ pool: db.pool, commit: { maxBatch: 64, maxDelayMs: 1 }, log });
});
afterAll(async () => {
  await store?.close();
  await db?.drop();
});

/** A SCHEDULED notification due at `deliverAt`. */
async function scheduled(deliverAt: Date): Promise<string> {
  const id = uuidv7();
  const outcome = await store.accept({
    tenant: `t${randomBytes(4).toString("hex")}`,
    id,
    spec: create(NotificationSpecSchema, {
      channel: Channel.SMS,
      recipient: { userId: "user-7", address: { case: "phone", value: "+14155550100" } },
      body: { case: "content", value: { text: "Your code is 123456" } },
    }),
    idempotencyKey: "",
    requestHash: createHash("sha256").update(id).digest(),
    correlationId: "corr-m",
    status: Status.SCHEDULED,
    deliverAt,
    maxAttempts: 4,
    now: new Date(),
  });
  if (outcome.kind !== "created") throw new Error(outcome.kind);
  return id;
}

const ago = (ms: number): Date => new Date(Date.now() - ms);

describe("scheduler metrics", () => {
  it("5 due Schedules and a due retry: released_total by kind, the lag from each row's own due time, the due gauges", async () => {
    const registry = createMetricsRegistry({ processMetrics: false });
    registerBacklogGauges(registry, "scheduler", { read: () => readBacklog(db.pool), log, maxAgeMs: 0 });
    for (let i = 0; i < 5; i++) await scheduled(ago(2000));
    // A retry whose notification was due an hour ago but whose next attempt is due 3 s ago:
    // its lag counts from the next attempt.
    const retry = await scheduled(ago(3_600_000));
    await db.pool.query("UPDATE notifications SET status = $2, attempts = 1, next_attempt_at = now() - interval '3 seconds' WHERE id = $1", [retry, Status.RETRYING]);

    expect(await metricValue(registry, "herald_scheduler_due")).toBe(6);
    expect(await metricValue(registry, "herald_scheduler_due_oldest_age_seconds")).toBeGreaterThanOrEqual(3);
    expect(await metricValue(registry, "herald_scheduler_due_oldest_age_seconds")).toBeLessThan(600);

    const scheduler = createScheduler({ pool: db.pool, log, batchSize: 100, pollMs: 200, metrics: createSchedulerMetrics(registry) });
    expect(await scheduler.tick()).toBe(6);
    await scheduler.close();

    expect(await metricValue(registry, "herald_scheduler_released_total", { kind: "scheduled" })).toBe(5);
    expect(await metricValue(registry, "herald_scheduler_released_total", { kind: "retry" })).toBe(1);
    expect(await metricValue(registry, "herald_scheduler_release_lag_seconds_count", { kind: "scheduled" })).toBe(5);
    expect(await metricValue(registry, "herald_scheduler_release_lag_seconds_sum", { kind: "scheduled" })).toBeGreaterThanOrEqual(5 * 2);
    expect(await metricValue(registry, "herald_scheduler_release_lag_seconds_count", { kind: "retry" })).toBe(1);
    const retryLag = await metricValue(registry, "herald_scheduler_release_lag_seconds_sum", { kind: "retry" });
    expect(retryLag).toBeGreaterThanOrEqual(3);
    expect(retryLag).toBeLessThan(600);
    // Nothing due is left.
    expect(await metricValue(registry, "herald_scheduler_due")).toBe(0);
    expect(await metricValue(registry, "herald_scheduler_due_oldest_age_seconds")).toBe(0);
  });

  it("a tick with nothing due observes nothing", async () => {
    const registry = createMetricsRegistry({ processMetrics: false });
    await scheduled(new Date(Date.now() + 3_600_000));
    const scheduler = createScheduler({ pool: db.pool, log, batchSize: 100, pollMs: 200, metrics: createSchedulerMetrics(registry) });
    expect(await scheduler.tick()).toBe(0);
    await scheduler.close();
    expect(await metricValue(registry, "herald_scheduler_released_total")).toBe(0);
    expect(await metricValue(registry, "herald_scheduler_release_lag_seconds_count")).toBe(0);
  });
});
