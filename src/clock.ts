// Time is passed in (STYLE habit 14), so backoff, scheduling, leases and timeouts are
// testable without sleeping. One shape everywhere: epoch milliseconds, as Date.now()
// returns them; `Date` itself is the system clock.

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
}

export const systemClock: Clock = Date;
