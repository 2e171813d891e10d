import { Kafka as KafkaJS, logLevel, type Admin } from "kafkajs";
import type { Logger } from "../log.js";
import { describeTopics, ensureTopics, type TopicSettings, type TopicShape } from "./admin.js";
import { createConsumer, type ConsumerOptions, type KafkaConsumer } from "./consumer.js";
import { createProducer, type KafkaProducer } from "./producer.js";
import { bounded, classified } from "./errors.js";
import { readLag, type GroupTopic, type PartitionLag } from "./lag.js";
import { pinoLogCreator } from "./log-bridge.js";
import { fixIdleRequestQueueLoop } from "./request-queue-fix.js";

// The one door to Kafka. Only this folder imports kafkajs (unmaintained since 2023), so the
// client library can be swapped without touching callers. Every call goes through `classified`
// (errors.ts), so "Kafka is not reachable" reaches callers as UnavailableError("kafka").

export type { TopicSettings } from "./admin.js";
export type { ConsumedMessage, ConsumerOptions, KafkaConsumer, MessageHandler, PartitionOffset, TopicPartition } from "./consumer.js";
export type { KafkaProducer, KafkaRecord } from "./producer.js";
export type { GroupTopic, PartitionLag } from "./lag.js";

export interface KafkaOptions {
  brokers: string[];
  clientId: string;
  /** Prefixed to every topic and group name. */
  topicPrefix: string;
  log: Logger;
  /** TCP connect timeout per broker. @defaultValue 3000 */
  connectionTimeoutMs?: number;
  /** Per request, and how long a produce may wait for in-sync replicas. @defaultValue 10000 */
  requestTimeoutMs?: number;
  /** A ping not answered by then fails. @defaultValue 2000 */
  pingTimeoutMs?: number;
}

export interface Kafka {
  /** Creates missing topics (logical names, prefixed here) and waits for their leaders; returns the logical names created. */
  ensureTopics(logicalNames: readonly string[], settings: TopicSettings): Promise<string[]>;
  /** Partition and replica counts per existing topic, by logical name. */
  describeTopics(logicalNames: readonly string[]): Promise<Map<string, TopicShape>>;
  /** Consumer lag per partition of each group's topic (logical names in and out); see lag.ts. */
  consumerLag(pairs: readonly GroupTopic[]): Promise<PartitionLag[]>;
  producer(): KafkaProducer;
  consumer(opts: ConsumerOptions): KafkaConsumer;
  /** Cheap liveness check (cluster metadata); throws UnavailableError("kafka") when Kafka does not answer. */
  ping(signal?: AbortSignal): Promise<void>;
  /** Disconnects everything this client created. Idempotent. */
  close(): Promise<void>;
}

export function createKafka(opts: KafkaOptions): Kafka {
  const { topicPrefix, log, requestTimeoutMs = 10_000, pingTimeoutMs = 2000 } = opts;
  // Before any connection exists: otherwise every idle connection wakes the process every 1 ms.
  fixIdleRequestQueueLoop();
  const client = new KafkaJS({
    brokers: opts.brokers,
    clientId: opts.clientId,
    connectionTimeout: opts.connectionTimeoutMs ?? 3000,
    requestTimeout: requestTimeoutMs,
    // Short and bounded: callers own the long-term retry policy (the relay backs off, workers restart).
    retry: { retries: 3, initialRetryTime: 100, maxRetryTime: 1000 },
    logLevel: logLevel.WARN,
    logCreator: pinoLogCreator(log.child({ component: "kafkajs" })),
  });
  // What close() must disconnect; each entry leaves the set when closed on its own.
  const open = new Set<() => Promise<void>>();
  const track = (disconnect: () => Promise<void>) => {
    const close = () => {
      open.delete(close);
      return disconnect();
    };
    open.add(close);
    return close;
  };
  const adminClient = client.admin();
  track(() => adminClient.disconnect());
  let adminReady: Promise<Admin> | undefined;
  let closed: Promise<void> | undefined;

  const admin = () => {
    adminReady ??= adminClient.connect().then(
      () => adminClient,
      (err: unknown) => {
        adminReady = undefined; // connect again next time
        throw err;
      },
    );
    return adminReady;
  };
  const full = (names: readonly string[]) => names.map((n) => topicPrefix + n);

  return {
    ensureTopics: (names, settings) =>
      classified(async () => {
        const created = await ensureTopics(await admin(), full(names), settings, log);
        return created.map((n) => n.slice(topicPrefix.length));
      }),
    describeTopics: (names) =>
      classified(async () => {
        const found = await describeTopics(await admin(), full(names));
        return new Map([...found].map(([n, p]) => [n.slice(topicPrefix.length), p]));
      }),
    consumerLag: (pairs) =>
      classified(async () => {
        const full = pairs.map((p) => ({ group: topicPrefix + p.group, topic: topicPrefix + p.topic }));
        const rows = await readLag(await admin(), full);
        return rows.map((r) => ({ ...r, group: r.group.slice(topicPrefix.length), topic: r.topic.slice(topicPrefix.length) }));
      }),
    producer() {
      const p = createProducer(client, { topicPrefix, ackTimeoutMs: requestTimeoutMs, log });
      return {
        connect: () => classified(() => p.connect()),
        sendBatch: (records) => classified(() => p.sendBatch(records)),
        disconnect: track(() => p.disconnect()),
      };
    },
    consumer(consumerOpts) {
      const c = createConsumer(client, topicPrefix, consumerOpts, log);
      return {
        run: (handle) => classified(() => c.run(handle)),
        commit: (offsets) => classified(() => c.commit(offsets)),
        close: track(() => c.close()),
      };
    },
    ping: (signal) =>
      classified(() => bounded(admin().then((a) => a.describeCluster()), pingTimeoutMs, signal)).then(() => {}),
    close() {
      closed ??= Promise.allSettled([...open].map((close) => close())).then(() => {});
      return closed;
    },
  };
}
