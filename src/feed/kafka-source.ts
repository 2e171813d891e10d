import { randomUUID } from "node:crypto";
import type { GroupTiming } from "../kafka/consumer.js";
import type { Kafka } from "../kafka/kafka.js";
import { STATUS_TOPIC } from "../kafka/topics.js";
import type { FeedSource } from "./feed.js";

/** The logical name of every API instance's status-feed group (each adds its own uuid). */
export const WATCH_GROUP = "herald-watch";

/**
 * herald.status as a feed source: a consumer group of its own per API instance (every instance
 * reads every record), starting at the newest record. Offsets are only resolved, never
 * committed: the feed's order comes from positions, and a restarted instance starts afresh (its
 * group id is new), filling from PostgreSQL whatever it needs.
 */
export function kafkaFeedSource(
  kafka: Kafka,
  group: GroupTiming = { sessionTimeoutMs: 10_000, heartbeatIntervalMs: 1000 },
  /** Each (re)join of the group, and each fetch request. */
  events: { onGroupJoin?: () => void; onFetch?: () => void } = {},
): FeedSource {
  const consumer = kafka.consumer({
    groupId: `${WATCH_GROUP}-${randomUUID()}`,
    topics: [STATUS_TOPIC],
    fromBeginning: false,
    // Short (HERALD_KAFKA_SESSION_TIMEOUT_MS): after a broker restart this instance rejoins as a
    // new member, and its group hands it the partition only once the old member's session ends.
    ...group,
    ...events,
  });
  return {
    async start(onBatch) {
      await consumer.run({
        eachBatch: async (batch) => {
          if (batch.messages.length === 0) return;
          await onBatch(batch.messages);
          const last = batch.messages[batch.messages.length - 1]!;
          batch.resolve((BigInt(last.offset) + 1n).toString());
        },
      });
    },
    close: () => consumer.close(),
  };
}
