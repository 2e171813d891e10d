import type { Kafka, PartitionLag } from "../../../kafka/kafka.js";
import { bounded } from "../../../kafka/errors.js";
import { workerSubscriptions } from "../../../kafka/topics.js";
import { createOutageLog } from "../../../loop/outage.js";
import type { Logger } from "../../../log.js";

// The operations view's consumer lag: every channel's worker groups (both lanes) on their topics, read with the
// admin client (src/kafka/lag.ts). An overview must answer while Kafka does not (that is when an
// operator looks), so a read is bounded: past the timeout the caller gets `undefined` and says
// "lag unavailable" next to the figures PostgreSQL and memory still give. Reads are shared:
// callers that arrive while one is in flight wait for that one, so dashboards polling a dead
// broker hold at most one read (and its kafkajs retries) open, not one per poll.

/** How long an overview waits for Kafka's answer. */
export const LAG_TIMEOUT_MS = 2000;

export interface LagReader {
  /** Lag of every worker group's partitions (logical names), or undefined when Kafka did not answer in time. */
  read(): Promise<PartitionLag[] | undefined>;
}

export function createLagReader(deps: { kafka: Pick<Kafka, "consumerLag">; log: Logger; timeoutMs?: number }): LagReader {
  const { kafka, timeoutMs = LAG_TIMEOUT_MS } = deps;
  const pairs = workerSubscriptions().map(({ group, topic }) => ({ group, topic }));
  const outage = createOutageLog(deps.log, { down: "consumer lag unavailable for the operations overview", up: "consumer lag readable again" });
  let inFlight: Promise<PartitionLag[]> | undefined;
  return {
    async read() {
      inFlight ??= kafka.consumerLag(pairs).finally(() => (inFlight = undefined));
      try {
        const rows = await bounded(inFlight, timeoutMs);
        outage.succeeded();
        return rows;
      } catch (err) {
        outage.failed(err);
        return undefined;
      }
    },
  };
}
