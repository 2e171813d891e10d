import type pg from "pg";
import { withFeedPositions } from "../feed/positions.js";
import type { KafkaRecord } from "../kafka/kafka.js";
import { markPublished, selectUnpublished, type OutboxBatch } from "../outbox/batches.js";
import { tracePublish } from "../tracing/spans.js";

// Moving batches from the outbox to Kafka on the leader's session. At least once: a batch is
// marked only after Kafka acknowledged it, so a crash between publish and mark publishes it
// again, and consumers dedupe. (Such a repeat can even follow newer records of its key, when
// a leader that lost its lock was still finishing a batch.)

/** Where records go; the Kafka producer in production, a wrapper or fake in tests. */
export interface RecordSink {
  sendBatch(records: readonly KafkaRecord[]): Promise<void>;
}

/** The publish step failed; the rows are not marked. Any other failure is the database's. */
export class PublishError extends Error {
  override name = "PublishError";
}

export interface Publisher {
  /** One batch, one step after the other; returns the rows published. */
  publishBatch(client: pg.ClientBase): Promise<number>;
  /**
   * Publishes until nothing is left or `stopped` aborts, pipelined: while Kafka acknowledges
   * batch N, the leader's session marks batch N-1 and prepares batch N+1, so a cycle costs the
   * longer of the two instead of their sum. Batch N+1 is published only after N's
   * acknowledgement, so records still leave in order and feed positions still reach Kafka
   * increasing. A failed publish drops the prepared batch unmarked (the next attempt selects
   * it again, with the positions it was given).
   */
  publishAll(client: pg.ClientBase, stopped: AbortSignal): Promise<void>;
}

export function createPublisher(deps: { producer: RecordSink; batchSize: number }): Publisher {
  const { producer, batchSize } = deps;

  /** The next batch, with its feed positions: every unpublished row but those of `inFlight`. */
  async function prepare(client: pg.ClientBase, inFlight: readonly string[]): Promise<OutboxBatch | undefined> {
    const batch = await selectUnpublished(client, batchSize, inFlight);
    return batch && { ids: batch.ids, records: await withFeedPositions(client, batch.records) };
  }

  async function publish(batch: OutboxBatch): Promise<void> {
    // A producer span per traced record, ended on Kafka's answer (nothing when tracing is off).
    const traced = tracePublish(batch.records);
    try {
      await producer.sendBatch(batch.records);
      traced?.();
    } catch (err) {
      traced?.(err);
      throw new PublishError("publish failed", { cause: err });
    }
  }

  return {
    async publishBatch(client) {
      const batch = await prepare(client, []);
      if (!batch) return 0;
      await publish(batch);
      await markPublished(client, batch.ids);
      return batch.ids.length;
    },

    async publishAll(client, stopped) {
      let current = await prepare(client, []);
      let unmarked: readonly string[] = [];
      while (current && !stopped.aborted) {
        const batch: OutboxBatch = current;
        const sending = publish(batch);
        const alongside = (async () => {
          if (unmarked.length > 0) await markPublished(client, unmarked);
          return prepare(client, batch.ids);
        })();
        const [sent, next] = await Promise.allSettled([sending, alongside]);
        if (next.status === "rejected") throw next.reason; // the database: the caller drops the lead
        if (sent.status === "rejected") throw sent.reason;
        unmarked = batch.ids;
        current = next.value;
      }
      if (unmarked.length > 0) await markPublished(client, unmarked);
    },
  };
}
