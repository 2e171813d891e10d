import { setMaxListeners } from "node:events";
import type { KafkaConsumer, TopicPartition } from "../kafka/kafka.js";
import type { Logger } from "../log.js";
import type { DeliverySignals } from "./delivery-signals.js";
import { createPartitionProgress, type PartitionProgress } from "./partition-progress.js";

// The partitions a worker holds, from their assignment until the group takes them away, and
// the committing of their progress. A partition taken away starts nothing more here and is no
// longer committed; what runs finishes under its claim, and the next owner's claim of such a
// record waits for that outcome and then skips it.

/** One partition as this member holds it. */
export interface HeldPartition extends TopicPartition {
  progress: PartitionProgress;
  /** Aborted when the group takes the partition away. */
  revoked: AbortController;
  /** `stop` ends with the worker's stop or the partition's revocation. */
  signals: DeliverySignals;
  /** The last batch's records settled. */
  previous: Promise<void>;
  /** Last offset committed, as Kafka's next record to read. */
  committed?: string;
}

export interface HeldPartitions {
  /** The partition as held, taken on at its first batch. */
  hold(tp: TopicPartition): HeldPartition;
  /** After a (re)join, with the partitions this member now owns. */
  onAssigned(assigned: readonly TopicPartition[]): void;
  /** Commits each held partition's progress that moved since its last commit. Serialized; never rejects. */
  commit(consumer: Pick<KafkaConsumer, "commit">): Promise<void>;
}

export function createHeldPartitions(deps: { signals: DeliverySignals; log: Logger }): HeldPartitions {
  const { signals, log } = deps;
  const held = new Map<string, HeldPartition>();
  let committing: Promise<void> = Promise.resolve();
  const partitionKey = (tp: TopicPartition) => `${tp.topic}|${tp.partition}`;

  return {
    hold(tp) {
      const key = partitionKey(tp);
      let p = held.get(key);
      if (!p) {
        const revoked = new AbortController();
        const stop = AbortSignal.any([signals.stop, revoked.signal]);
        // Every record in flight of the partition listens on it: not a leak.
        setMaxListeners(0, stop);
        p = { topic: tp.topic, partition: tp.partition, progress: createPartitionProgress(), revoked, signals: { stop, abort: signals.abort }, previous: Promise.resolve() };
        held.set(key, p);
      }
      return p;
    },
    onAssigned(assigned) {
      const mine = new Set(assigned.map(partitionKey));
      for (const [key, p] of held) {
        if (mine.has(key)) continue;
        p.revoked.abort();
        held.delete(key);
        log.info({ partition: p.partition }, "partition taken away; what runs finishes, nothing more of it starts here");
      }
    },
    commit(consumer) {
      committing = committing.then(async () => {
        const moved = [...held.values()].flatMap((p) => {
          const offset = p.progress.next();
          return offset === undefined || offset === p.committed ? [] : [{ p, offset }];
        });
        if (moved.length === 0) return;
        try {
          await consumer.commit(moved.map(({ p, offset }) => ({ topic: p.topic, partition: p.partition, offset })));
          for (const { p, offset } of moved) p.committed = offset;
        } catch (err) {
          // A rebalance in progress, or Kafka away: the next round commits the
          // (then further) progress; until then a crash only redoes no-ops.
          log.warn({ err }, "committing progress failed; will try again");
        }
      });
      return committing;
    },
  };
}
