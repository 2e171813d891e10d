import type { Redis } from "ioredis";

// The rate limiter's slots. Why slots instead of a plain "N points per 1-second window" (as
// rate-limiter-flexible, used here before, counts them): that window opens at its first take, so N sends at the
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
// Each slot is one Redis key, `${keyPrefix}${name}:${i}`, counting its grants up to a cap
// (quota(i), or less for normal priority when a share is reserved for high), with a short TTL
// that only collects the key. Processes pick the slot from
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

/**
 * Per-slot counters in one store: grants one point of `slot` while fewer than `cap` were granted
 * in it, else says no. A refusal counts nothing, so takes with different caps can share a slot's
 * counter: a normal-priority take refused at its lower cap spends none of the points only high
 * priority may take (rate-limit.ts).
 */
export type SlotCounter = (slot: number, cap: number) => Promise<boolean>;

/** A slot's key outlives the slot: it only has to be gone before the slot number comes round again (never). */
const SLOT_KEY_TTL_MS = 2000;

// Check and increment in one step: processes sharing the counter never grant past the cap
// between them. The TTL is set by the take that creates the key.
const TAKE_SCRIPT = `local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= tonumber(ARGV[1]) then return 0 end
if redis.call('INCR', KEYS[1]) == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1`;

/** Slot counters in Redis, one key per slot: `${keyPrefix}:${slot}`, shared by every process using the same prefix. */
export function redisSlotCounter(redis: Pick<Redis, "eval">, keyPrefix: string): SlotCounter {
  return async (slot, cap) => (await redis.eval(TAKE_SCRIPT, 1, `${keyPrefix}:${slot}`, cap, SLOT_KEY_TTL_MS)) === 1;
}

/** Slot counters in this process's memory (the fallback while Redis is unreachable). */
export function memorySlotCounter(): SlotCounter {
  const counts = new Map<number, number>();
  return async (slot, cap) => {
    // Slots are taken in clock order: anything before this one is over and dropped.
    for (const old of counts.keys()) if (old < slot) counts.delete(old);
    const n = counts.get(slot) ?? 0;
    if (n >= cap) return false;
    counts.set(slot, n + 1);
    return true;
  };
}
