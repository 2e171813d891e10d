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
