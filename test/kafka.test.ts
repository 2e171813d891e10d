import { randomBytes } from "node:crypto";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { UnavailableError } from "../src/errors.js";
import { createKafka, type ConsumedMessage, type Kafka } from "../src/kafka/kafka.js";
import { waitFor } from "./support/wait.js";

// Against the shared broker (scripts/kafka.sh start), every test with its own topic prefix.

const BROKERS = (process.env.KAFKA_BROKERS ?? "127.0.0.1:9092").split(",");
const log = pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" });
const TOPIC = { retentionMs: 3_600_000 };

const clients: Kafka[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
});

function kafka(opts: { brokers?: string[]; prefix?: string } = {}): Kafka {
  const client = createKafka({
    brokers: opts.brokers ?? BROKERS,
    clientId: "herald-test",
    topicPrefix: opts.prefix ?? `t${randomBytes(4).toString("hex")}.`,
    log,
    connectionTimeoutMs: 1000,
  });
  clients.push(client);
  return client;
}

describe("ensureTopics", () => {
  it("creates the prefixed topics with the partition count, once", async () => {
    const client = kafka();
    const created = await client.ensureTopics(["herald.email", "herald.status"], { partitions: 3, ...TOPIC });
    expect(created.sort()).toEqual(["herald.email", "herald.status"]);
    expect(await client.describeTopics(["herald.email", "herald.status", "herald.sms"])).toEqual(
      new Map([
        ["herald.email", { partitions: 3, replicas: 1 }],
        ["herald.status", { partitions: 3, replicas: 1 }],
      ]),
    );
    // Idempotent: nothing left to create.
    expect(await client.ensureTopics(["herald.email", "herald.status"], { partitions: 3, ...TOPIC })).toEqual([]);
  });

  it("tolerates another process creating the same topics at the same moment", async () => {
    const prefix = `t${randomBytes(4).toString("hex")}.`;
    const [a, b] = [kafka({ prefix }), kafka({ prefix })];
    const names = ["herald.email", "herald.sms", "herald.push"];
    const results = await Promise.all([a.ensureTopics(names, { partitions: 2, ...TOPIC }), b.ensureTopics(names, { partitions: 2, ...TOPIC })]);
    expect(results.flat().length).toBeLessThanOrEqual(names.length);
    expect([...(await a.describeTopics(names)).values()].map((t) => t.partitions)).toEqual([2, 2, 2]);
  });
});

describe("produce and consume", () => {
  it("round-trips key, binary value and headers, in order per key", async () => {
    const client = kafka();
    await client.ensureTopics(["herald.email"], { partitions: 3, ...TOPIC });
    const producer = client.producer();
    const value = (i: number) => Uint8Array.from([0, 255, i, 0x80, 10]);
    const records = Array.from({ length: 30 }, (_, i) => ({
      topic: "herald.email",
      key: `user-${i % 4}`,
      value: value(i),
      headers: { tenant: "acme", "correlation-id": `c-${i}`, attempt: "1" },
    }));
    await producer.sendBatch(records.slice(0, 10));
    await producer.sendBatch(records.slice(10));

    const got: ConsumedMessage[] = [];
    const consumer = client.consumer({ groupId: "roundtrip", topics: ["herald.email"], fromBeginning: true });
    await consumer.run(async (m) => {
      got.push(m);
    });
    await waitFor("every record", () => got.length >= records.length);

    expect(got).toHaveLength(records.length);
    for (const m of got) {
      const i = Number(m.headers["correlation-id"]?.slice(2));
      expect(m.topic).toBe("herald.email");
      expect(m.key).toBe(`user-${i % 4}`);
      expect(Buffer.from(m.value).equals(Buffer.from(value(i)))).toBe(true);
      expect(m.headers).toEqual({ tenant: "acme", "correlation-id": `c-${i}`, attempt: "1" });
    }
    // The same key always lands on the same partition, so its records keep their order.
    for (let k = 0; k < 4; k++) {
      const mine = got.filter((m) => m.key === `user-${k}`);
      expect(new Set(mine.map((m) => m.partition)).size).toBe(1);
      expect(mine.map((m) => m.headers["correlation-id"])).toEqual(
        records.filter((r) => r.key === `user-${k}`).map((r) => r.headers["correlation-id"]),
      );
    }
    await consumer.close();
  });

  it("commits offsets only for handled records: a new member resumes after the last one handled", async () => {
    const client = kafka();
    await client.ensureTopics(["herald.sms"], { partitions: 1, ...TOPIC });
    const producer = client.producer();
    const records = Array.from({ length: 5 }, (_, i) => ({ topic: "herald.sms", key: "k", value: Uint8Array.of(i), headers: {} }));
    await producer.sendBatch(records);

    const first: number[] = [];
    const c1 = client.consumer({ groupId: "commits", topics: ["herald.sms"], fromBeginning: true });
    await c1.run(async (m) => {
      if (m.value[0] === 3) throw new Error("handler failed"); // stop before record 3
      first.push(m.value[0]!);
    });
    await waitFor("the records before the failing one", () => first.length === 3);
    await c1.close();

    const second: number[] = [];
    const c2 = client.consumer({ groupId: "commits", topics: ["herald.sms"], fromBeginning: true });
    await c2.run(async (m) => {
      second.push(m.value[0]!);
    });
    await waitFor("the rest", () => second.length >= 2);
    expect(first).toEqual([0, 1, 2]);
    expect(second).toEqual([3, 4]);
    await c2.close();
  });

  it("does not classify an unknown topic as Kafka being unavailable", async () => {
    const client = kafka();
    const err = await client
      .producer()
      .sendBatch([{ topic: "herald.nope", key: "k", value: Uint8Array.of(1), headers: {} }])
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err).not.toBeInstanceOf(UnavailableError);
  });
});

describe("when Kafka is unreachable", () => {
  // Nothing listens on port 1.
  const unreachable = ["127.0.0.1:1"];

  it("sendBatch gives up with UnavailableError and the cause (a retry forever would time the test out)", async () => {
    const producer = kafka({ brokers: unreachable }).producer();
    const err = await producer.sendBatch([{ topic: "herald.email", key: "k", value: Uint8Array.of(1), headers: {} }]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnavailableError);
    expect((err as Error).cause).toBeDefined();
  });

  it("ping throws UnavailableError within its timeout, and honours an abort", async () => {
    const client = kafka({ brokers: unreachable });
    await expect(client.ping()).rejects.toBeInstanceOf(UnavailableError);
    const ac = new AbortController();
    const pinging = client.ping(ac.signal).catch((e: unknown) => e);
    ac.abort();
    const err = await pinging;
    expect(err).toBeInstanceOf(UnavailableError);
    // It was the abort that ended it, not the ping's own timeout.
    expect((err as Error).cause).toBe(ac.signal.reason);
  });
});

describe("ping and close", () => {
  it("ping resolves against a live broker; close is idempotent", async () => {
    const client = kafka();
    await client.ping();
    await client.ping(AbortSignal.timeout(2000));
    await Promise.all([client.close(), client.close()]);
    await client.close();
  });
});
