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

export function createMetricsRegistry(opts: MetricsRegistryOptions = {}): Registry {
  const registry = new Registry();
  // Standard names (process_*, nodejs_*), unprefixed, so stock dashboards and alerts apply.
  if (opts.processMetrics ?? true) collectDefaultMetrics({ register: registry });
  return registry;
}
