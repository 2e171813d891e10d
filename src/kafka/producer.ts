import { Partitioners, type Kafka, type Message, type Producer } from "kafkajs";
import { UnavailableError } from "../errors.js";
import type { Logger } from "../log.js";

/** One record to publish. `topic` is the logical name (herald.email); the prefix is added here. */
export interface KafkaRecord {
  topic: string;
  key: string;
  value: Uint8Array;
  headers: Record<string, string>;
}

export interface KafkaProducer {
  /** Optional: sendBatch connects on first use. Call it to fail fast at start. */
  connect(): Promise<void>;
  /**
   * Publishes every record with acks=all and resolves once the broker has acknowledged all of them.
   * Calls are serialized: a second call waits for the first (see below).
   */
  sendBatch(records: readonly KafkaRecord[]): Promise<void>;
  /** Idempotent. */
  disconnect(): Promise<void>;
}

export interface ProducerSettings {
  topicPrefix: string;
  /** How long the broker may wait for in-sync replicas before answering a produce. */
  ackTimeoutMs: number;
  /** Hears of records sent again because kafkajs left them unsent (below). */
  log?: Pick<Logger, "warn">;
}

// After these the broker has forgotten or rejected this producer id's sequence state, and
// kafkajs keeps retrying with the same id forever (it never re-initialises an idempotent
// producer). The only way out is a new producer id, i.e. a new kafkajs producer.
const FENCED = new Set(["OUT_OF_ORDER_SEQUENCE_NUMBER", "UNKNOWN_PRODUCER_ID", "INVALID_PRODUCER_EPOCH"]);

// kafkajs 2.2.4 can resolve a send without having sent some of its records (tulios/kafkajs#1303,
// PR #1798, never released). Its retry keeps each broker's answer from the failed attempt and
// skips brokers that answered; when a partition's leader died and leadership moved to a broker
// that had already answered for other partitions, that partition's records are never sent, and
// the send resolves. So a send is checked here against the acknowledgements: every partition a
// record went to must have one. The records of a partition without one are sent again (the
// partition got nothing in the call, so its order holds), a few rounds at most.
const UNACKED_ROUNDS = 3;

/**
 * An idempotent producer, acks=all, one request in flight, Java-compatible (murmur2) partitioning
 * so a recipient's records land on the same partition whichever client wrote them.
 */
export function createProducer(client: Kafka, settings: ProducerSettings): KafkaProducer {
  let current: Producer | undefined;
  let connecting: Promise<Producer> | undefined;
  let closed = false;
  // kafkajs' idempotent producer corrupts its sequence numbers when sends overlap
  // (tulios/kafkajs#1005), so sends are chained here whatever the caller does.
  let tail: Promise<unknown> = Promise.resolve();
  // The partition each record of the send in flight went to ("topic|partition"), as the
  // partitioner chose it. Sends are serialized, so one map serves them all.
  const placed = new Map<Message, string>();
  const placing = () => {
    const partition = Partitioners.DefaultPartitioner();
    return (args: Parameters<ReturnType<typeof Partitioners.DefaultPartitioner>>[0]) => {
      const chosen = partition(args);
      placed.set(args.message, `${args.topic}|${chosen}`);
      return chosen;
    };
  };

  const make = () =>
    client.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      // Same murmur2 hashing as the Java client; naming it also silences kafkajs' v2 warning.
      createPartitioner: placing,
      // Bounded, unlike kafkajs' idempotent default (retry forever): a send to a broker that is
      // down must fail, so the caller can back off, report and close. A resend after a failure
      // reuses the rolled-back sequence numbers, so the broker still drops exact duplicates.
      retry: { retries: 3, initialRetryTime: 100, maxRetryTime: 1000 },
    });

  function ready(): Promise<Producer> {
    if (closed) return Promise.reject(new Error("producer is disconnected"));
    if (current) return Promise.resolve(current);
    connecting ??= (async () => {
      const p = make();
      try {
        await p.connect();
        current = p;
        return p;
      } catch (err) {
        await p.disconnect().catch(() => {});
        throw err;
      } finally {
        connecting = undefined;
      }
    })();
    return connecting;
  }

  async function send(records: readonly KafkaRecord[]): Promise<void> {
    let pending: Pending[] = records.map((r) => ({ topic: settings.topicPrefix + r.topic, message: toMessage(r) }));
    for (let round = 1; ; round++) {
      const { unacked, partitions } = await sendOnce(pending);
      if (unacked.length === 0) return;
      if (round === UNACKED_ROUNDS) {
        throw new UnavailableError("kafka", `kafka acknowledged the send without ${unacked.length} of its records ${UNACKED_ROUNDS} times`);
      }
      settings.log?.warn({ records: unacked.length, partitions, round }, "kafka acknowledged a send without some of its partitions; sending their records again");
      pending = unacked;
    }
  }

  /** One kafkajs send; returns the records whose partition has no acknowledgement, and those partitions ("topic|partition"). */
  async function sendOnce(pending: Pending[]): Promise<{ unacked: Pending[]; partitions: string[] }> {
    const byTopic = new Map<string, Message[]>();
    for (const { topic, message } of pending) {
      let messages = byTopic.get(topic);
      if (!messages) byTopic.set(topic, (messages = []));
      messages.push(message);
    }
    const producer = await ready();
    try {
      const acked = await producer.sendBatch({
        acks: -1,
        timeout: settings.ackTimeoutMs,
        topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })),
      });
      const answered = new Set(acked.map((m) => `${m.topicName}|${m.partition}`));
      const unacked = pending.filter((p) => !answered.has(placed.get(p.message) ?? ""));
      return { unacked, partitions: [...new Set(unacked.map((p) => placed.get(p.message) ?? "?"))] };
    } catch (err) {
      if (isFenced(err) && current === producer) {
        current = undefined;
        await producer.disconnect().catch(() => {});
      }
      throw err;
    } finally {
      placed.clear();
    }
  }

  return {
    async connect() {
      await ready();
    },
    sendBatch(records) {
      if (records.length === 0) return Promise.resolve();
      const run = tail.then(() => send(records));
      tail = run.catch(() => {});
      return run;
    },
    async disconnect() {
      if (closed) return;
      closed = true;
      await tail;
      const p = current ?? (await connecting?.catch(() => undefined));
      current = undefined;
      await p?.disconnect();
    },
  };
}

/** A record as kafkajs takes it, with its prefixed topic. */
interface Pending {
  topic: string;
  message: Message;
}

function toMessage(r: KafkaRecord): Message {
  return { key: r.key, value: toBuffer(r.value), headers: { ...r.headers } };
}

function toBuffer(value: Uint8Array): Buffer {
  return Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
}

function isFenced(err: unknown): boolean {
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    if (FENCED.has((e as { type?: string }).type ?? "")) return true;
  }
  return false;
}
