import type { Registry } from "prom-client";
import type { PurgeCounts } from "../store/purge.js";
import { counterIn } from "./instruments.js";

// The retention purge's metrics (src/retention/purger.ts): rows deleted per table, and batches
// that failed (the purge waits and tries again; an alert can watch the rate).

export interface RetentionMetrics {
  /** One committed batch. */
  purged(counts: PurgeCounts): void;
  /** One batch that failed. */
  failed(): void;
}

const TABLES = { notifications: "notifications", statusEvents: "status_events", outbox: "outbox", notifyRequests: "notify_requests" } as const;

export function createRetentionMetrics(registry: Registry): RetentionMetrics {
  const purged = counterIn(registry, {
    name: "herald_retention_purged_total",
    help: "Rows the retention purge deleted, by table (dead_letters, receipts and status_feed_log rows go with their notification or event).",
    labelNames: ["table"],
  });
  const failures = counterIn(registry, { name: "herald_retention_errors_total", help: "Retention purge batches that failed (retried after a back-off)." });
  const children = Object.fromEntries(
    Object.entries(TABLES).map(([key, table]) => {
      const child = purged.labels(table);
      child.inc(0);
      return [key, child];
    }),
  ) as Record<keyof PurgeCounts, ReturnType<typeof purged.labels>>;
  failures.inc(0);
  return {
    purged(counts) {
      for (const key of Object.keys(TABLES) as Array<keyof PurgeCounts>) if (counts[key] > 0) children[key].inc(counts[key]);
    },
    failed() {
      failures.inc();
    },
  };
}
