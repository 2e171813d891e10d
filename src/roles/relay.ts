import { createRelay } from "../relay/relay.js";
import { registerBacklogGauges } from "../metrics/backlog-gauges.js";
import { createRelayMetrics } from "../metrics/relay.js";
import { readBacklog } from "../store/backlog.js";
import type { Runtime } from "./runtime.js";

/** The outbox relay: publishes committed outbox rows to Kafka. One leader at a time. */
export async function startRelayRole(rt: Runtime): Promise<void> {
  const log = rt.log.child({ component: "relay" });
  const metrics = createRelayMetrics(rt.metrics);
  registerBacklogGauges(rt.metrics, "outbox", { read: () => readBacklog(rt.pool), log });
  const producer = rt.kafka.producer();
  // Connected here rather than on the first batch, so a broker gone since the runtime's wait is
  // logged as the wait it is.
  await rt.waitFor("kafka", () => producer.connect());
  const relay = createRelay({
    pool: rt.pool,
    producer: metrics.measured(producer),
    log,
    ...rt.config.relay,
    onLeading: (leading) => metrics.leading(leading),
  });
  relay.start();
  // Flush: the in-flight batch is published and marked before the producer goes.
  rt.shutdown.add("relay", () => relay.close());
  rt.shutdown.add("producer", () => producer.disconnect());
}
