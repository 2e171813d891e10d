import { performance } from "node:perf_hooks";
import type { Registry } from "prom-client";
import { counterIn, gaugeIn, histogramIn } from "./instruments.js";

// The channel workers' metrics: records taken from Kafka, attempts by outcome (counted where the
// outcome is stored, once per attempt), provider calls (duration, in flight), how long a
// notification took from due to SENT, rate-limit waits and lease takeovers. The worker role
// binds one set per channel and provider; the worker, its delivery handler and its rate
// limiter record into it. Outcomes and provider calls are labelled by the provider actually
// called, so a channel with failover shows each provider's share and latency.

/** What a stored attempt came to; `dead_lettered` is the last attempt failing transiently. */
export type DeliveryOutcome = "sent" | "retry" | "failed" | "dead_lettered";

/** The provider label of an attempt no provider was called for (rendering failed, suppressed, every circuit open). */
export const NO_PROVIDER = "none";

export interface ChannelDeliveryMetrics {
  /** The worker took `n` records of the channel's topic on. */
  recordsTaken(n: number): void;
  /** An attempt's outcome was stored; `provider` is the one called ("" or NO_PROVIDER: none was). */
  outcome(kind: DeliveryOutcome, provider: string): void;
  /** SENT was stored at `storedAtMs` for a notification due at `dueAtMs` (both ms since the epoch); `high`: a PRIORITY_HIGH one. */
  delivered(dueAtMs: number, storedAtMs: number, high?: boolean): void;
  /**
   * Runs one provider call, timed and counted in flight while it runs. The time is labelled with
   * `calledOf(settled)`, the provider that answered (with failover, one of several); "": none was
   * called (every circuit open) and nothing is observed.
   */
  providerCall<T>(call: () => Promise<T>, calledOf: (settled: PromiseSettledResult<T>) => string): Promise<T>;
  /** A send waited this long for the rate limiter. */
  rateLimitWaited(seconds: number): void;
  /** A claim took over an attempt whose previous holder's lease had run out. */
  leaseTakeover(): void;
}

export interface DeliveryMetrics {
  /** The instruments of one channel served by `providers` (one, or several in failover order); children bound once. */
  channel(channel: string, providers: readonly string[]): ChannelDeliveryMetrics;
}

/** From due to SENT stored: fine enough for p50, p99 and p99.9 of a healthy path (tens of ms) and of a backlog (minutes). */
export const E2E_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 7.5, 10, 15, 30, 60, 120, 300];
/** One provider call: an in-process stand-in answers in a millisecond, an HTTP provider in tens to hundreds, a timeout in seconds. */
const PROVIDER_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Rate-limit waits: a slot is 100 ms, a backlog under a tight limit waits seconds. */
const WAIT_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export function createDeliveryMetrics(registry: Registry): DeliveryMetrics {
  const records = counterIn(registry, { name: "herald_worker_records_total", help: "Kafka records taken on by the channel workers.", labelNames: ["channel"] });
  const outcomes = counterIn(registry, {
    name: "herald_deliveries_total",
    help: "Delivery attempts by stored outcome (sent, retry, failed, dead_lettered).",
    labelNames: ["channel", "provider", "outcome"],
  });
  const providerSeconds = histogramIn(registry, {
    name: "herald_provider_request_duration_seconds",
    help: "One provider call, successful or not.",
    labelNames: ["channel", "provider"],
    buckets: PROVIDER_BUCKETS,
  });
  const e2e = histogramIn(registry, {
    name: "herald_delivery_e2e_seconds",
    help: "From due (created_at for Create, deliver_at for Schedule, the original due time for a retry) to SENT stored.",
    labelNames: ["channel"],
    buckets: E2E_BUCKETS,
  });
  // PRIORITY_HIGH alone, beside the whole (which counts them too): a separate histogram rather
  // than a priority label, so the series and queries of herald_delivery_e2e_seconds stay as they were.
  const highE2e = histogramIn(registry, {
    name: "herald_delivery_high_e2e_seconds",
    help: "Like herald_delivery_e2e_seconds, for PRIORITY_HIGH notifications only.",
    labelNames: ["channel"],
    buckets: E2E_BUCKETS,
  });
  const inFlight = gaugeIn(registry, { name: "herald_sends_in_flight", help: "Provider calls in flight.", labelNames: ["channel"] });
  const waits = counterIn(registry, { name: "herald_rate_limit_waits_total", help: "Sends that had to wait for the rate limiter.", labelNames: ["channel"] });
  const waitSeconds = histogramIn(registry, { name: "herald_rate_limit_wait_seconds", help: "How long sends waited for the rate limiter.", labelNames: ["channel"], buckets: WAIT_BUCKETS });
  const takeovers = counterIn(registry, {
    name: "herald_lease_takeovers_total",
    help: "Claims of a notification whose previous claim's lease had run out.",
    labelNames: ["channel"],
  });

  return {
    channel(channel, providers) {
      const kinds: DeliveryOutcome[] = ["sent", "retry", "failed", "dead_lettered"];
      // prom-client keeps each child once made: binding per call is a map lookup, and a name
      // outside `providers` (NO_PROVIDER) still gets its series.
      const outcomeOf = (kind: DeliveryOutcome, provider: string) => outcomes.labels(channel, provider || NO_PROVIDER, kind);
      const taken = records.labels(channel);
      const sending = inFlight.labels(channel);
      const delivered = e2e.labels(channel);
      const deliveredHigh = highE2e.labels(channel);
      const waited = waits.labels(channel);
      const waitedSeconds = waitSeconds.labels(channel);
      const takenOver = takeovers.labels(channel);
      // Every series present from the start, so a dashboard and a rate() read 0 rather than no
      // data before the first send (prom-client shows a child only once it has a value).
      for (const c of [...providers.flatMap((p) => kinds.map((k) => outcomeOf(k, p))), taken, waited, takenOver]) c.inc(0);
      sending.set(0);
      for (const provider of providers) providerSeconds.zero({ channel, provider });
      e2e.zero({ channel });
      highE2e.zero({ channel });
      waitSeconds.zero({ channel });
      return {
        recordsTaken: (n) => taken.inc(n),
        outcome: (kind, provider) => outcomeOf(kind, provider).inc(),
        // A host clock behind the one that stamped the row would read as negative time; it is none.
        delivered(dueAtMs, storedAtMs, high = false) {
          const seconds = Math.max(0, storedAtMs - dueAtMs) / 1000;
          delivered.observe(seconds);
          if (high) deliveredHigh.observe(seconds);
        },
        async providerCall(call, calledOf) {
          const started = performance.now();
          sending.inc();
          let settled: PromiseSettledResult<Awaited<ReturnType<typeof call>>>;
          try {
            settled = { status: "fulfilled", value: await call() };
          } catch (reason) {
            settled = { status: "rejected", reason };
          }
          sending.dec();
          const provider = calledOf(settled);
          if (provider !== "") providerSeconds.labels(channel, provider).observe((performance.now() - started) / 1000);
          if (settled.status === "rejected") throw settled.reason;
          return settled.value;
        },
        rateLimitWaited(seconds) {
          waited.inc();
          waitedSeconds.observe(seconds);
        },
        leaseTakeover: () => takenOver.inc(),
      };
    },
  };
}
