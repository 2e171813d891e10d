import { RateLimiterRes, type RateLimiterAbstract } from "rate-limiter-flexible";

// The rate limiter's slots. Why slots instead of the library's plain "N points
// per 1-second window": that window opens at its first take, so N sends at the
// end of one window and N at the start of the next pass within a few
// milliseconds: 2N in one second as a provider counts it (measured: 40 in one
// second at N = 20 even under steady load, as the waiters' retries after each
// expiry spread over the next). Here each second of the wall clock is cut into
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

/** Slots per second: the tolerance is ceil(N/k); each blocked process calls Redis at most k times a second. */
const SLOTS_PER_SECOND = 10;
export const SLOT_MS = 1000 / SLOTS_PER_SECOND;

/** Grants of slot `slot` under a limit of `perSecond` (an integer): any k consecutive slots sum to it. */
export function slotQuota(perSecond: number, slot: number): number {
  // Only slot mod k matters (the quota repeats every second), and keeping the
  // product small keeps it exact for epoch-sized slot numbers.
  const m = ((slot % SLOTS_PER_SECOND) + SLOTS_PER_SECOND) % SLOTS_PER_SECOND;
  return Math.floor(((m + 1) * perSecond) / SLOTS_PER_SECOND) - Math.floor((m * perSecond) / SLOTS_PER_SECOND);
}

/** Per-slot counters in one store: grants one of the slot's `quota` points, or says they are spent. */
export type SlotCounter = (slot: number, quota: number) => Promise<boolean>;

export function slotCounter(make: (points: number) => RateLimiterAbstract): SlotCounter {
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
