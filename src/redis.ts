import { Redis } from "ioredis";
import type { Logger } from "./log.js";

/**
 * The shared Redis client (rate limiters, dedupe fast path, caches). Commands
 * fail fast while Redis is down instead of queueing without bound: callers
 * decide their own fallback.
 */
export function createRedis(url: string, log: Logger): Redis {
  const redis = new Redis(url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 2000,
    retryStrategy: (times) => Math.min(times * 200, 2000),
  });
  let healthy = true;
  redis.on("error", (err: Error) => {
    // ioredis emits an error per reconnect attempt; log the transition only.
    if (healthy) log.warn({ err }, "redis unreachable");
    healthy = false;
  });
  redis.on("ready", () => {
    if (!healthy) log.info("redis reachable again");
    healthy = true;
  });
  return redis;
}

/**
 * Gives up on a Redis command after `ms`: a Redis that accepts the connection but does not answer
 * (a partition) must not hold a send or an overview for ioredis's own timeouts. The command may
 * still complete after; callers fall back as if it had failed.
 */
export function redisWithin<T>(command: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`redis did not answer within ${ms} ms`)), ms);
  });
  command.catch(() => {}); // it may still settle after we gave up on it
  return Promise.race([command, timeout]).finally(() => clearTimeout(timer));
}
