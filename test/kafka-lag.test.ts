import { randomBytes } from "node:crypto";
import { Kafka as KafkaJS, logLevel } from "kafkajs";
import { pino } from "pino";
import { afterAll, describe, expect, it } from "vitest";
import { createKafka } from "../src/kafka/kafka.js";

// Kafka.consumerLag against the shared broker: records written to chosen partitions and offsets
// committed for a group with the admin client (no consumer needed), then the lag read back in
// logical names. Test-only: kafkajs is used directly to set the scene.

const BROKERS = (process.env.KAFKA_BROKERS ?? "127.0.0.1:9092").split(",");
const prefix = `t${randomBytes(4).toString("hex")}.`;
const raw = new KafkaJS({ brokers: BROKERS, clientId: "herald-test-lag", logLevel: logLevel.NOTHING });
const kafka = createKafka({ brokers: BROKERS, clientId: "herald-test", topicPrefix: prefix, log: pino({ level: "silent" }) });

afterAll(async () => {
  await kafka.close();
});

describe("Kafka.consumerLag", () => {
  it("reads log-end and committed offsets per partition, prefix stripped; a group that never committed lags by everything", async () => {
    await kafka.ensureTopics(["herald.email", "herald.sms"], { partitions: 2, retentionMs: 3_600_000 });
    const producer = raw.producer();
    await producer.connect();
    try {
      const records = (partition: number, n: number) => Array.from({ length: n }, (_, i) => ({ partition, value: `r${i}` }));
      await producer.send({ topic: `${prefix}herald.email`, messages: [...records(0, 5), ...records(1, 3)] });
      await producer.send({ topic: `${prefix}herald.sms`, messages: records(1, 2) });
    } finally {
      await producer.disconnect();
    }
    const admin = raw.admin();
    await admin.connect();
    try {
      await admin.setOffsets({ groupId: `${prefix}herald-worker-email`, topic: `${prefix}herald.email`, partitions: [{ partition: 0, offset: "4" }, { partition: 1, offset: "3" }] });
    } finally {
      await admin.disconnect();
    }

    const rows = await kafka.consumerLag([
      { group: "herald-worker-email", topic: "herald.email" },
      { group: "herald-worker-sms", topic: "herald.sms" },
      { group: "herald-worker-push", topic: "herald.push" }, // no such topic: no rows
    ]);
    expect(rows).toEqual([
      { group: "herald-worker-email", topic: "herald.email", partition: 0, logEndOffset: 5, committedOffset: 4, lag: 1 },
      { group: "herald-worker-email", topic: "herald.email", partition: 1, logEndOffset: 3, committedOffset: 3, lag: 0 },
      { group: "herald-worker-sms", topic: "herald.sms", partition: 0, logEndOffset: 0, committedOffset: null, lag: 0 },
      { group: "herald-worker-sms", topic: "herald.sms", partition: 1, logEndOffset: 2, committedOffset: null, lag: 2 },
    ]);
  });
});
