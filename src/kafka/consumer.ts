import type { Consumer, IHeaders, Kafka, KafkaMessage } from "kafkajs";
import type { Logger } from "../log.js";

/** A record as handed to a consumer's handler. `topic` is the logical name. */
export interface ConsumedMessage {
  topic: string;
  partition: number;
  offset: string;
  key: string | null;
  /** Empty for a record with a null value (we never write those). */
  value: Uint8Array;
  headers: Record<string, string>;
  /** Producer's CreateTime, ms since the epoch. */
  timestamp: number;
}

export type MessageHandler = (message: ConsumedMessage) => Promise<void>;

export interface ConsumerOptions {
  /** Logical group name; the topic prefix is added. */
  groupId: string;
  /** Logical topic names. */
  topics: readonly string[];
  /** Where a group with no committed offset starts: the oldest record, or only new ones. */
  fromBeginning: boolean;
  /** Partitions handled at once; order holds within a partition either way. @defaultValue 1 */
  partitionsConcurrently?: number;
}

export interface KafkaConsumer {
  /**
   * Joins the group and starts handing over records one at a time per partition. A record's
   * offset is committed only after `handle` resolved for it (and every record before it), so a
   * crash redelivers work that was not finished: handlers must treat repeats as no-ops. When
   * `handle` throws, kafkajs redelivers from that record after a backoff.
   * Resolves once consumption has started, not when the group is joined.
   */
  run(handle: MessageHandler): Promise<void>;
  /** Stops fetching, waits for the handler in flight, leaves the group. Idempotent. */
  close(): Promise<void>;
}

export function createConsumer(client: Kafka, topicPrefix: string, opts: ConsumerOptions, log: Logger): KafkaConsumer {
  const consumer: Consumer = client.consumer({
    groupId: topicPrefix + opts.groupId,
    allowAutoTopicCreation: false,
    // How long an idle fetch waits on the broker. close() waits for the fetch in flight, so
    // kafkajs' 5 s default would make every shutdown take 5 s; 500 ms is the Java default.
    maxWaitTimeInMs: 500,
  });
  consumer.on(consumer.events.CRASH, (e) => {
    log.error({ err: e.payload.error, group: opts.groupId, restart: e.payload.restart }, "kafka consumer crashed");
  });
  let closing: Promise<void> | undefined;

  return {
    async run(handle) {
      await consumer.connect();
      await consumer.subscribe({ topics: opts.topics.map((t) => topicPrefix + t), fromBeginning: opts.fromBeginning });
      await consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: opts.partitionsConcurrently ?? 1,
        eachBatch: async (ctx) => {
          const { batch } = ctx;
          const topic = batch.topic.slice(topicPrefix.length);
          let done: string | undefined;
          const commit = async () => {
            if (done === undefined) return;
            const next = (BigInt(done) + 1n).toString(); // Kafka commits the next offset to read
            await ctx.commitOffsetsIfNecessary({ topics: [{ topic: batch.topic, partitions: [{ partition: batch.partition, offset: next }] }] });
          };
          try {
            for (const m of batch.messages) {
              // Stop at a rebalance (the partition may be someone else's now) or a seek.
              if (!ctx.isRunning() || ctx.isStale()) break;
              await handle(toConsumed(topic, batch.partition, m));
              ctx.resolveOffset(m.offset);
              done = m.offset;
              await ctx.heartbeat();
            }
          } finally {
            // Also on a throw: what was handled stays handled; the failed record comes again.
            await commit();
          }
        },
      });
    },
    close() {
      closing ??= consumer.disconnect();
      return closing;
    },
  };
}

function toConsumed(topic: string, partition: number, m: KafkaMessage): ConsumedMessage {
  return {
    topic,
    partition,
    offset: m.offset,
    key: m.key ? m.key.toString("utf8") : null,
    value: m.value ?? new Uint8Array(0),
    headers: toHeaders(m.headers),
    timestamp: Number(m.timestamp),
  };
}

// Kafka allows a header name more than once; ours are a string map, so the last one wins.
function toHeaders(headers: IHeaders | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, raw] of Object.entries(headers ?? {})) {
    const value = Array.isArray(raw) ? raw[raw.length - 1] : raw;
    if (value !== undefined) out[name] = value.toString();
  }
  return out;
}
