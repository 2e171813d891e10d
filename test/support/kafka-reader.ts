import { Kafka, logLevel } from "kafkajs";
import { randomBytes } from "node:crypto";

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
 * Reads a topic from the beginning with a fresh consumer group until `until`
 * holds for what was read or the timeout passes; returns everything read.
 * Test-only: production code reaches kafkajs through src/kafka.
 */
export async function readTopic(
  topic: string,
  opts: { until: (records: ReadRecord[]) => boolean; timeoutMs?: number; settleMs?: number; brokers?: string[] },
): Promise<ReadRecord[]> {
  const kafka = new Kafka({ brokers: opts.brokers ?? BROKERS, clientId: "herald-test-reader", logLevel: logLevel.NOTHING });
  const consumer = kafka.consumer({ groupId: `reader-${randomBytes(6).toString("hex")}`, sessionTimeout: 10_000 });
  const records: ReadRecord[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    let satisfiedAt: number | undefined;
    await consumer.run({
      eachMessage: async ({ topic: t, partition, message }) => {
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(message.headers ?? {})) headers[k] = String(v);
        records.push({ topic: t, partition, offset: message.offset, key: message.key?.toString() ?? "", value: message.value ?? Buffer.alloc(0), headers, timestamp: Number(message.timestamp) });
      },
    });
    const deadline = Date.now() + (opts.timeoutMs ?? 20_000);
    // settleMs: keep reading a little after the condition holds, so a test can see duplicates that should not be there.
    while (Date.now() < deadline) {
      if (opts.until(records)) {
        satisfiedAt ??= Date.now();
        if (Date.now() - satisfiedAt >= (opts.settleMs ?? 0)) break;
      } else satisfiedAt = undefined;
      await new Promise((r) => setTimeout(r, 50));
    }
    return records;
  } finally {
    await consumer.disconnect();
  }
}
