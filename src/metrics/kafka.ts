import type { Registry } from "prom-client";
import { counterIn } from "./instruments.js";

// Consumer group joins of this process's consumers (kafkajs's GROUP_JOIN): every rebalance a
// member takes part in, its first join included. A steady climb means members keep leaving and
// rejoining (sessions timing out, crashes), and every rebalance stops the group's fetching.

export interface KafkaMetrics {
  /** A counter to call on each join of `group` (logical: herald-worker-email, herald-watch). */
  groupJoins(group: string): () => void;
}

export function createKafkaMetrics(registry: Registry): KafkaMetrics {
  const rebalances = counterIn(registry, { name: "herald_kafka_rebalances_total", help: "Consumer group joins of this process's consumers.", labelNames: ["group"] });
  return {
    groupJoins(group) {
      const child = rebalances.labels(group);
      child.inc(0); // present (0) before the first join
      return () => child.inc();
    },
  };
}
