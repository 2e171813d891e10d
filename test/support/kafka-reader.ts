import { Kafka, logLevel } from "kafkajs";
import { randomBytes } from "node:crypto";
import { waitFor } from "./wait.js";

export interface ReadRecord {
  topic: string;
  partition: number;
  offset: string;
  key: string;
  value: Buffer;
  headers: Record<string, string>;
  /** The record's timestamp (producer create time), ms since epoch. */
  timestamp: number;
}

const BROKERS = (process.env.KAFKA_BROKERS ?? "127.0.0.1:9092").split(",");

/**
 * Reads a topic from the beginning with a fresh consumer group until `until` holds for what
 * was read, then on to the end offsets the topic had at that moment, so a test also sees any
 * copy that should not be there (a settled fact, where a pause would be a guess); returns
 * everything read. Throws when `until` does not hold within the timeout.
 * Test-only: production code reaches kafkajs through src/kafka.
 */
export async function readTopic(
  topic: string,
  opts: { until: (records: ReadRecord[]) => boolean; timeoutMs?: number; brokers?: string[] },
): Promise<ReadRecord[]> {
  const kafka = new Kafka({ brokers: opts.brokers ?? BROKERS, clientId: "herald-test-reader", logLevel: logLevel.NOTHING });
  const consumer = kafka.consumer({ groupId: `reader-${randomBytes(6).toString("hex")}`, sessionTimeout: 10_000 });
  const records: ReadRecord[] = [];
  const readTo = new Map<string, bigint>();
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ topic: t, partition, message }) => {
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(message.headers ?? {})) headers[k] = String(v);
        records.push({ topic: t, partition, offset: message.offset, key: message.key?.toString() ?? "", value: message.value ?? Buffer.alloc(0), headers, timestamp: Number(message.timestamp) });
        readTo.set(`${t}/${partition}`, BigInt(message.offset) + 1n);
      },
    });
    const timeoutMs = opts.timeoutMs ?? 30_000;
    try {
      await waitFor(`the records wanted from ${topic}`, () => opts.until(records), { timeoutMs, everyMs: 50 });
    } catch (err) {
      // Say whether the records were in Kafka at all: a writer that never published them, or
      // this reader that never got them, are different bugs.
      throw new Error(`${(err as Error).message}; read ${records.length}, the topic's partitions end at ${await describeEnds(topic, opts.brokers)}`, {
        cause: err,
      });
    }
    const ends = await endOffsets([topic], opts.brokers);
    await waitFor(`${topic} read to its end offsets`, () => reached(ends, readTo), { timeoutMs, everyMs: 50 });
    return records;
  } finally {
    await consumer.disconnect();
  }
}

/** The end offsets of `topic`'s partitions that hold records, for an error message; never throws. */
async function describeEnds(topic: string, brokers?: string[]): Promise<string> {
  try {
    const ends = await Promise.race([
      endOffsets([topic], brokers),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error("no answer in 5 s")), 5000).unref()),
    ]);
    return ends.size === 0 ? "0 (the topic is empty)" : [...ends].map(([p, end]) => `${p}:${end}`).join(", ");
  } catch (err) {
    return `unknown (${(err as Error).message})`;
  }
}

/** "topic/partition" → an offset: where a partition ends, or where a reader has read to. */
export type Offsets = Map<string, bigint>;

/** Where each partition of `topics` ends now (the offset the next record will get). */
export async function endOffsets(topics: readonly string[], brokers = BROKERS): Promise<Offsets> {
  const admin = new Kafka({ brokers, clientId: "herald-test-offsets", logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    const ends: Offsets = new Map();
    for (const topic of topics) {
      for (const p of await admin.fetchTopicOffsets(topic)) if (BigInt(p.high) > BigInt(p.low)) ends.set(`${topic}/${p.partition}`, BigInt(p.high));
    }
    return ends;
  } finally {
    await admin.disconnect();
  }
}

/** Whether a reader that has read each partition up to `readTo` has seen everything up to `ends`. */
export function reached(ends: Offsets, readTo: Offsets): boolean {
  return [...ends].every(([partition, end]) => (readTo.get(partition) ?? 0n) >= end);
}
