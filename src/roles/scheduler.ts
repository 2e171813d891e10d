import { registerBacklogGauges } from "../metrics/backlog-gauges.js";
import { createRetentionMetrics } from "../metrics/retention.js";
import { createSchedulerMetrics } from "../metrics/scheduler.js";
import { createPurger } from "../retention/purger.js";
import { createScheduler } from "../scheduler/scheduler.js";
import { readBacklog } from "../store/backlog.js";
import type { Runtime } from "./runtime.js";

/**
 * The scheduler: releases due SCHEDULED and RETRYING notifications, and runs the retention purge
 * (database work with no Kafka, as the scheduler's). Safe with several running.
 */
export function startSchedulerRole(rt: Runtime): void {
  const log = rt.log.child({ component: "scheduler" });
  registerBacklogGauges(rt.metrics, "scheduler", { read: () => readBacklog(rt.pool), log });
  const scheduler = createScheduler({
    pool: rt.pool,
    log,
    ...rt.config.scheduler,
    claimGraceMs: rt.config.delivery.claimGraceMs,
    metrics: createSchedulerMetrics(rt.metrics),
  });
  scheduler.start();
  rt.shutdown.add("scheduler", () => scheduler.close());
  const { retentionMs, batchSize, pauseMs } = rt.config.retention;
  if (retentionMs === 0) {
    log.info("retention off (HERALD_RETENTION_DAYS=0): notifications are kept for ever");
    return;
  }
  const purger = createPurger({ pool: rt.pool, log: rt.log.child({ component: "retention" }), retentionMs, batchSize, pauseMs, metrics: createRetentionMetrics(rt.metrics) });
  purger.start();
  rt.shutdown.add("retention", () => purger.close());
}
