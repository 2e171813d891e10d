import { Counter, Gauge, type Registry } from "prom-client";
import { systemClock, type Clock } from "../clock.js";
import type { Logger } from "../log.js";
import { createOutageLog } from "../loop/outage.js";
import { bounded } from "../kafka/errors.js";
import type { GroupTopic, Kafka, PartitionLag } from "../kafka/kafka.js";
import { workerSubscriptions } from "../kafka/topics.js";

// Consumer lag of every worker group, read from Kafka when Prometheus scrapes (never on a timer:
// a Herald nobody scrapes asks Kafka nothing). Lag is read with the admin client, so it is there
// while the workers are dead, which is when it matters. Reads are shared and cached for a
// moment: several scrapers, or one scraping often, cost Kafka one read per `cacheMs`. A read is
// bounded, so a Kafka that does not answer delays /metrics by `timeoutMs`, never the scraper's
// whole timeout; the other metrics are still served.

export const CONSUMER_LAG = "herald_kafka_consumer_lag";
export const LAG_ERRORS = "herald_kafka_lag_errors_total";

export interface KafkaLagMetricsOptions {
  registry: Registry;
  kafka: Pick<Kafka, "consumerLag">;
  log: Logger;
  /** The groups and topics to read (logical names). @defaultValue every channel's worker group on its topic */
  pairs?: readonly GroupTopic[];
  /** A read is reused by scrapes within this long. @defaultValue 2000 */
  cacheMs?: number;
  /** A read not answered by then counts as failed. @defaultValue 3000 */
  timeoutMs?: number;
  /** While reads fail, the last answer is still served until it is this old. @defaultValue 60000 */
  staleMs?: number;
  /** @defaultValue the system clock */
  clock?: Clock;
}

/** Every channel's worker groups on their topics: herald-worker-email on herald.email, herald-worker-email-high on herald.email.high, ... */
export function workerLagPairs(): GroupTopic[] {
  return workerSubscriptions().map(({ group, topic }) => ({ group, topic }));
}

/**
 * Registers the lag gauge and its error counter on `registry`, collected on scrape. Once per
 * registry: when two roles share a process (`herald dev`), the second call finds them
 * registered and adds nothing, so one read serves both.
 */
export function registerKafkaLagMetrics(opts: KafkaLagMetricsOptions): void {
  const { registry, kafka, log, cacheMs = 2000, timeoutMs = 3000, staleMs = 60_000, clock = systemClock } = opts;
  if (registry.getSingleMetric(CONSUMER_LAG)) return;
  const pairs = opts.pairs ?? workerLagPairs();
  const outage = createOutageLog(
    log,
    { down: "kafka consumer lag unreadable; /metrics serves the last answer for a minute, then none", up: "kafka consumer lag readable again" },
    clock,
  );

  const errors = new Counter({
    name: LAG_ERRORS,
    help: "Consumer lag reads that failed (Kafka did not answer in time, or answered an error).",
    registers: [registry],
    // The gauge's read may count a failure; both wait for it, so one scrape shows both.
    collect: () => refresh(),
  });
  // The last successful answer, and the current read (settled or not) with when it started.
  let good: { rows: PartitionLag[]; at: number } | undefined;
  let current: { done: Promise<void>; at: number } | undefined;

  const read = async (): Promise<void> => {
    try {
      good = { rows: await bounded(kafka.consumerLag(pairs), timeoutMs), at: clock.now() };
      outage.succeeded();
    } catch (err) {
      errors.inc();
      outage.failed(err);
    }
  };
  // Scrapes within cacheMs of a read's start share it, whether it is still running or done.
  const refresh = (): Promise<void> => {
    const now = clock.now();
    if (!current || now - current.at >= cacheMs) current = { done: read(), at: now };
    return current.done;
  };

  new Gauge({
    name: CONSUMER_LAG,
    help: "Records written to a worker group's topic partition and not yet committed by the group (log-end offset minus committed offset).",
    labelNames: ["group", "topic", "partition"],
    registers: [registry],
    async collect() {
      await refresh();
      // Series are rebuilt from one answer, so a partition or group that is gone leaves no
      // series behind, and an answer older than staleMs is dropped rather than shown as current.
      this.reset();
      if (!good || clock.now() - good.at > staleMs) return;
      for (const r of good.rows) this.labels({ group: r.group, topic: r.topic, partition: String(r.partition) }).set(r.lag);
    },
  });
}
