import type { Redis } from "ioredis";
import type { Quota } from "../../config-quotas.js";

// Token buckets as GCRA (the generic cell rate algorithm): one number per tenant, the "theoretical
// arrival time" (TAT) at which its bucket would be full again. Taking `cost` tokens moves it
// `cost` emission intervals (1000 / rate ms each) later; the take is allowed while the new TAT is
// no more than `burst` intervals ahead of now. Equivalent to a bucket of `burst` tokens refilled
// at `rate`, with no refill timer and one key per tenant.
//
// Why not rate-limiter-flexible (in npm.tsv; src/workers/rate-slots.ts says why the delivery
// limiter stopped using it): its limiters count fixed windows, not a refilling bucket, and its
// consume counts a refused take's points too, so a tenant that keeps calling over its quota would
// keep pushing its own window's count up. Here a refused take spends nothing: a CreateBatch of
// 1,000 refused whole leaves the tokens it could not have for the smaller calls that fit.

/**
 * Takes `cost` tokens of `key`'s bucket, or none: 0 when taken, else the ms until `cost` tokens
 * will be there (the retry hint). `cost` must be at most the burst (it could never be taken).
 */
export type TakeTokens = (key: string, quota: Quota, cost: number) => Promise<number>;

/** Milliseconds a token takes to refill. */
const intervalOf = (quota: Quota) => 1000 / quota.perSecond;

/** The decision on a TAT, shared by both stores: the new TAT to keep, or the wait. */
export function decide(tat: number, now: number, quota: Quota, cost: number): { wait: 0; tat: number } | { wait: number } {
  const interval = intervalOf(quota);
  const next = Math.max(tat, now) + cost * interval;
  const wait = next - quota.burst * interval - now;
  // Rounded up and at least 1 ms, so a client that waits the hint finds the tokens there.
  return wait > 1e-9 ? { wait: Math.max(1, Math.ceil(wait)) } : { wait: 0, tat: next };
}

// The same decision in Redis, on Redis's clock (TIME), so API instances with skewed clocks share
// one bucket exactly; the key expires once the bucket would be full again (nothing left to keep).
const TAKE_SCRIPT = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local interval = tonumber(ARGV[1])
local cost = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local nxt = tat + cost * interval
local wait = nxt - tonumber(ARGV[2]) * interval - now
if wait > 1e-9 then return math.max(1, math.ceil(wait)) end
if cost > 0 then redis.call('SET', KEYS[1], string.format('%.3f', nxt), 'PX', math.max(1, math.ceil(nxt - now))) end
return 0`;

/** Buckets in Redis, shared by every API instance using the same keys. */
export function redisBuckets(redis: Pick<Redis, "eval">): TakeTokens {
  return async (key, quota, cost) => Number(await redis.eval(TAKE_SCRIPT, 1, key, intervalOf(quota), quota.burst, cost));
}

/** Buckets in this process's memory: the fallback while Redis is unreachable. One entry per tenant seen. */
export function memoryBuckets(clock: { now(): number }): TakeTokens {
  const tats = new Map<string, number>();
  return async (key, quota, cost) => {
    const now = clock.now();
    const verdict = decide(tats.get(key) ?? 0, now, quota, cost);
    if (verdict.wait === 0 && "tat" in verdict) tats.set(key, verdict.tat);
    return verdict.wait;
  };
}
