import type { Redis } from "ioredis";
import { quotaOf, type QuotaConfig } from "../../config-quotas.js";
import { systemClock, type Clock } from "../../clock.js";
import { QuotaExceededError } from "../../errors.js";
import type { Logger } from "../../log.js";
import { createOutageLog } from "../../loop/outage.js";
import { redisWithin } from "../../redis.js";
import { memoryBuckets, redisBuckets, type TakeTokens } from "./buckets.js";

// Per-tenant accept quotas, charged per notification before a call does any work: Create and
// Schedule cost 1, a Notify 1 per channel it may fan out to (its plan is only known after the
// recipient is read, and a refusal must cost nothing), a CreateBatch the sum of its items, taken
// whole or refused whole (half a batch accepted would leave the caller to work out which half).
//
// Every API instance charges the same bucket in Redis. While Redis fails or does not answer
// within redisTimeoutMs, each instance keeps its own buckets in memory with the same quotas (so
// P instances admit up to P times the quota during an outage: an outage of Redis must neither
// stop the accept path nor block it), logs the outage once each way, and tries Redis again every
// probeIntervalMs. A call never waits on Redis for longer than redisTimeoutMs.

export interface TenantQuotas {
  /** Takes `cost` tokens of `tenant`'s bucket or throws QuotaExceededError (counted in `rejected`). */
  charge(tenant: string, cost: number): Promise<void>;
}

export interface TenantQuotasOptions {
  config: QuotaConfig;
  redis: Pick<Redis, "eval">;
  /** Prefixed to each tenant's key: the deployment's topic prefix, so deployments sharing a Redis keep separate buckets. */
  keyPrefix: string;
  log: Logger;
  /** herald_quota_rejected_total{tenant}; children cached by the caller. */
  rejected?: (tenant: string) => { inc(): void };
  /** The fallback buckets' clock (Redis uses its own). @defaultValue Date */
  clock?: Clock;
  /** @defaultValue 200 */
  redisTimeoutMs?: number;
  /** @defaultValue 1000 */
  probeIntervalMs?: number;
}

export function createTenantQuotas(opts: TenantQuotasOptions): TenantQuotas {
  const { config, log, clock = systemClock, redisTimeoutMs = 200, probeIntervalMs = 1000 } = opts;
  const shared = redisBuckets(opts.redis);
  const local = memoryBuckets(clock);
  const outage = createOutageLog(log.child({ component: "tenant-quotas" }), {
    down: "tenant quotas cannot reach redis; each instance counts its own",
    up: "tenant quotas reached redis again; buckets shared",
  }, clock);
  let retryAt = 0;

  const take: TakeTokens = async (key, quota, cost) => {
    // While Redis is down one call a probe interval tries it (the rest go to memory at once).
    if (outage.failures === 0 || clock.now() >= retryAt) {
      try {
        const wait = await redisWithin(shared(key, quota, cost), redisTimeoutMs);
        outage.succeeded();
        return wait;
      } catch (err) {
        outage.failed(err);
        retryAt = clock.now() + probeIntervalMs;
      }
    }
    return local(key, quota, cost);
  };

  return {
    async charge(tenant, cost) {
      const quota = quotaOf(config, tenant);
      if (!quota || cost <= 0) return;
      if (cost > quota.burst) {
        opts.rejected?.(tenant).inc();
        throw new QuotaExceededError(
          `tenant quota exceeded: this call holds ${cost} notifications, more than the tenant's burst of ${quota.burst}; split it into calls of at most ${quota.burst}`,
          undefined,
        );
      }
      const wait = await take(`${opts.keyPrefix}herald:quota:${tenant}`, quota, cost);
      if (wait === 0) return;
      opts.rejected?.(tenant).inc();
      throw new QuotaExceededError(`tenant quota exceeded (${quota.perSecond}/s, burst ${quota.burst}), retry after ${wait} ms`, wait);
    },
  };
}
