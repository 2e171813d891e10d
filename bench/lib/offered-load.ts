// Open-loop load: start call i at t0 + i/rate whatever earlier calls are doing, so a slow
// system shows up as latency and backlog instead of quietly lowering the offered rate
// (coordinated omission). Latency is measured from each call's scheduled start.

export interface OfferedResult {
  /** Calls started per second, as achieved by the generator. */
  offeredPerSecond: number;
  ok: number;
  errors: number;
  /** Per successful call: ms from its scheduled start to its answer. */
  latenciesMs: number[];
  /** performance.now() of the first scheduled start. */
  t0: number;
  /** Date.now() at t0, to relate to wall-clock timestamps stored by the system. */
  wallT0: number;
}

export async function offeredLoad(opts: {
  rate: number;
  seconds: number;
  call: (i: number) => Promise<unknown>;
  /** At most this many calls outstanding; beyond it the generator counts an error instead of piling up. */
  maxInFlight?: number;
}): Promise<OfferedResult> {
  const total = Math.round(opts.rate * opts.seconds);
  const maxInFlight = opts.maxInFlight ?? 5000;
  const latenciesMs: number[] = [];
  let ok = 0;
  let errors = 0;
  let inFlight = 0;
  const pending: Promise<void>[] = [];
  const wallT0 = Date.now();
  const t0 = performance.now();
  for (let i = 0; i < total; i++) {
    const due = t0 + (i * 1000) / opts.rate;
    const wait = due - performance.now();
    // Sleep only when ahead by more than a timer's granularity; otherwise start in a burst.
    if (wait > 2) await new Promise((r) => setTimeout(r, wait));
    if (inFlight >= maxInFlight) {
      errors++;
      continue;
    }
    inFlight++;
    pending.push(
      opts.call(i).then(
        () => {
          ok++;
          latenciesMs.push(performance.now() - due);
        },
        () => void errors++,
      ).finally(() => void inFlight--),
    );
  }
  const elapsed = (performance.now() - t0) / 1000;
  await Promise.all(pending);
  return { offeredPerSecond: Math.round(total / Math.max(elapsed, 1e-3)), ok, errors, latenciesMs, t0, wallT0 };
}
