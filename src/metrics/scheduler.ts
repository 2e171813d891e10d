import type { Registry } from "prom-client";
import { counterIn, histogramIn } from "./instruments.js";

// The scheduler's metrics: rows released to QUEUED, by kind, and how late each was released
// (release time minus its due time: deliver_at of a scheduled row, next_attempt_at of a retry).
// The due rows still waiting and the open dead letters are gauges read on scrape
// (backlog-gauges.ts).

/** A SCHEDULED row whose time came, or a RETRYING row whose next attempt is due. */
export type ReleaseKind = "scheduled" | "retry";

export interface SchedulerMetrics {
  /** One row released `lagSeconds` after it was due. */
  released(kind: ReleaseKind, lagSeconds: number): void;
}

/** The scheduler wakes at the next due time to the millisecond; a backlog shows in the upper buckets. */
const LAG_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

export function createSchedulerMetrics(registry: Registry): SchedulerMetrics {
  const released = counterIn(registry, { name: "herald_scheduler_released_total", help: "Rows the scheduler released to QUEUED.", labelNames: ["kind"] });
  const lag = histogramIn(registry, { name: "herald_scheduler_release_lag_seconds", help: "Release time minus due time (deliver_at, or next_attempt_at for a retry).", labelNames: ["kind"], buckets: LAG_BUCKETS });
  // Both kinds present from the start (prom-client shows a child only once it has a value).
  for (const kind of ["scheduled", "retry"]) {
    released.labels(kind).inc(0);
    lag.zero({ kind });
  }
  const children = {
    scheduled: { released: released.labels("scheduled"), lag: lag.labels("scheduled") },
    retry: { released: released.labels("retry"), lag: lag.labels("retry") },
  };
  return {
    released(kind, lagSeconds) {
      const c = children[kind];
      c.released.inc();
      // A host clock behind the database's would read as negative lag; it is none.
      c.lag.observe(Math.max(0, lagSeconds));
    },
  };
}
