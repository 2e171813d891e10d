import { createRequire } from "node:module";
import type { Kafka, Message, ProducerConfig } from "kafkajs";
import { describe, expect, it } from "vitest";
import { UnavailableError } from "../../src/errors.js";
import { createProducer } from "../../src/kafka/producer.js";

// kafkajs' own send path (sendMessages and its retrier, not a copy) over a two-broker cluster
// double: broker 2 leads the SMS topic and dies on the first produce, and its partition moves to
// broker 1, which has already answered for the status topic. kafkajs 2.2.4 then resolves without
// ever sending the SMS record (tulios/kafkajs#1303); Herald's producer must notice and send it.

const require = createRequire(import.meta.url);
type SendMessages = (args: { acks: number; timeout?: number; topicMessages: { topic: string; messages: Message[] }[] }) => Promise<unknown[]>;
const createSendMessages = require("kafkajs/src/producer/sendMessages.js") as (deps: object) => SendMessages;
const createRetry = require("kafkajs/src/retry/index.js") as (opts: object) => unknown;
const { KafkaJSConnectionError } = require("kafkajs/src/errors.js") as { KafkaJSConnectionError: new (msg: string) => Error };

const silent = { debug() {}, info() {}, warn() {}, error() {} };

interface Written {
  broker: number;
  topic: string;
  key: string;
}

/** Broker 2 leads `sms` until its first produce fails; then broker 1 leads every partition. */
function cluster() {
  const leaders = new Map([
    ["sms", 2],
    ["status", 1],
  ]);
  const written: Written[] = [];
  const broker = (nodeId: number) => ({
    nodeId,
    async produce({ topicData }: { topicData: { topic: string; partitions: { partition: number; messages: Message[] }[] }[] }) {
      if (nodeId === 2) {
        await new Promise((r) => setTimeout(r, 5)); // after broker 1 answered the same attempt
        leaders.set("sms", 1);
        throw new KafkaJSConnectionError("Connection error: connect ECONNREFUSED");
      }
      for (const { topic, partitions } of topicData) {
        for (const p of partitions) for (const m of p.messages) written.push({ broker: nodeId, topic, key: String(m.key) });
      }
      return {
        topics: topicData.map(({ topic, partitions }) => ({
          topicName: topic,
          partitions: partitions.map((p) => ({ partition: Number(p.partition), errorCode: 0, baseOffset: "0" })),
        })),
      };
    },
  });
  const brokers = new Map([1, 2].map((id) => [id, broker(id)]));
  const fakeCluster = {
    async refreshMetadataIfNecessary() {},
    async refreshMetadata() {},
    async addMultipleTargetTopics() {},
    isConnected: () => true,
    removeBroker() {},
    findTopicPartitionMetadata: (topic: string) => [{ partitionId: 0, leader: leaders.get(topic) }],
    findLeaderForPartitions: (topic: string, partitions: string[]) => ({ [leaders.get(topic)!]: partitions }),
    findBroker: async ({ nodeId }: { nodeId: string }) => brokers.get(Number(nodeId)),
  };
  const eosManager = {
    isTransactional: () => false,
    acquireBrokerLock: async () => {},
    releaseBrokerLock: async () => {},
    getSequence: () => 0,
    updateSequence() {},
    getProducerId: () => 1,
    getProducerEpoch: () => 0,
  };
  const sendWith = (partitioner: unknown) =>
    createSendMessages({ logger: silent, cluster: fakeCluster, partitioner, eosManager, retrier: createRetry({ retries: 3, initialRetryTime: 1, maxRetryTime: 5 }) });
  // A kafkajs client whose producer is kafkajs' send path over this cluster.
  const client = {
    producer(config: ProducerConfig) {
      const sendMessages = sendWith(config.createPartitioner!());
      return {
        connect: async () => {},
        disconnect: async () => {},
        sendBatch: (req: Parameters<SendMessages>[0]) => sendMessages(req),
      };
    },
  } as unknown as Kafka;
  return { client, written, sendWith };
}

const records = [
  { topic: "status", key: "n-1", value: new Uint8Array([1]), headers: {} },
  { topic: "sms", key: "acme/ada", value: new Uint8Array([2]), headers: {} },
];

describe("a send whose partition changed leader mid-send", () => {
  it("is lost by kafkajs 2.2.4 alone: it resolves without sending the SMS record", async () => {
    const { written, sendWith } = cluster();
    const send = sendWith(() => 0);
    await send({ acks: -1, topicMessages: records.map((r) => ({ topic: r.topic, messages: [{ key: r.key, value: Buffer.from(r.value) }] })) });
    expect(written).toEqual([{ broker: 1, topic: "status", key: "n-1" }]);
  });

  it("is completed by Herald's producer: the unacknowledged partition's records are sent again, the rest once", async () => {
    const { client, written } = cluster();
    const producer = createProducer(client, { topicPrefix: "", ackTimeoutMs: 1000 });
    await producer.sendBatch(records);
    expect(written).toEqual([
      { broker: 1, topic: "status", key: "n-1" },
      { broker: 1, topic: "sms", key: "acme/ada" },
    ]);
  });

  it("fails as Kafka being unavailable when the records stay unacknowledged", async () => {
    // A client that acknowledges nothing, every time.
    let sends = 0;
    const client = {
      producer: () => ({ connect: async () => {}, disconnect: async () => {}, sendBatch: async () => (sends++, []) }),
    } as unknown as Kafka;
    const producer = createProducer(client, { topicPrefix: "", ackTimeoutMs: 1000 });
    const err = await producer.sendBatch(records).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnavailableError);
    expect((err as Error).message).toMatch(/without 2 of its records 3 times/);
    expect(sends).toBe(3);
  });
});
