import { createRelay } from "../relay/relay.js";
import { registerKafkaLagMetrics } from "../metrics/kafka-lag.js";
import { registerBacklogGauges } from "../metrics/backlog-gauges.js";
import { createRelayMetrics } from "../metrics/relay.js";
import { readBacklog } from "../store/backlog.js";
import { singleLane } from "../relay/single-lane.js";
import type { Runtime } from "./runtime.js";

/** The outbox relay: publishes committed outbox rows to Kafka. One leader at a time. */
export async function startRelayRole(rt: Runtime): Promise<void> {
  // The relay exports every worker group's consumer lag: it already talks to Kafka, and one relay
  // runs wherever Herald does, while workers may be scaled to none (when lag matters most). Every
  // relay exports it, leader or not; dashboards take max() across instances.
  registerKafkaLagMetrics({ registry: rt.metrics, kafka: rt.kafka, log: rt.log.child({ component: "kafka-lag" }) });
  const log = rt.log.child({ component: "relay" });
  const metrics = createRelayMetrics(rt.metrics);
  registerBacklogGauges(rt.metrics, "outbox", { read: () => readBacklog(rt.pool), log });
  const producer = rt.kafka.producer();
  // Connected here rather than on the first batch, so a broker gone since the runtime's wait is
  // logged as the wait it is.
  await rt.waitFor("kafka", () => producer.connect());
  const relay = createRelay({
    pool: rt.pool,
    producer: metrics.measured(rt.config.priority.lanes ? producer : singleLane(producer)),
    log,
    ...rt.config.relay,
    onLeading: (leading) => metrics.leading(leading),
  });
  relay.start();
  // Flush: the in-flight batch is published and marked before the producer goes.
  rt.shutdown.add("relay", () => relay.close());
  rt.shutdown.add("producer", () => producer.disconnect());
}
