import { createScheduler } from "../scheduler/scheduler.js";
import type { Runtime } from "./runtime.js";

/** The scheduler: releases due SCHEDULED and RETRYING notifications. Safe with several running. */
export function startSchedulerRole(rt: Runtime): void {
  const scheduler = createScheduler({
    pool: rt.pool,
    log: rt.log.child({ component: "scheduler" }),
    ...rt.config.scheduler,
    claimGraceMs: rt.config.delivery.claimGraceMs,
  });
  scheduler.start();
  rt.shutdown.add("scheduler", () => scheduler.close());
}
