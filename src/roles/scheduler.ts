import { registerBacklogGauges } from "../metrics/backlog-gauges.js";
import { createSchedulerMetrics } from "../metrics/scheduler.js";
import { createScheduler } from "../scheduler/scheduler.js";
import { readBacklog } from "../store/backlog.js";
import type { Runtime } from "./runtime.js";

/** The scheduler: releases due SCHEDULED and RETRYING notifications. Safe with several running. */
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
}
