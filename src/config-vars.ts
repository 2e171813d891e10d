import { channelNames } from "./domain/channels.js";
import type { Env } from "./config-env.js";

// Every HERALD_* variable Herald reads, so one it does not read can be reported
// at start: a misspelt HERALD_WROKER_CONCURRENCY would otherwise be ignored in
// silence and the default used. test/unit/config-show.test.ts checks that
// loadConfig reads nothing outside this list.

const upper = channelNames.map((c) => c.toUpperCase());

export const knownVariables: ReadonlySet<string> = new Set([
  // config.ts
  "HERALD_API_KEYS", "HERALD_API_KEYS_FILE", "HERALD_GRPC_ADDR", "HERALD_HTTP_ADDR",
  // config.ts: the stored API keys' reload (issue 17)
  "HERALD_API_KEY_REFRESH_MS",
  "HERALD_TOPIC_PREFIX", "HERALD_TOPIC_PARTITIONS", "HERALD_TOPIC_RETENTION_MS", "HERALD_TOPIC_REPLICATION", "HERALD_TOPIC_MIN_INSYNC_REPLICAS", "HERALD_CORS_ORIGINS", "HERALD_WEBHOOK_ALLOW_CIDRS", "HERALD_TEMPLATE_COMPILE_TIMEOUT_MS",
  "HERALD_MAX_MESSAGE_BYTES", "HERALD_SCHEDULE_HORIZON_DAYS",
  // Observability (issue 14): the RPC access log of both listeners.
  "HERALD_ACCESS_LOG",
  "HERALD_DB_POOL_MAX", "HERALD_DB_CONNECT_TIMEOUT_MS", "HERALD_DB_STATEMENT_TIMEOUT_MS", "HERALD_DB_QUERY_TIMEOUT_MS",
  "HERALD_IDEMPOTENCY_TTL_MS",
  "HERALD_COMMIT_MAX_BATCH", "HERALD_COMMIT_MAX_DELAY_MS", "HERALD_COMMIT_MAX_IN_FLIGHT",
  // Admission control (issue 12).
  "HERALD_ACCEPT_QUEUE_MAX", "HERALD_ADMISSION_MAX_LAG_MS", "HERALD_MAX_STREAMS_PER_CONNECTION",
  // Connection hygiene of both listeners (issue 13).
  "HERALD_HEADERS_TIMEOUT_MS", "HERALD_REQUEST_TIMEOUT_MS", "HERALD_SNIFF_TIMEOUT_MS", "HERALD_IDLE_TIMEOUT_MS",
  "HERALD_MAX_CONNECTIONS", "HERALD_MAX_CONNECTIONS_PER_ADDRESS", "HERALD_HEALTH_WATCH_MAX_STREAMS",
  // config-quotas.ts: per-tenant accept quotas (issue 17)
  "HERALD_TENANT_QUOTA", "HERALD_TENANT_QUOTAS", "HERALD_TENANT_QUOTAS_FILE",
  // config.ts: fair share between tenants at delivery (issue 17)
  "HERALD_FAIR_DELIVERY", "HERALD_WORKER_READ_AHEAD", "HERALD_WORKER_LONG_POLL_MS",
  // config.ts: SENDING on herald.status or only in the history (issue 17)
  "HERALD_STREAM_SENDING",
  "HERALD_RELAY_BATCH", "HERALD_RELAY_POLL_MS", "HERALD_SCHEDULER_BATCH", "HERALD_SCHEDULER_POLL_MS",
  // config.ts: the retention purge (issue 16)
  "HERALD_RETENTION_DAYS", "HERALD_RETENTION_BATCH", "HERALD_RETENTION_PAUSE_MS",
  "HERALD_WATCH_HEARTBEAT_MS", "HERALD_WATCH_BUFFER", "HERALD_WATCH_MAX_STREAMS_PER_KEY", "HERALD_WATCH_MAX_STREAMS",
  "HERALD_WATCH_RING", "HERALD_WATCH_POLL_MS", "HERALD_WATCH_SNAPSHOT_LIMIT", "HERALD_WATCH_SNAPSHOT_HOURS",
  // config.ts: health port of every role (issue 12)
  "HERALD_HEALTH_PORT",
  // Fast takeover (config.ts, config-delivery.ts)
  "HERALD_KAFKA_SESSION_TIMEOUT_MS", "HERALD_KAFKA_HEARTBEAT_MS", "HERALD_CLAIM_GRACE_MS",
  // config.ts: priority lanes and the rate limits' reserve for PRIORITY_HIGH (issue 15)
  "HERALD_PRIORITY_LANES", "HERALD_RATE_LIMIT_HIGH_SHARE", "HERALD_PRIORITY_YIELD_MS",
  // config-delivery.ts
  "HERALD_MAX_ATTEMPTS", ...upper.map((c) => `HERALD_MAX_ATTEMPTS_${c}`),
  ...upper.map((c) => `HERALD_RATE_LIMIT_${c}`), "HERALD_RATE_LIMIT_FALLBACK_FRACTION",
  "HERALD_SEND_TIMEOUT_MS", "HERALD_SEND_LEASE_MS", "HERALD_WORKER_CONCURRENCY", "HERALD_WORKER_IN_FLIGHT",
  "HERALD_BACKOFF_BASE_MS", "HERALD_BACKOFF_CAP_MS", "HERALD_SINK_DIR",
  ...upper.map((c) => `HERALD_${c}_PROVIDER`),
  "HERALD_EMAIL_FROM", "HERALD_EMAIL_FROM_FILE", "HERALD_SMS_FROM", "HERALD_SMS_FROM_FILE",
  "HERALD_WEBHOOK_SECRETS", "HERALD_WEBHOOK_SECRETS_FILE",
  // Provider failover (issue 15): the circuit breakers of channels with several providers.
  "HERALD_BREAKER_FAILURES", "HERALD_BREAKER_WINDOW_MS", "HERALD_BREAKER_COOLDOWN_MS",
  // config-receipts.ts (issue 15)
  "HERALD_PUBLIC_URL", "HERALD_SENDGRID_WEBHOOK_PUBLIC_KEY", "HERALD_RECEIPT_MAX_AGE_S",
  // config-unsubscribe.ts (issue 16)
  "HERALD_UNSUBSCRIBE_MAILTO",
  // The client commands (send, watch, dlq, ...), often set in the same shell as a role.
  "HERALD_API_KEY",
  // Tooling: scripts/contract-check.sh and the browser test.
  "HERALD_CONTRACT_BASE", "HERALD_CHROMIUM",
]);

export interface UnknownVariable {
  name: string;
  /** The known variable it is closest to, when it is close enough to be a likely typo. */
  suggestion?: string;
}

/** The HERALD_* variables in `env` that Herald does not read, in name order. */
export function unknownVariables(env: Env): UnknownVariable[] {
  return Object.keys(env)
    .filter((name) => name.startsWith("HERALD_") && !knownVariables.has(name))
    .sort()
    .map((name) => {
      const suggestion = closest(name);
      return suggestion ? { name, suggestion } : { name };
    });
}

/** How the start-up warning and `herald config` say it. */
export function describeUnknown(u: UnknownVariable): string {
  return `unknown environment variable ${u.name}${u.suggestion ? ` (did you mean ${u.suggestion}?)` : ""}`;
}

/** Typos are a letter or two (missing, extra, swapped or wrong); beyond three edits it is a guess. */
const maxEdits = 3;

function closest(name: string): string | undefined {
  let best: string | undefined;
  let bestDistance = maxEdits + 1;
  for (const known of knownVariables) {
    const d = editDistance(name, known, bestDistance);
    if (d < bestDistance) [best, bestDistance] = [known, d];
  }
  return best;
}

/** Optimal string alignment distance (a swap of neighbours is one edit); stops early past `limit`. */
function editDistance(a: string, b: string, limit: number): number {
  if (Math.abs(a.length - b.length) >= limit) return limit;
  let prev2: number[] = [];
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    let rowMin = i;
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, prev2[j - 2]! + 1);
      row.push(d);
      rowMin = Math.min(rowMin, d);
    }
    if (rowMin >= limit) return limit;
    [prev2, prev] = [prev, row];
  }
  return prev[b.length]!;
}
