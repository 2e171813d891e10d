import { performance } from "node:perf_hooks";
import type { Registry } from "prom-client";
import { counterIn, gaugeIn, histogramIn } from "./instruments.js";

// The relay's metrics: what it published, how long Kafka took to acknowledge a batch, what
// failed, and whether this relay leads. Recorded by wrapping the relay's record sink (so the
// relay's loop knows nothing of them) and through its leadership callback.

/** A batch sink as the relay uses it; records name their logical topic (herald.email). */
export interface TopicSink<R extends { topic: string }> {
  sendBatch(records: readonly R[]): Promise<void>;
}

export interface RelayMetrics {
  /** `sink`, counting and timing every batch it sends. */
  measured<R extends { topic: string }>(sink: TopicSink<R>): TopicSink<R>;
  /** This relay took (true) or lost (false) the lead. */
  leading(leader: boolean): void;
}

/** From one batch's send until Kafka acknowledged all of it (acks=all). */
const PUBLISH_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export function createRelayMetrics(registry: Registry): RelayMetrics {
  const published = counterIn(registry, { name: "herald_relay_published_total", help: "Records published to Kafka by the relay.", labelNames: ["topic"] });
  const seconds = histogramIn(registry, { name: "herald_relay_publish_seconds", help: "One relay batch: send to Kafka until acknowledged.", buckets: PUBLISH_BUCKETS });
  const errors = counterIn(registry, { name: "herald_kafka_produce_errors_total", help: "Relay batches Kafka did not acknowledge, per topic in the batch.", labelNames: ["topic"] });
  const leader = gaugeIn(registry, { name: "herald_relay_leader", help: "1 while this relay holds the outbox leadership, else 0." });
  leader.set(0);
  // Topics are few (one per channel, the status feed, the dead letters): children kept, not re-labelled per batch.
  const publishedBy = new Map<string, ReturnType<typeof published.labels>>();
  const errorsBy = new Map<string, ReturnType<typeof errors.labels>>();
  const child = <C>(cache: Map<string, C>, topic: string, make: (t: string) => C): C => {
    let c = cache.get(topic);
    if (!c) cache.set(topic, (c = make(topic)));
    return c;
  };

  return {
    measured(sink) {
      return {
        async sendBatch(records) {
          const started = performance.now();
          try {
            await sink.sendBatch(records);
          } catch (err) {
            for (const topic of new Set(records.map((r) => r.topic))) child(errorsBy, topic, (t) => errors.labels(t)).inc();
            throw err;
          }
          seconds.observe((performance.now() - started) / 1000);
          const counts = new Map<string, number>();
          for (const r of records) counts.set(r.topic, (counts.get(r.topic) ?? 0) + 1);
          for (const [topic, n] of counts) child(publishedBy, topic, (t) => published.labels(t)).inc(n);
        },
      };
    },
    leading(isLeader) {
      leader.set(isLeader ? 1 : 0);
    },
  };
}
