import { collectDefaultMetrics, Registry } from "prom-client";

// One Prometheus registry per process, built at the entry point and passed to whatever records
// into it (never prom-client's global registry: tests run several roles in one process, each
// with its own). Each area keeps its metrics in its own file beside this one (`api.ts`,
// `delivery.ts`, ...), created from the registry it is given; the names, types and labels are
// listed in the README's "Metrics" table.
//
// Conventions: the `herald_` prefix, base units (`_seconds`, `_bytes`), `_total` for counters,
// and labels of bounded cardinality only (channel, provider, outcome, method, code, topic,
// partition, group), never a user, notification or tenant id.

export type { Registry } from "prom-client";

export interface MetricsRegistryOptions {
  /**
   * prom-client's process metrics (CPU, memory, heap, GC, event-loop lag, open handles).
   * @defaultValue true
   */
  processMetrics?: boolean;
}

/** Resolution of nodejs_eventloop_lag_*: ten samples a second still follow a lag that lasts. */
const EVENT_LOOP_SAMPLE_MS = 100;

export function createMetricsRegistry(opts: MetricsRegistryOptions = {}): Registry {
  const registry = new Registry();
  // Standard names (process_*, nodejs_*), unprefixed, so stock dashboards and alerts apply.
  // The event-loop lag histogram samples every EVENT_LOOP_SAMPLE_MS: prom-client's 10 ms woke an
  // idle process a hundred times a second, most of its idle CPU (README, Idle cost).
  if (opts.processMetrics ?? true) collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
  return registry;
}
