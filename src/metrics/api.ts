import { Counter, Gauge, Histogram, type Registry } from "prom-client";

// The API server's metrics (the "api" rows of the README's metrics table): RPCs on both
// listeners, the accept path's group commit and admission control, and WatchStatus streams.
// Recording sites receive pre-bound children (`counter.labels(...)` once, kept), so the hot path
// never builds a label object; the queue depth is read on scrape instead of set per call.

/** The part of an instrument a recording site uses (prom-client's label children are these). */
export interface Inc {
  inc(value?: number): void;
}
export interface Observe {
  observe(value: number): void;
}
export interface UpDown {
  inc(): void;
  dec(): void;
}

export type Listener = "grpc" | "http";
export type AcceptMethod = "create" | "schedule" | "notify";

/** What the accept path (the store's group commit) records. */
export interface AcceptMetrics {
  /** herald_accepted_total for one channel (its name: email, sms, ...) and method; children cached. */
  accepted(channel: string, method: AcceptMethod): Inc;
  /** herald_accept_batch_size: requests per committed group-commit transaction. */
  batchSize: Observe;
  /** herald_accept_flush_seconds: one group-commit transaction, BEGIN to COMMIT. */
  flushSeconds: Observe;
  /** herald_accept_queue_depth reads `depth` on every scrape (summed over sources) until the returned function is called. */
  trackQueueDepth(depth: () => number): () => void;
  /** herald_admission_rejected_total by reason, for the refusals and drops the queue decides. */
  rejected: { queueFull: Inc; deadline: Inc; abandoned: Inc };
}

/** What WatchStatus streams record. */
export interface WatchMetrics {
  /** herald_watch_streams. */
  streams: UpDown;
  /** herald_watch_events_sent_total. */
  sent: Inc;
  /** herald_watch_events_dropped_total{reason="buffer_full"}: the subscriber fell its buffer behind. */
  droppedBufferFull: Inc;
}

export interface ApiMetrics {
  rpcRequests: Counter<"listener" | "service" | "method" | "code">;
  /** Unary calls only: a stream's duration is how long its client watched, not latency. */
  rpcDuration: Histogram<"listener" | "service" | "method">;
  accept: AcceptMetrics;
  /** herald_admission_rejected_total{reason="event_loop_lag"} (src/server/admission.ts). */
  rejectedForLag: Inc;
  /** herald_quota_rejected_total for one tenant (src/server/quota/); children cached. */
  quotaRejected(tenant: string): Inc;
  watch: WatchMetrics;
}

/** Seconds: sub-millisecond Get to multi-second overload. */
const RPC_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Requests per transaction: powers of two up to the largest HERALD_COMMIT_MAX_BATCH. */
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 10_000];
const FLUSH_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

// One set per registry: two roles in one process (herald dev, tests) share the registry and
// must share the instruments too (prom-client refuses a second metric of the same name), and
// the queue-depth sources live beside the gauge that reads them.
const made = new WeakMap<Registry, ApiMetrics>();

/** The api metrics of `registry`, registered on the first call; later calls return the same set. */
export function createApiMetrics(registry: Registry): ApiMetrics {
  let metrics = made.get(registry);
  if (!metrics) {
    metrics = build(registry);
    made.set(registry, metrics);
  }
  return metrics;
}

function build(registry: Registry): ApiMetrics {
  const registers = [registry];
  const rpcRequests = new Counter({
    name: "herald_rpc_requests_total",
    help: "RPCs finished, by listener, service, method and final code (Connect code names)",
    labelNames: ["listener", "service", "method", "code"] as const,
    registers,
  });
  const rpcDuration = new Histogram({
    name: "herald_rpc_duration_seconds",
    help: "Unary RPC latency, from the call reaching the listener to its answer (server streams excluded)",
    labelNames: ["listener", "service", "method"] as const,
    buckets: RPC_BUCKETS,
    registers,
  });
  const accepted = new Counter({
    name: "herald_accepted_total",
    help: "Notifications durably accepted (new rows; idempotent replays are not counted)",
    labelNames: ["channel", "method"] as const,
    registers,
  });
  const batchSize = new Histogram({ name: "herald_accept_batch_size", help: "Requests per group-commit transaction", buckets: BATCH_BUCKETS, registers });
  const flushSeconds = new Histogram({ name: "herald_accept_flush_seconds", help: "One group-commit transaction, BEGIN to COMMIT", buckets: FLUSH_BUCKETS, registers });
  const depthSources = new Set<() => number>();
  new Gauge({
    name: "herald_accept_queue_depth",
    help: "Calls waiting in the accept queue for a group commit",
    registers,
    collect() {
      let depth = 0;
      for (const read of depthSources) depth += read();
      this.set(depth);
    },
  });
  const rejected = new Counter({
    name: "herald_admission_rejected_total",
    help: "Calls refused or dropped by admission control: queue_full, deadline, event_loop_lag, abandoned",
    labelNames: ["reason"] as const,
    registers,
  });
  const quotaRejected = new Counter({
    name: "herald_quota_rejected_total",
    help: "Accept calls refused RESOURCE_EXHAUSTED because their tenant was over its quota (HERALD_TENANT_QUOTA)",
    labelNames: ["tenant"] as const,
    registers,
  });
  const watchStreams = new Gauge({ name: "herald_watch_streams", help: "Open WatchStatus streams", registers });
  const sent = new Counter({ name: "herald_watch_events_sent_total", help: "Status events written to WatchStatus streams", registers });
  const dropped = new Counter({
    name: "herald_watch_events_dropped_total",
    help: "Status events a WatchStatus stream could not take (buffer_full: its client read too slowly)",
    labelNames: ["reason"] as const,
    registers,
  });

  const acceptedChildren = new Map<string, Inc>();
  const quotaChildren = new Map<string, Inc>();
  // Every reason and channel shows from the first scrape at 0, so rate() and alerts see the series.
  for (const reason of ["queue_full", "deadline", "event_loop_lag", "abandoned"]) rejected.labels(reason).inc(0);
  dropped.labels("buffer_full").inc(0);

  return {
    rpcRequests,
    rpcDuration,
    accept: {
      accepted(channel, method) {
        const key = `${channel}/${method}`;
        let child = acceptedChildren.get(key);
        if (!child) {
          child = accepted.labels(channel, method);
          child.inc(0);
          acceptedChildren.set(key, child);
        }
        return child;
      },
      batchSize,
      flushSeconds,
      trackQueueDepth(depth) {
        depthSources.add(depth);
        return () => void depthSources.delete(depth);
      },
      rejected: { queueFull: rejected.labels("queue_full"), deadline: rejected.labels("deadline"), abandoned: rejected.labels("abandoned") },
    },
    rejectedForLag: rejected.labels("event_loop_lag"),
    quotaRejected(tenant) {
      let child = quotaChildren.get(tenant);
      if (!child) quotaChildren.set(tenant, (child = quotaRejected.labels(tenant)));
      return child;
    },
    watch: { streams: watchStreams, sent, droppedBufferFull: dropped.labels("buffer_full") },
  };
}
