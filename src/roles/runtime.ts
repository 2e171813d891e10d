import { setMaxListeners } from "node:events";
import type pg from "pg";
import type { Redis } from "ioredis";
import type { Config } from "../config.js";
import type { Logger } from "../log.js";
import { createPool, ensureDatabase } from "../store/db.js";
import { migrate } from "../store/migrate.js";
import { createKafka, type Kafka } from "../kafka/kafka.js";
import { allTopics, STATUS_TOPIC } from "../kafka/topics.js";
import { createRedis } from "../redis.js";
import { createShutdown, type Shutdown } from "./shutdown.js";

/** The real collaborators of a process, built once at the entry point and passed to each role. */
export interface Runtime {
  config: Config;
  log: Logger;
  pool: pg.Pool;
  kafka: Kafka;
  redis: Redis;
  /** Closers run in reverse dependency order: roles register before resources close. */
  shutdown: Shutdown;
  /** Aborted when shutdown begins; reaches handlers and streams. */
  shutdownSignal: AbortSignal;
  /** Starts shutdown (SIGTERM, SIGINT, or a fatal error). */
  beginShutdown(): Promise<void>;
}

/**
 * Connects to PostgreSQL (creating the database and running migrations),
 * Kafka (creating the topics) and Redis. Roles register their own closers on
 * `shutdown`; the resources opened here close after them.
 */
export async function openRuntime(config: Config, log: Logger): Promise<Runtime> {
  await ensureDatabase(config.databaseUrl);
  const { poolMax, ...timeouts } = config.db;
  const pool = createPool({ url: config.databaseUrl, max: poolMax, ...timeouts });
  const applied = await migrate(pool);
  if (applied.length) log.info({ applied }, "migrations applied");

  const kafka = createKafka({
    brokers: config.kafka.brokers,
    clientId: config.kafka.clientId,
    topicPrefix: config.kafka.topicPrefix,
    log,
  });
  const { partitions, retentionMs } = config.kafka;
  await kafka.ensureTopics(allTopics().filter((t) => t !== STATUS_TOPIC), { partitions, retentionMs });
  // One partition: the status feed is read whole, in position order, by every API instance
  // (an older topic with more partitions still works: out-of-order records are filled from
  // PostgreSQL, at the cost of a query per gap).
  await kafka.ensureTopics([STATUS_TOPIC], { partitions: 1, retentionMs });

  const redis = createRedis(config.redisUrl, log);
  // Redis is not on the accept path; a Redis outage at start must not stop the API.
  redis.connect().catch(() => {});

  const roles = createShutdown(log);
  const abort = new AbortController();
  // Every call in flight links its own signal to this one (and unlinks when it
  // ends); thousands at once is normal load, not a leak.
  setMaxListeners(0, abort.signal);
  const resources = createShutdown(log);
  resources.add("kafka", () => kafka.close());
  resources.add("redis", () => void redis.disconnect());
  resources.add("postgres", () => pool.end());

  const shutdown: Shutdown = {
    add: (name, close) => roles.add(name, close),
    run: async () => {
      abort.abort();
      await roles.run();
      await resources.run();
    },
  };
  return {
    config,
    log,
    pool,
    kafka,
    redis,
    shutdown,
    shutdownSignal: abort.signal,
    beginShutdown: () => shutdown.run(),
  };
}
