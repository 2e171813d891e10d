import type { Redis } from "ioredis";
import type { Logger } from "../log.js";
import { redisWithin } from "../redis.js";
import { systemClock, type Clock } from "../clock.js";
import { createOutageLog } from "../loop/outage.js";
import { createWakeup } from "../loop/sleep.js";
import { memorySlotCounter, redisSlotCounter, SLOT_MS, slotQuota } from "./rate-slots.js";
import { createWaiterQueue } from "./waiter-queue.js";

// Provider rate limits, shared by every worker process through Redis.
//
// Each second is cut into slots with their own quota (rate-slots.ts): any 1 s window grants
// at most N + ceil(N/10), where a plain 1 s window let 2N through at its edge.
//
// While Redis fails or does not answer within redisTimeoutMs, each process limits
// itself to fallbackPerSecond with the same slots kept in memory, so an outage neither stops
// delivery nor lifts the limit (P processes together send up to P × fallbackPerSecond);
// Redis is probed in the background and the shared limit resumes when it answers
// (in the slot where it does, this process may add its local quota to the shared one).
// The slot counters are a Lua check-and-increment of our own (rate-slots.ts), not
// rate-limiter-flexible's: its consume counts a refused take too, so with a reserved share every
// refused normal take would spend a point of the high-priority reserve.
//
// High priority (issue 15): with a share reserved (HERALD_RATE_LIMIT_HIGH_SHARE), normal and low
// priority may take at most (1 - share) of each slot's quota, high priority all of it, from the
// same counter; a process serves its high-priority waiters first. So under a saturating normal
// load high-priority sends still get at least their share, and when there are none normal ones
// lose nothing but the share. The normal limit is rounded down, at least 1 a second; at small
// limits it may grant a little less than (1 - share) · N, as its slots and the full limit's
// do not always line up.

/** Upper bound of the random delay after a slot opens, so processes do not all call Redis in the same millisecond. */
const MAX_JITTER_MS = SLOT_MS / 10;

export interface RateLimiter {
  /**
   * Resolves when one send may happen now; waits (never drops, never spins) while the limit is
   * reached. Rejects with signal.reason when `signal` aborts. `high`: a PRIORITY_HIGH send, served
   * before the others and allowed the reserved share. `share`: the tenant, when the limiter is
   * fair: the normal-priority waiters are then granted round robin between tenants.
   */
  take(signal: AbortSignal, opts?: { high?: boolean; share?: string }): Promise<void>;
}

export interface RateLimiterOptions {
  /** ioredis client; commands should fail fast while Redis is down (see src/redis.ts). */
  redis: Redis;
  /** Limiter identity shared across processes, e.g. "smtp" or "twilio:ACxxx"; part of the Redis key. */
  name: string;
  /** Sends per second across all processes; 0 means no limit (take resolves at once). */
  perSecond: number;
  /** Per-process limit while Redis is unreachable; rounded down, at least 1 (0 would stop delivery during an outage). */
  fallbackPerSecond: number;
  /** Grant the waiting normal-priority takes round robin by their `share` (fair share between tenants). @defaultValue false */
  fair?: boolean;
  /** Share of the limit only high-priority takes may use, in [0, 1). @defaultValue 0 */
  highShare?: number;
  /** @defaultValue "herald:rl:" */
  keyPrefix?: string;
  log: Logger;
  /** Wall clock that picks the slot. @defaultValue Date */
  clock?: Clock;
  /** A Redis call slower than this counts as Redis being unreachable. @defaultValue 500 */
  redisTimeoutMs?: number;
  /** While on the fallback limit, how often Redis is tried again. @defaultValue 1000 */
  probeIntervalMs?: number;
  /**
   * Hears each take that had to wait: the limit was reached (a slot's quota spent) at some point
   * between the take and its grant. `seconds` is the whole wait, from take to grant.
   */
  onWait?: (seconds: number) => void;
}

export function createRateLimiter(opts: RateLimiterOptions): RateLimiter {
  const { redis, name, perSecond, log, clock = systemClock, redisTimeoutMs = 500, probeIntervalMs = 1000, onWait } = opts;
  if (!name) throw new RangeError("rate limiter: name must not be empty");
  if (!Number.isInteger(perSecond) || perSecond < 0) throw new RangeError(`rate limiter ${name}: perSecond must be an integer >= 0, got ${perSecond}`);
  if (!(opts.fallbackPerSecond >= 0) || !Number.isFinite(opts.fallbackPerSecond)) {
    throw new RangeError(`rate limiter ${name}: fallbackPerSecond must be a finite number >= 0, got ${opts.fallbackPerSecond}`);
  }
  const { highShare = 0 } = opts;
  if (!(highShare >= 0 && highShare < 1)) throw new RangeError(`rate limiter ${name}: highShare must be in [0, 1), got ${highShare}`);
  if (perSecond === 0) {
    return { take: async (signal) => signal.throwIfAborted() };
  }
  const fallbackPerSecond = Math.max(1, Math.floor(opts.fallbackPerSecond));
  const keyPrefix = `${opts.keyPrefix ?? "herald:rl:"}${name}`;
  const shared = redisSlotCounter(redis, keyPrefix);
  const local = memorySlotCounter();
  // What normal and low priority may take of a limit: all of it without a reserve.
  const normalOf = (limit: number) => (highShare === 0 ? limit : Math.max(1, Math.floor(limit * (1 - highShare))));
  const normalPerSecond = normalOf(perSecond);
  const normalFallbackPerSecond = normalOf(fallbackPerSecond);
  /** The grants a take may count up to in `slot` under `limit` (whose normal share is `normal`). */
  const capOf = (limit: number, normal: number, slot: number, high: boolean) =>
    high || normal === limit ? slotQuota(limit, slot) : Math.min(slotQuota(limit, slot), slotQuota(normal, slot));

  // Consecutive failures to reach Redis, from the first until a probe gets through: the
  // fallback limit holds while there are any. Logged once each way.
  const outage = createOutageLog(log.child({ limiter: name, perSecond, fallbackPerSecond }), {
    down: "rate limiter cannot reach redis; limiting this process alone",
    up: "rate limiter reached redis again; shared limit restored",
  }, clock);
  const onFallback = () => outage.failures > 0;
  let probing = false;
  let nextProbeAt = 0;

  function fallBack(err: unknown): void {
    outage.failed(err);
    nextProbeAt = clock.now() + probeIntervalMs;
  }

  // In the background, so a Redis that hangs does not stall the local limit.
  // A point the probe takes goes unused: the shared limit is under-used by one.
  function probe(slot: number): void {
    const quota = slotQuota(perSecond, slot);
    if (probing || quota === 0 || clock.now() < nextProbeAt) return;
    probing = true;
    redisWithin(shared(slot, quota), redisTimeoutMs).then(
      () => {
        probing = false;
        outage.succeeded();
      },
      (err: unknown) => {
        probing = false;
        fallBack(err);
      },
    );
  }

  /** One point of `slot`, from Redis or (while it is unreachable) from this process's own counters. */
  async function consume(slot: number, high: boolean): Promise<boolean> {
    if (!onFallback()) {
      const cap = capOf(perSecond, normalPerSecond, slot, high);
      if (cap === 0) return false;
      try {
        return await redisWithin(shared(slot, cap), redisTimeoutMs);
      } catch (err) {
        fallBack(err);
      }
    }
    probe(slot);
    const cap = capOf(fallbackPerSecond, normalFallbackPerSecond, slot, high);
    return cap > 0 && local(slot, cap);
  }

  /** Start of the first slot after `slot` that may grant something to a take of this priority under the current limit. */
  function nextOpening(slot: number, high: boolean): number {
    const [limit, normal] = onFallback() ? [fallbackPerSecond, normalFallbackPerSecond] : [perSecond, normalPerSecond];
    let next = slot + 1;
    // At most k steps: the last slot of every second grants at least one under any limit >= 1.
    while (capOf(limit, normal, next, high) === 0) next++;
    return next * SLOT_MS;
  }

  // One loop per process serves the waiters in order and is the only caller of
  // Redis, so a blocked process makes one call per slot whatever its concurrency.
  // Grants are serial, one Redis round trip each: a process gets at most ~1/RTT
  // grants per second (1,500-8,500/s against the local Redis, by load), more processes add up.
  let pumping = false;
  // For onWait: how often the pump found the limit reached, and whether it is waiting for a slot now.
  let throttles = 0;
  let throttled = false;
  // What the pump waits for while throttled: a slot for normal priority, which a high-priority
  // take arriving meanwhile may not have to wait for (its cap is higher): it wakes the pump.
  let waitingForNormal = false;
  const wakeup = createWakeup();
  // Nobody left to serve in one of them: the pump's wait ends, and it stops if both are empty.
  const highQueue = createWaiterQueue(() => wakeup.wake());
  const normalQueue = createWaiterQueue(() => wakeup.wake());
  const waiters = () => highQueue.length + normalQueue.length;

  async function pump(): Promise<void> {
    while (waiters() > 0) {
      const slot = Math.floor(clock.now() / SLOT_MS);
      const high = highQueue.length > 0;
      if (await consume(slot, high)) {
        // A grant counted against a slot that ended during the round trip would
        // land in the next slot on top of that slot's own quota: let it lapse.
        if (Math.floor(clock.now() / SLOT_MS) !== slot) continue;
        // None left when every waiter gave up meanwhile: the point goes unused. A high-priority
        // waiter that arrived during a normal take's round trip comes next.
        (high ? highQueue : normalQueue).grant();
        continue;
      }
      throttles++;
      throttled = true;
      waitingForNormal = !high;
      await wakeup.sleep(Math.max(1, nextOpening(slot, high) - clock.now() + Math.random() * MAX_JITTER_MS));
      throttled = false;
      waitingForNormal = false;
    }
    pumping = false;
  }

  function take(signal: AbortSignal, takeOpts?: { high?: boolean; share?: string }): Promise<void> {
    const high = takeOpts?.high === true;
    const since = clock.now();
    const throttlesBefore = throttles;
    const throttledBefore = throttled;
    const taken = high ? highQueue.push(signal) : normalQueue.push(signal, opts.fair ? takeOpts?.share : undefined);
    if (high && waitingForNormal) wakeup.wake();
    if (!pumping && waiters() > 0) {
      pumping = true;
      pump().catch((err: unknown) => {
        // consume() turns store errors into the fallback; reaching here is a bug.
        // Fail the waiters rather than leave them hanging.
        pumping = false;
        log.error({ err, limiter: name }, "rate limiter failed");
        const failure = err instanceof Error ? err : new Error(String(err));
        highQueue.failAll(failure);
        normalQueue.failAll(failure);
      });
    }
    if (!onWait) return taken;
    return taken.then(() => {
      if (throttledBefore || throttles !== throttlesBefore) onWait((clock.now() - since) / 1000);
    });
  }

  return { take };
}
