import type { Redis } from "ioredis";
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from "rate-limiter-flexible";
import type { Logger } from "../log.js";
import { systemClock, type Clock } from "../clock.js";
import { createOutageLog } from "../loop/outage.js";
import { createWakeup } from "../loop/sleep.js";

// Provider rate limits, shared by every worker process through Redis.
//
// Why slots instead of the library's plain "N points per 1-second window": that
// window opens at its first take, so N sends at the end of one window and N at
// the start of the next pass within a few milliseconds: 2N in one second as a
// provider counts it (measured: 40 in one second at N = 20 even under steady
// load, as the waiters' retries after each expiry spread over the next). Here each second of the wall clock is cut into
// SLOTS_PER_SECOND slots and slot i grants at most
//   quota(i) = floor((m+1)·N/k) − floor(m·N/k),  m = i mod k, k = SLOTS_PER_SECOND,
// so any k consecutive slots grant exactly N together, spread through the second.
// What a provider sees, counting grants by the time they were granted:
//   - any 1 s window starting on a slot boundary (every wall-clock-aligned second
//     among them): at most N;
//   - any 1 s window at all: at most N + ceil(N/k), since it overlaps k + 1 slots.
// Each slot is one RateLimiterRedis key, `${keyPrefix}${name}:${i}`, with points =
// quota(i) and a 1 s TTL that only collects the key. Processes pick the slot from
// their own clock: hosts must be NTP-synced; a host s ms ahead spends the next
// slots' quota early, up to about s·N/1000 + ceil(N/k) more in a window.
//
// While Redis fails or does not answer within redisTimeoutMs, each process limits
// itself to fallbackPerSecond with the same slots kept in memory
// (RateLimiterMemory), so an outage neither stops delivery nor lifts the limit
// (P processes together send up to P × fallbackPerSecond);
// Redis is probed in the background and the shared limit resumes when it answers
// (in the slot where it does, this process may add its local quota to the shared one).
// The library's own `insuranceLimiter` does the same switch per call, but hides
// which store answered, and the switch must be logged once each way.

/** Slots per second: the tolerance is ceil(N/k); each blocked process calls Redis at most k times a second. */
const SLOTS_PER_SECOND = 10;
const SLOT_MS = 1000 / SLOTS_PER_SECOND;
/** Upper bound of the random delay after a slot opens, so processes do not all call Redis in the same millisecond. */
const MAX_JITTER_MS = SLOT_MS / 10;

export interface RateLimiter {
  /** Resolves when one send may happen now; waits (never drops, never spins) while the limit is reached. Rejects with signal.reason when `signal` aborts. */
  take(signal: AbortSignal): Promise<void>;
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
  /** @defaultValue "herald:rl:" */
  keyPrefix?: string;
  log: Logger;
  /** Wall clock that picks the slot. @defaultValue Date */
  clock?: Clock;
  /** A Redis call slower than this counts as Redis being unreachable. @defaultValue 500 */
  redisTimeoutMs?: number;
  /** While on the fallback limit, how often Redis is tried again. @defaultValue 1000 */
  probeIntervalMs?: number;
}

/** Grants of slot `slot` under a limit of `perSecond` (an integer): any k consecutive slots sum to it. */
export function slotQuota(perSecond: number, slot: number): number {
  // Only slot mod k matters (the quota repeats every second), and keeping the
  // product small keeps it exact for epoch-sized slot numbers.
  const m = ((slot % SLOTS_PER_SECOND) + SLOTS_PER_SECOND) % SLOTS_PER_SECOND;
  return Math.floor(((m + 1) * perSecond) / SLOTS_PER_SECOND) - Math.floor((m * perSecond) / SLOTS_PER_SECOND);
}

/** Per-slot counters in one store: grants one of the slot's `quota` points, or says they are spent. */
type SlotCounter = (slot: number, quota: number) => Promise<boolean>;

function slotCounter(make: (points: number) => RateLimiterAbstract): SlotCounter {
  // The quota takes at most two values per limit, so two library limiters serve every slot.
  const byQuota = new Map<number, RateLimiterAbstract>();
  return async (slot, quota) => {
    let limiter = byQuota.get(quota);
    if (!limiter) byQuota.set(quota, (limiter = make(quota)));
    try {
      await limiter.consume(String(slot));
      return true;
    } catch (err) {
      if (err instanceof RateLimiterRes) return false;
      throw err;
    }
  };
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`redis did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

interface Waiter {
  signal: AbortSignal;
  resolve(): void;
  reject(err: Error): void;
}

export function createRateLimiter(opts: RateLimiterOptions): RateLimiter {
  const { redis, name, perSecond, log, clock = systemClock, redisTimeoutMs = 500, probeIntervalMs = 1000 } = opts;
  if (!name) throw new RangeError("rate limiter: name must not be empty");
  if (!Number.isInteger(perSecond) || perSecond < 0) throw new RangeError(`rate limiter ${name}: perSecond must be an integer >= 0, got ${perSecond}`);
  if (!(opts.fallbackPerSecond >= 0) || !Number.isFinite(opts.fallbackPerSecond)) {
    throw new RangeError(`rate limiter ${name}: fallbackPerSecond must be a finite number >= 0, got ${opts.fallbackPerSecond}`);
  }
  if (perSecond === 0) {
    return { take: async (signal) => signal.throwIfAborted() };
  }
  const fallbackPerSecond = Math.max(1, Math.floor(opts.fallbackPerSecond));
  const keyPrefix = `${opts.keyPrefix ?? "herald:rl:"}${name}`;
  const shared = slotCounter((points) => new RateLimiterRedis({ storeClient: redis, keyPrefix, points, duration: 1 }));
  const local = slotCounter((points) => new RateLimiterMemory({ keyPrefix, points, duration: 1 }));

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
    withTimeout(shared(slot, quota), redisTimeoutMs).then(
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
  async function consume(slot: number): Promise<boolean> {
    if (!onFallback()) {
      const quota = slotQuota(perSecond, slot);
      if (quota === 0) return false;
      try {
        return await withTimeout(shared(slot, quota), redisTimeoutMs);
      } catch (err) {
        fallBack(err);
      }
    }
    probe(slot);
    const quota = slotQuota(fallbackPerSecond, slot);
    return quota > 0 && local(slot, quota);
  }

  /** Start of the first slot after `slot` that may grant something under the current limit. */
  function nextOpening(slot: number): number {
    const limit = onFallback() ? fallbackPerSecond : perSecond;
    let next = slot + 1;
    while (slotQuota(limit, next) === 0) next++; // at most k steps: every second grants limit >= 1
    return next * SLOT_MS;
  }

  // One loop per process serves the waiters in order and is the only caller of
  // Redis, so a blocked process makes one call per slot whatever its concurrency.
  // Grants are serial, one Redis round trip each: a process gets at most ~1/RTT
  // grants per second (1,500-8,500/s against the local Redis, by load), more processes add up.
  const queue: Waiter[] = [];
  let pumping = false;
  const wakeup = createWakeup();

  async function pump(): Promise<void> {
    while (queue.length > 0) {
      const slot = Math.floor(clock.now() / SLOT_MS);
      if (await consume(slot)) {
        // A grant counted against a slot that ended during the round trip would
        // land in the next slot on top of that slot's own quota: let it lapse.
        if (Math.floor(clock.now() / SLOT_MS) !== slot) continue;
        // None left when every waiter gave up meanwhile: the point goes unused.
        const next = queue.shift();
        if (next) {
          unwatch(next);
          next.resolve();
        }
        continue;
      }
      await wakeup.sleep(Math.max(1, nextOpening(slot) - clock.now() + Math.random() * MAX_JITTER_MS));
    }
    pumping = false;
  }

  // One abort listener per signal, not per waiter: a worker's blocked sends
  // usually all wait on the same shutdown signal, hundreds at a time.
  const watched = new Map<AbortSignal, { waiters: Set<Waiter>; onAbort: () => void }>();

  function watch(waiter: Waiter): void {
    const { signal } = waiter;
    let entry = watched.get(signal);
    if (!entry) {
      const waiters = new Set<Waiter>();
      const onAbort = () => {
        watched.delete(signal);
        queue.splice(0, queue.length, ...queue.filter((w) => !waiters.has(w)));
        if (queue.length === 0) wakeup.wake();
        for (const w of waiters) w.reject(signal.reason as Error);
      };
      entry = { waiters, onAbort };
      watched.set(signal, entry);
      signal.addEventListener("abort", onAbort, { once: true });
    }
    entry.waiters.add(waiter);
  }

  function unwatch(waiter: Waiter): void {
    const entry = watched.get(waiter.signal);
    if (!entry) return;
    entry.waiters.delete(waiter);
    if (entry.waiters.size > 0) return;
    waiter.signal.removeEventListener("abort", entry.onAbort);
    watched.delete(waiter.signal);
  }

  function take(signal: AbortSignal): Promise<void> {
    if (signal.aborted) return Promise.reject(signal.reason as Error);
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { signal, resolve, reject };
      watch(waiter);
      queue.push(waiter);
      if (!pumping) {
        pumping = true;
        pump().catch((err: unknown) => {
          // consume() turns store errors into the fallback; reaching here is a bug.
          // Fail the waiters rather than leave them hanging.
          pumping = false;
          log.error({ err, limiter: name }, "rate limiter failed");
          const error = err instanceof Error ? err : new Error(String(err));
          for (const w of queue.splice(0)) {
            unwatch(w);
            w.reject(error);
          }
        });
      }
    });
  }

  return { take };
}
