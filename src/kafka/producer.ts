import { Partitioners, type Kafka, type Message, type Producer } from "kafkajs";

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
}

// After these the broker has forgotten or rejected this producer id's sequence state, and
// kafkajs keeps retrying with the same id forever (it never re-initialises an idempotent
// producer). The only way out is a new producer id, i.e. a new kafkajs producer.
const FENCED = new Set(["OUT_OF_ORDER_SEQUENCE_NUMBER", "UNKNOWN_PRODUCER_ID", "INVALID_PRODUCER_EPOCH"]);

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

  const make = () =>
    client.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      // Same murmur2 hashing as the Java client; naming it also silences kafkajs' v2 warning.
      createPartitioner: Partitioners.DefaultPartitioner,
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
    const byTopic = new Map<string, Message[]>();
    for (const r of records) {
      const topic = settings.topicPrefix + r.topic;
      let messages = byTopic.get(topic);
      if (!messages) byTopic.set(topic, (messages = []));
      messages.push({ key: r.key, value: toBuffer(r.value), headers: { ...r.headers } });
    }
    const producer = await ready();
    try {
      await producer.sendBatch({
        acks: -1,
        timeout: settings.ackTimeoutMs,
        topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })),
      });
    } catch (err) {
      if (isFenced(err) && current === producer) {
        current = undefined;
        await producer.disconnect().catch(() => {});
      }
      throw err;
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

function toBuffer(value: Uint8Array): Buffer {
  return Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
}

function isFenced(err: unknown): boolean {
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    if (FENCED.has((e as { type?: string }).type ?? "")) return true;
  }
  return false;
}
