import { Counter, Gauge, type Registry } from "prom-client";
import type { Inc } from "./api.js";

// The API keys' metrics (README, "Metrics"): calls the edge refused for their key, and the state
// of the stored keys each API instance holds (keys/key-table.ts). One set per registry, as in api.ts.

/** Why the edge refused a call's key: herald_api_key_refusals_total{reason}. */
export const refusalReasons = ["missing", "unknown", "expired", "revoked", "scope"] as const;
export type RefusalReason = (typeof refusalReasons)[number];

/** What the key table (keys/key-table.ts) records. */
export interface KeyTableMetrics {
  /** herald_api_keys_loaded: stored keys held (revoked and expired ones included). */
  loaded(count: number): void;
  /** herald_api_keys_reloaded_timestamp_seconds: when the table was last read whole. */
  reloadedAt(ms: number): void;
}

export interface ApiKeyMetrics {
  refusals: Readonly<Record<RefusalReason, Inc>>;
  table: KeyTableMetrics;
}

const made = new WeakMap<Registry, ApiKeyMetrics>();

export function createApiKeyMetrics(registry: Registry): ApiKeyMetrics {
  let metrics = made.get(registry);
  if (!metrics) {
    metrics = build(registry);
    made.set(registry, metrics);
  }
  return metrics;
}

function build(registry: Registry): ApiKeyMetrics {
  const registers = [registry];
  const refusals = new Counter({
    name: "herald_api_key_refusals_total",
    help: "Calls refused for their API key: missing, unknown, expired, revoked (UNAUTHENTICATED), scope (PERMISSION_DENIED)",
    labelNames: ["reason"] as const,
    registers,
  });
  const loaded = new Gauge({ name: "herald_api_keys_loaded", help: "Stored API keys held in memory (revoked and expired included)", registers });
  const reloaded = new Gauge({
    name: "herald_api_keys_reloaded_timestamp_seconds",
    help: "When this instance last read the stored API keys (a stale value: it is using an old table)",
    registers,
  });
  // Bound once, each reason at 0 from the first scrape.
  const children = Object.fromEntries(refusalReasons.map((r) => [r, refusals.labels(r)])) as Record<RefusalReason, Inc>;
  for (const child of Object.values(children)) child.inc(0);
  return {
    refusals: children,
    table: {
      loaded: (count) => loaded.set(count),
      reloadedAt: (ms) => reloaded.set(ms / 1000),
    },
  };
}
