import { setMaxListeners } from "node:events";
import type pg from "pg";
import type { Redis } from "ioredis";
import type { Config } from "../config.js";
import type { Logger } from "../log.js";
import { createHealthChecks, type DependencyCheck, type HealthChecks } from "../health/checks.js";
import { createPool, ensureDatabase } from "../store/db.js";
import { migrate } from "../store/migrate.js";
import { createKafka, type Kafka } from "../kafka/kafka.js";
import { allTopics, STATUS_TOPIC } from "../kafka/topics.js";
import { createRedis } from "../redis.js";
import { createMetricsRegistry, type Registry } from "../metrics/registry.js";
import { createDependencyWait, type WaitForDependency } from "./dependency-wait.js";
import { createShutdown, type Shutdown } from "./shutdown.js";
import { shutdownTracing } from "../tracing/shutdown.js";

/** The real collaborators of a process, built once at the entry point and passed to each role. */
export interface Runtime {
  config: Config;
  log: Logger;
  pool: pg.Pool;
  kafka: Kafka;
  redis: Redis;
  /** The process's Prometheus registry: every role records into it, /metrics serves it. */
  metrics: Registry;
  /** The process's readiness: /readyz and grpc.health.v1 answer from it. */
  health: HealthChecks;
  /** Tries a step that needs a dependency until it answers (see dependency-wait.ts); ends at shutdown. */
  waitFor: WaitForDependency;
  /** Closers run in reverse dependency order: roles register before resources close. */
  shutdown: Shutdown;
  /** Aborted when shutdown begins; reaches handlers, streams and startup waits. */
  shutdownSignal: AbortSignal;
  /** Starts shutdown (SIGTERM, SIGINT, or a fatal error). */
  beginShutdown(): Promise<void>;
}

/** What the process's roles use besides PostgreSQL, which every role needs. */
export interface RuntimeNeeds {
  /** The relay, the workers and the API's status feed; not the scheduler. */
  kafka: boolean;
  /** The workers' rate limiters; optional (they fall back without it), so never waited for. */
  redis: boolean;
}

const everything: RuntimeNeeds = { kafka: true, redis: true };

/**
 * Builds the clients of PostgreSQL, Kafka and Redis and the health checks; connects to nothing
 * yet, so the caller can serve /healthz before any dependency answers. Roles register their own
 * closers on `shutdown`; the resources built here close after them.
 */
export function createRuntime(config: Config, log: Logger, needs: RuntimeNeeds = everything): Runtime {
  const { poolMax, ...timeouts } = config.db;
  const pool = createPool({ url: config.databaseUrl, max: poolMax, ...timeouts });
  const kafka = createKafka({
    brokers: config.kafka.brokers,
    clientId: config.kafka.clientId,
    topicPrefix: config.kafka.topicPrefix,
    log,
  });
  const redis = createRedis(config.redisUrl, log);
  // Redis is not on the accept path; a Redis outage at start must not stop the API.
  if (needs.redis) redis.connect().catch(() => {});

  const checks: DependencyCheck[] = [{ name: "postgres", check: async () => void (await pool.query("SELECT 1")) }];
  if (needs.kafka) checks.push({ name: "kafka", check: (signal) => kafka.ping(signal) });
  // Reported, but an outage does not make the process unready: the rate limiters fall back.
  if (needs.redis) checks.push({ name: "redis", optional: true, check: async () => void (await redis.ping()) });
  const health = createHealthChecks({ checks, log });

  const roles = createShutdown(log);
  const abort = new AbortController();
  // Every call in flight links its own signal to this one (and unlinks when it
  // ends); thousands at once is normal load, not a leak.
  setMaxListeners(0, abort.signal);
  const resources = createShutdown(log);
  // First: the roles have ended their spans; the batch still queued goes out before the exit.
  resources.add("tracing", () => shutdownTracing());
  resources.add("kafka", () => kafka.close());
  resources.add("redis", () => void redis.disconnect());
  resources.add("postgres", () => pool.end());
  resources.add("health-checks", () => health.close());

  const shutdown: Shutdown = {
    add: (name, close) => roles.add(name, close),
    run: async () => {
      abort.abort();
      // First, so load balancers drain this instance while its roles still serve.
      health.setShuttingDown();
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
    metrics: createMetricsRegistry(),
    health,
    waitFor: createDependencyWait({ log, signal: abort.signal }),
    shutdown,
    shutdownSignal: abort.signal,
    beginShutdown: () => shutdown.run(),
  };
}

/**
 * Waits for PostgreSQL (creating the database, running migrations) and, when needed, Kafka
 * (creating the topics), both at once so each missing one is logged from the start; then starts
 * the health checks. Rejects with StartAborted if shutdown begins first.
 */
export async function prepareRuntime(rt: Runtime, needs: RuntimeNeeds = everything): Promise<void> {
  const { config, log, pool, kafka } = rt;
  const database = rt.waitFor("database", async () => {
    await ensureDatabase(config.databaseUrl);
    const applied = await migrate(pool);
    if (applied.length) log.info({ applied }, "migrations applied");
  });
  const topics = needs.kafka
    ? rt.waitFor("kafka", async () => {
        const { partitions, retentionMs, replication, minInsyncReplicas } = config.kafka;
        const durability = { retentionMs, replication, minInsyncReplicas };
        await kafka.ensureTopics(allTopics().filter((t) => t !== STATUS_TOPIC), { partitions, ...durability });
        // One partition: the status feed is read whole, in position order, by every API instance
        // (an older topic with more partitions still works: out-of-order records are filled from
        // PostgreSQL, at the cost of a query per gap).
        await kafka.ensureTopics([STATUS_TOPIC], { partitions: 1, ...durability });
      })
    : undefined;
  await Promise.all([database, topics]);
  await rt.health.start();
}

/** createRuntime, then prepareRuntime: for a caller that starts its roles at once (tests). */
export async function openRuntime(config: Config, log: Logger, needs: RuntimeNeeds = everything): Promise<Runtime> {
  const rt = createRuntime(config, log, needs);
  await prepareRuntime(rt, needs);
  return rt;
}
