import { HeraldError } from "../errors.js";

// A FIFO counting semaphore. The worker uses two: one bounds the records a
// worker holds at once (claimed, rendering, waiting, storing an outcome), the
// other, smaller, bounds the provider sends in flight. Keeping them apart
// lets claims and outcomes, which are group-committed and wait on
// PostgreSQL, overlap the sends instead of holding a provider slot idle.
// A waiter may ask to go `ahead`: it is served before every plain waiter (FIFO among those
// ahead), so a high-priority send takes the next free provider slot even behind a backlog.

/**
 * Why a wait for a slot ended without one. Not retriable: the waiter gave up (whatever aborted
 * `signal` decides what that means for its work).
 */
export class SlotWaitAbortedError extends HeraldError {
  override name = "SlotWaitAbortedError";
  readonly retriable = false;
}

export interface Slots {
  /**
   * Waits for a free slot; call the returned function exactly once to free it. With `signal`,
   * a wait still queued when it aborts rejects with SlotWaitAbortedError and takes no slot.
   * With `ahead`, the wait is served before every wait without it.
   */
  acquire(signal?: AbortSignal, opts?: { ahead?: boolean }): Promise<() => void>;
  /** Slots taken right now. */
  readonly inUse: number;
  readonly limit: number;
}

export function createSlots(limit: number): Slots {
  if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`slot limit must be a positive integer, got ${limit}`);
  let inUse = 0;
  // Insertion order: FIFO within each.
  const ahead = new Set<() => void>();
  const waiting = new Set<() => void>();
  const release = () => {
    const queue = ahead.size > 0 ? ahead : waiting;
    const next = queue.values().next();
    // Handing the slot straight to the next waiter keeps FIFO order: nobody
    // arriving in between can overtake it.
    if (next.done) inUse--;
    else {
      queue.delete(next.value);
      next.value();
    }
  };
  const releaser = () => {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      release();
    };
  };
  return {
    limit,
    get inUse() {
      return inUse;
    },
    acquire(signal, opts) {
      if (signal?.aborted) return Promise.reject(new SlotWaitAbortedError("aborted before a slot was free"));
      if (inUse < limit) {
        inUse++;
        return Promise.resolve(releaser());
      }
      const queue = opts?.ahead ? ahead : waiting;
      return new Promise((resolve, reject) => {
        const onAbort = () => {
          queue.delete(grant);
          reject(new SlotWaitAbortedError("aborted while waiting for a slot"));
        };
        const grant = () => {
          signal?.removeEventListener("abort", onAbort);
          resolve(releaser());
        };
        queue.add(grant);
        signal?.addEventListener("abort", onAbort, { once: true });
      });
    },
  };
}
