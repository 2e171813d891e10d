// The waits of Herald's long-running loops (relay, scheduler, worker retries, rate limiter,
// CLI reconnects): one abortable sleep, and a wake-up that another event can end early. A
// stop signal ends any wait at once, so close() never waits out a timer.

/** Resolves after `ms`, or as soon as `signal` aborts: true when the whole time passed. */
export function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  return wait(ms, signal);
}

export interface Wakeup {
  /**
   * Like sleep, but also ends when wake() is called. A wake() that came while nobody slept is
   * kept for the next sleep, which returns at once: an event between two waits is never missed.
   */
  sleep(ms: number, signal?: AbortSignal): Promise<boolean>;
  /** Ends every current sleep (or the next one, if none is running). */
  wake(): void;
}

export function createWakeup(): Wakeup {
  let pending = false;
  const sleepers = new Set<() => void>();
  return {
    sleep(ms, signal) {
      if (pending) {
        pending = false;
        return Promise.resolve(false);
      }
      return wait(ms, signal, sleepers);
    },
    wake() {
      if (sleepers.size === 0) pending = true;
      for (const stop of [...sleepers]) stop();
    },
  };
}

/**
 * The one timer behind both: ends after `ms`, on `signal`, or when the stop function it puts in
 * `sleepers` is called. Not AbortSignal.any: on Node 20 it leaks with a long-lived parent signal
 * (a loop's stop signal outlives millions of sleeps).
 */
function wait(ms: number, signal: AbortSignal | undefined, sleepers?: Set<() => void>): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const done = (full: boolean) => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", stop);
      sleepers?.delete(stop);
      resolve(full);
    };
    const stop = () => done(false);
    const timer = setTimeout(done, ms, true);
    sleepers?.add(stop);
    signal?.addEventListener("abort", stop, { once: true });
  });
}
