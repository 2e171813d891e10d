import { randomBytes } from "node:crypto";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { UnavailableError } from "../src/errors.js";
import { createKafka, type Kafka, type PartitionLag } from "../src/kafka/kafka.js";
import { waitFor } from "./support/wait.js";

// Kafka.consumerLag against the shared broker, every test with its own topic prefix: what
// `kafka-consumer-groups --describe` would show, by value, before and after a group commits.

const BROKERS = (process.env.KAFKA_BROKERS ?? "127.0.0.1:9092").split(",");
const log = pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" });
const TOPIC = { retentionMs: 3_600_000 };

const clients: Kafka[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
});

function kafka(brokers = BROKERS): Kafka {
  const client = createKafka({ brokers, clientId: "herald-test", topicPrefix: `t${randomBytes(4).toString("hex")}.`, log, connectionTimeoutMs: 1000 });
  clients.push(client);
  return client;
}

const total = (rows: PartitionLag[]) => rows.reduce((n, r) => n + r.lag, 0);
const record = (topic: string, i: number) => ({ topic, key: `user-${i % 5}`, value: Uint8Array.of(i), headers: {} });

describe("consumerLag", () => {
  it("counts every record for a group that never committed, per partition, in logical names; a missing topic has no rows", async () => {
    const client = kafka();
    await client.ensureTopics(["herald.email"], { partitions: 3, ...TOPIC });
    await client.producer().sendBatch(Array.from({ length: 7 }, (_, i) => record("herald.email", i)));

    const rows = await client.consumerLag([
      { group: "herald-worker-email", topic: "herald.email" },
      { group: "herald-worker-push", topic: "herald.push" }, // never created
    ]);
    expect(rows.map((r) => [r.group, r.topic, r.partition])).toEqual([
      ["herald-worker-email", "herald.email", 0],
      ["herald-worker-email", "herald.email", 1],
      ["herald-worker-email", "herald.email", 2],
    ]);
    for (const r of rows) {
      expect(r.committedOffset).toBeNull();
      expect(r.lag).toBe(r.logEndOffset); // nothing deleted yet: the log starts at 0
    }
    expect(total(rows)).toBe(7);
  });

  it("follows the group's commits: the records not yet handled, then 0", async () => {
    const client = kafka();
    await client.ensureTopics(["herald.sms"], { partitions: 1, ...TOPIC });
    await client.producer().sendBatch(Array.from({ length: 5 }, (_, i) => record("herald.sms", i)));
    const lag = async () => (await client.consumerLag([{ group: "g", topic: "herald.sms" }]))[0]!;
    expect(await lag()).toMatchObject({ logEndOffset: 5, committedOffset: null, lag: 5 });

    // Handles 0, 1 and 2, then fails on 3 forever: the group commits offset 3.
    const partial = client.consumer({ groupId: "g", topics: ["herald.sms"], fromBeginning: true });
    await partial.run(async (m) => {
      if (m.value[0] === 3) throw new Error("handler failed");
    });
    await waitFor("the commit after record 2", async () => (await lag()).committedOffset === 3, { timeoutMs: 60_000, everyMs: 200 });
    expect(await lag()).toMatchObject({ logEndOffset: 5, committedOffset: 3, lag: 2 });
    await partial.close();

    const rest = client.consumer({ groupId: "g", topics: ["herald.sms"], fromBeginning: true });
    await rest.run(async () => {});
    await waitFor("the commit of the last record", async () => (await lag()).committedOffset === 5, { timeoutMs: 60_000, everyMs: 200 });
    expect(await lag()).toMatchObject({ logEndOffset: 5, committedOffset: 5, lag: 0 });
    await rest.close();
  });

  it("rejects with UnavailableError when Kafka does not answer", async () => {
    const client = kafka(["127.0.0.1:1"]); // nothing listens on port 1
    await expect(client.consumerLag([{ group: "g", topic: "herald.email" }])).rejects.toBeInstanceOf(UnavailableError);
  });
});
