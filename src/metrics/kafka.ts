import type { Registry } from "prom-client";
import { counterIn } from "./instruments.js";

// Consumer group joins of this process's consumers (kafkajs's GROUP_JOIN): every rebalance a
// member takes part in, its first join included. A steady climb means members keep leaving and
// rejoining (sessions timing out, crashes), and every rebalance stops the group's fetching.
// Fetch requests (kafkajs's FETCH), empty ones included: an idle consumer long-polls, so its
// rate is about one per fetch wait (two a second); a rate far above that with nothing to
// consume is a consumer spinning, on this process's CPU and the broker's.

export interface KafkaMetrics {
  /** A counter to call on each join of `group` (logical: herald-worker-email, herald-watch). */
  groupJoins(group: string): () => void;
  /** A counter to call after each fetch request of `group`'s consumer. */
  fetches(group: string): () => void;
}

export function createKafkaMetrics(registry: Registry): KafkaMetrics {
  const rebalances = counterIn(registry, { name: "herald_kafka_rebalances_total", help: "Consumer group joins of this process's consumers.", labelNames: ["group"] });
  const fetches = counterIn(registry, { name: "herald_kafka_fetches_total", help: "Fetch requests of this process's consumers, empty ones included.", labelNames: ["group"] });
  return {
    fetches(group) {
      const child = fetches.labels(group);
      child.inc(0);
      return () => child.inc();
    },
    groupJoins(group) {
      const child = rebalances.labels(group);
      child.inc(0); // present (0) before the first join
      return () => child.inc();
    },
  };
}
