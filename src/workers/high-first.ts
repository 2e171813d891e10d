import { createWakeup } from "../loop/sleep.js";

// The worker's CPU goes to the high-priority lane first. Lanes, send slots and a reserved rate
// share keep a PRIORITY_HIGH notification out of the backlog's queues, but not out of the
// backlog's work: with a deep backlog and a fast provider, the low-priority records a worker
// keeps starting fill its event loop and the database, and every step of the high one waits its
// turn behind them. So while high-priority records are being handled, new normal and low ones
// wait before they start (records already started go on). The wait is bounded, so a steady
// stream of high priority slows the rest but never stops it.

export interface HighFirst {
  /** Marks a high-priority record as being handled; call the result when it is done. */
  enter(): () => void;
  /**
   * Resolves at once when no high-priority record is being handled; otherwise when the last
   * one is done, after `maxYieldMs`, or when `signal` aborts, whichever comes first.
   */
  yieldTo(signal: AbortSignal): Promise<void>;
}

export function createHighFirst(opts: { maxYieldMs: number }): HighFirst {
  let active = 0;
  const idle = createWakeup();
  return {
    enter() {
      active++;
      let done = false;
      return () => {
        if (done) return;
        done = true;
        if (--active === 0) idle.wake();
      };
    },
    async yieldTo(signal) {
      if (active === 0 || opts.maxYieldMs <= 0) return;
      const until = performance.now() + opts.maxYieldMs;
      // A wake-up kept from an earlier idle moment returns at once: look again.
      while (active > 0 && !signal.aborted) {
        const left = until - performance.now();
        if (left <= 0) return;
        await idle.sleep(left, signal);
      }
    },
  };
}
