import { Kafka as KafkaJS, logLevel, type Admin, type logCreator } from "kafkajs";
import { UnavailableError } from "../errors.js";
import type { Logger } from "../log.js";
import { describeTopics, ensureTopics, type TopicSettings } from "./admin.js";
import { createConsumer, type ConsumerOptions, type KafkaConsumer } from "./consumer.js";
import { createProducer, type KafkaProducer } from "./producer.js";

// The one door to Kafka. Only this folder imports kafkajs (unmaintained since 2023), so the
// client library can be swapped without touching callers. Errors meaning "Kafka is not
// reachable" are classified here, once, as UnavailableError("kafka").

export type { TopicSettings } from "./admin.js";
export type { ConsumedMessage, ConsumerOptions, KafkaConsumer, MessageHandler, PartitionOffset, TopicPartition } from "./consumer.js";
export type { KafkaProducer, KafkaRecord } from "./producer.js";

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
  /** Partition count per existing topic, by logical name. */
  describeTopics(logicalNames: readonly string[]): Promise<Map<string, number>>;
  producer(): KafkaProducer;
  consumer(opts: ConsumerOptions): KafkaConsumer;
  /** Cheap liveness check (cluster metadata); throws UnavailableError("kafka") when Kafka does not answer. */
  ping(signal?: AbortSignal): Promise<void>;
  /** Disconnects everything this client created. Idempotent. */
  close(): Promise<void>;
}

export function createKafka(opts: KafkaOptions): Kafka {
  const { topicPrefix, log, requestTimeoutMs = 10_000, pingTimeoutMs = 2000 } = opts;
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
    producer() {
      const p = createProducer(client, { topicPrefix, ackTimeoutMs: requestTimeoutMs });
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

/** Runs `fn`, rethrowing "cannot reach Kafka" failures as UnavailableError("kafka") and others as they are. */
async function classified<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof UnavailableError || !isUnavailable(err)) throw err;
    throw new UnavailableError("kafka", `kafka unavailable: ${(err as Error).message}`, { cause: err });
  }
}

const UNAVAILABLE_ERRORS = new Set([
  "KafkaJSConnectionError",
  "KafkaJSConnectionClosedError",
  "KafkaJSRequestTimeoutError",
  "KafkaJSBrokerNotFound",
  "KafkaJSNoBrokerAvailableError",
  "KafkaJSTimeout",
  "KafkaJSLockTimeout",
]);
const UNAVAILABLE_CODES = new Set([
  "BROKER_NOT_AVAILABLE",
  "LEADER_NOT_AVAILABLE",
  "NOT_LEADER_FOR_PARTITION",
  "REQUEST_TIMED_OUT",
  "NETWORK_EXCEPTION",
  "NOT_ENOUGH_REPLICAS",
  "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
  "GROUP_COORDINATOR_NOT_AVAILABLE",
  "NOT_COORDINATOR_FOR_GROUP",
  "KAFKA_STORAGE_ERROR",
]);

// kafkajs wraps the error that decided it in KafkaJSNumberOfRetriesExceeded (`cause`) and
// per-partition failures in KafkaJSAggregateError (`errors`): look through both.
function isUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const { name, type, errors } = err as Error & { type?: string; errors?: unknown[] };
  if (UNAVAILABLE_ERRORS.has(name) || UNAVAILABLE_CODES.has(type ?? "")) return true;
  if (Array.isArray(errors) && errors.length > 0) return errors.every(isUnavailable);
  return isUnavailable(err.cause);
}

// Gives up on `work` after `ms` or when `signal` aborts, whichever comes first.
async function bounded<T>(work: Promise<T>, ms: number, signal?: AbortSignal): Promise<T> {
  work.catch(() => {}); // it may still settle after we gave up on it
  const deadline = signal ? AbortSignal.any([signal, AbortSignal.timeout(ms)]) : AbortSignal.timeout(ms);
  let onAbort = () => {};
  const gaveUp = new Promise<never>((_, reject) => {
    onAbort = () => reject(new UnavailableError("kafka", `kafka did not answer within ${ms} ms`, { cause: deadline.reason }));
    if (deadline.aborted) onAbort();
    else deadline.addEventListener("abort", onAbort, { once: true });
  });
  try {
    return await Promise.race([work, gaveUp]);
  } finally {
    deadline.removeEventListener("abort", onAbort);
  }
}

/**
 * kafkajs log entries to pino. While a broker is down kafkajs repeats the same error on every
 * reconnect attempt (numbers aside); those repeats are dropped for a minute and counted, since
 * the caller reports the outage once as a classified error anyway.
 */
function pinoLogCreator(log: Logger, quietMs = 60_000): logCreator {
  const seen = new Map<string, { at: number; dropped: number }>();
  return () =>
    ({ namespace, level, log: entry }) => {
      const { message, timestamp: _t, logger: _l, error, stack: _s, ...extra } = entry as typeof entry & { error?: unknown };
      if (error instanceof Error) extra.err = error; // pino serializes `err` (message, stack)
      else if (error !== undefined) extra.error = error;
      let method: "error" | "warn" | "info" | "debug" =
        level === logLevel.ERROR ? "error" : level === logLevel.WARN ? "warn" : level === logLevel.INFO ? "info" : "debug";
      // Connection reports every failed request and socket error, each of which also reaches
      // the caller as a (classified) rejection; at warn it would say everything twice.
      if (namespace === "Connection") method = "debug";
      // Deliberate (see producer.ts: bounded retries, callers resend), so not worth a warning.
      if (message.startsWith("Limiting retries for the idempotent producer")) method = "debug";
      let dropped = 0;
      if (method === "error" || method === "warn") {
        const key = `${namespace}:${message.replace(/\d+/g, "#")}`;
        const now = Date.now();
        const last = seen.get(key);
        if (last && now - last.at < quietMs) {
          last.dropped++;
          return;
        }
        dropped = last?.dropped ?? 0;
        if (seen.size > 500) seen.clear();
        seen.set(key, { at: now, dropped: 0 });
      }
      log[method]({ namespace, ...extra, ...(dropped > 0 ? { repeatsDropped: dropped } : {}) }, message);
    };
}
