// Retry delays for every loop that retries (delivery attempts, the relay, the scheduler, the
// CLI's reconnects): exponential growth, a cap, and full jitter (the whole interval is random,
// not just a slice of it), so a burst of failures against one provider or a dependency that
// comes back spreads out instead of being met by a synchronized wave. Pure: the random
// source is passed in, so tests pin it.

export interface BackoffOptions {
  /** Ceiling of the first retry's delay. */
  baseMs: number;
  /** No delay ceiling grows beyond this. */
  capMs: number;
}

/** The largest delay after attempt `attempt` (1 for the first): min(capMs, baseMs * 2^(attempt-1)). */
export function backoffCeilingMs(attempt: number, opts: BackoffOptions): number {
  // Past 2^52 the product is only ever capped; clamping keeps it finite.
  const exponent = Math.min(Math.max(Math.floor(attempt), 1) - 1, 52);
  return Math.min(opts.capMs, opts.baseMs * 2 ** exponent);
}

/**
 * The delay before the retry that follows attempt `attempt`: a whole number of
 * milliseconds drawn uniformly from [0, backoffCeilingMs(attempt)].
 * `random` returns values in [0, 1), like Math.random.
 */
export function backoffMs(attempt: number, opts: BackoffOptions, random: () => number = Math.random): number {
  const ceiling = backoffCeilingMs(attempt, opts);
  // floor(r * (c + 1)) maps [0, 1) onto every integer of [0, c] evenly; the min
  // guards a random source that (wrongly) returns 1.
  return Math.min(ceiling, Math.floor(random() * (ceiling + 1)));
}
