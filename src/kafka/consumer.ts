import type { Consumer, ConsumerRunConfig, EachBatchPayload, IHeaders, Kafka, KafkaMessage } from "kafkajs";
import type { Logger } from "../log.js";
import { restartAfterFatalCrash } from "./crash-restart.js";

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

/**
 * One fetched batch of one partition, for handlers that decide themselves what is done (the
 * channel workers, the status feed). Nothing is committed or resolved unless the handler says
 * so: `resolve` moves this member's fetch position, `KafkaConsumer.commit` records progress for
 * the group, and a rejoin fetches again from the committed offset.
 */
export interface ConsumedBatch {
  /** Logical topic name. */
  topic: string;
  partition: number;
  /** In offset order. */
  messages: readonly ConsumedMessage[];
  /** False once close() began or the partition was sought: start nothing new, finish what runs. */
  isActive(): boolean;
  /**
   * Keeps this member in the group while a batch runs long (kafkajs heartbeats only when asked;
   * calls are throttled to the heartbeat interval). Rejects while the group rebalances: the
   * partition may be taken away, so start nothing more of it and rethrow to let it rejoin.
   */
  heartbeat(): Promise<void>;
  /**
   * Moves this member's fetch position to `nextOffset` without committing it: the next fetch of
   * this partition starts there. No broker round trip.
   */
  resolve(nextOffset: string): void;
}

/** Handles a whole batch; resolves when it is done with it (a rejection: kafkajs retries from the last commit). */
export type BatchHandler = (batch: ConsumedBatch) => Promise<void>;

export interface ConsumerOptions {
  /** Logical group name; the topic prefix is added. */
  groupId: string;
  /** Logical topic names. */
  topics: readonly string[];
  /** Where a group with no committed offset starts: the oldest record, or only new ones. */
  fromBeginning: boolean;
  /** Partitions handled at once; order holds within a partition either way. @defaultValue 1 */
  partitionsConcurrently?: number;
  /**
   * The group drops a member it has not heard from for this long, and only then moves its
   * partitions: how long a crashed member's partitions stand still. The broker bounds it
   * (group.min.session.timeout.ms, 6000 by default). @defaultValue 30000 (kafkajs)
   */
  sessionTimeoutMs?: number;
  /** Shortest time between two heartbeats; a live member hears of a rebalance at its next one. @defaultValue 3000 (kafkajs) */
  heartbeatIntervalMs?: number;
  /**
   * How long a rebalance waits for a live member to rejoin before dropping it. Every handler here
   * returns within a heartbeat of a rebalance, so twice the session is ample; kafkajs' 60 s would
   * let one stuck member hold every partition of the group that long.
   * @defaultValue 2 × sessionTimeoutMs (60000 without one)
   */
  rebalanceTimeoutMs?: number;
  /**
   * A fetch returns once this many bytes are ready, or after `fetchMaxWaitMs`. Above 1, the
   * broker gathers records into fewer, larger batches for a consumer that fetches again at once.
   * @defaultValue 1
   */
  fetchMinBytes?: number;
  /** Longest a fetch waits on the broker for `fetchMinBytes`; close() waits for the fetch in flight. @defaultValue 500 */
  fetchMaxWaitMs?: number;
  /**
   * Called each time this member has (re)joined the group, with the partitions it now owns
   * (logical topic names). A partition missing from it may already be fetched by another member.
   */
  onAssigned?: (assigned: readonly TopicPartition[]) => void;
  /** Called each time this member has (re)joined the group: a rebalance, as this member saw it. */
  onGroupJoin?: () => void;
  /** Called after each fetch request, empty or not: how often an idle consumer asks the broker. */
  onFetch?: () => void;
}

/** A partition of a logical topic. */
export interface TopicPartition {
  topic: string;
  partition: number;
}

/** What to commit for one partition: Kafka's "next record to read". */
export interface PartitionOffset extends TopicPartition {
  offset: string;
}

export interface KafkaConsumer {
  /**
   * Joins the group and starts handing over records one at a time per partition. A record's
   * offset is committed only after `handle` resolved for it (and every record before it), so a
   * crash redelivers work that was not finished: handlers must treat repeats as no-ops. When
   * `handle` throws, kafkajs redelivers from that record after a backoff.
   * Resolves once consumption has started, not when the group is joined.
   *
   * With `{ eachBatch }` instead, the handler gets each partition batch whole and decides itself
   * what is done and when to commit (see ConsumedBatch).
   */
  run(handle: MessageHandler | { eachBatch: BatchHandler }): Promise<void>;
  /**
   * Commits offsets outside any batch, for a handler that lets records outlive their batch. Only
   * while running (between run and close); rejects while the group rebalances.
   */
  commit(offsets: readonly PartitionOffset[]): Promise<void>;
  /** Stops fetching, waits for the handler in flight, leaves the group. Idempotent. */
  close(): Promise<void>;
}

/** The group timings a caller passes through (from configuration) to a consumer. */
export type GroupTiming = Pick<ConsumerOptions, "sessionTimeoutMs" | "heartbeatIntervalMs" | "rebalanceTimeoutMs">;

export function createConsumer(client: Kafka, topicPrefix: string, opts: ConsumerOptions, log: Logger): KafkaConsumer {
  const rebalanceTimeoutMs = opts.rebalanceTimeoutMs ?? (opts.sessionTimeoutMs === undefined ? undefined : 2 * opts.sessionTimeoutMs);
  const consumer: Consumer = client.consumer({
    groupId: topicPrefix + opts.groupId,
    allowAutoTopicCreation: false,
    // How long an idle fetch waits on the broker. close() waits for the fetch in flight, so
    // kafkajs' 5 s default would make every shutdown take 5 s; 500 ms is the Java default.
    maxWaitTimeInMs: opts.fetchMaxWaitMs ?? 500,
    ...(opts.fetchMinBytes === undefined ? {} : { minBytes: opts.fetchMinBytes }),
    ...(opts.sessionTimeoutMs === undefined ? {} : { sessionTimeout: opts.sessionTimeoutMs }),
    ...(opts.heartbeatIntervalMs === undefined ? {} : { heartbeatInterval: opts.heartbeatIntervalMs }),
    ...(rebalanceTimeoutMs === undefined ? {} : { rebalanceTimeout: rebalanceTimeoutMs }),
  });
  if (opts.onAssigned) {
    const onAssigned = opts.onAssigned;
    consumer.on(consumer.events.GROUP_JOIN, (e) => {
      const assigned: TopicPartition[] = [];
      for (const [topic, partitions] of Object.entries(e.payload.memberAssignment)) {
        for (const partition of partitions) assigned.push({ topic: topic.slice(topicPrefix.length), partition });
      }
      onAssigned(assigned);
    });
  }
  if (opts.onGroupJoin) consumer.on(consumer.events.GROUP_JOIN, opts.onGroupJoin);
  if (opts.onFetch) consumer.on(consumer.events.FETCH, opts.onFetch);
  consumer.on(consumer.events.CRASH, (e) => {
    log.error({ err: e.payload.error, group: opts.groupId, restart: e.payload.restart }, "kafka consumer crashed");
  });
  const restart = restartAfterFatalCrash(consumer, { group: opts.groupId, log });
  let closing: Promise<void> | undefined;

  return {
    async run(handle) {
      await consumer.connect();
      await consumer.subscribe({ topics: opts.topics.map((t) => topicPrefix + t), fromBeginning: opts.fromBeginning });
      const config: ConsumerRunConfig = {
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: opts.partitionsConcurrently ?? 1,
        eachBatch: async (ctx) => {
          const { batch } = ctx;
          if (typeof handle !== "function") return handle.eachBatch(toBatch(ctx, topicPrefix));
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
      };
      restart.start = () => consumer.run(config);
      await consumer.run(config);
    },
    async commit(offsets) {
      if (offsets.length === 0) return;
      await consumer.commitOffsets(offsets.map((o) => ({ topic: topicPrefix + o.topic, partition: o.partition, offset: o.offset })));
    },
    close() {
      restart.stop();
      closing ??= consumer.disconnect();
      return closing;
    },
  };
}

function toBatch(ctx: EachBatchPayload, topicPrefix: string): ConsumedBatch {
  const { batch } = ctx;
  const topic = batch.topic.slice(topicPrefix.length);
  return {
    topic,
    partition: batch.partition,
    messages: batch.messages.map((m) => toConsumed(topic, batch.partition, m)),
    isActive: () => ctx.isRunning() && !ctx.isStale(),
    heartbeat: () => ctx.heartbeat(),
    // kafkajs resolves the last record done; ours name the next one to read.
    resolve: (nextOffset) => ctx.resolveOffset((BigInt(nextOffset) - 1n).toString()),
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
