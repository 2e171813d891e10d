import { HeraldError } from "../errors.js";

// A FIFO counting semaphore. The worker uses two: one bounds the records a
// worker holds at once (claimed, rendering, waiting, storing an outcome), the
// other, smaller, bounds the provider sends in flight. Keeping them apart
// lets claims and outcomes, which are group-committed and wait on
// PostgreSQL, overlap the sends instead of holding a provider slot idle.

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
   */
  acquire(signal?: AbortSignal): Promise<() => void>;
  /** Slots taken right now. */
  readonly inUse: number;
  readonly limit: number;
}

export function createSlots(limit: number): Slots {
  if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`slot limit must be a positive integer, got ${limit}`);
  let inUse = 0;
  const waiting = new Set<() => void>(); // insertion order: FIFO
  const release = () => {
    const next = waiting.values().next();
    // Handing the slot straight to the next waiter keeps FIFO order: nobody
    // arriving in between can overtake it.
    if (next.done) inUse--;
    else {
      waiting.delete(next.value);
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
    acquire(signal) {
      if (signal?.aborted) return Promise.reject(new SlotWaitAbortedError("aborted before a slot was free"));
      if (inUse < limit) {
        inUse++;
        return Promise.resolve(releaser());
      }
      return new Promise((resolve, reject) => {
        const onAbort = () => {
          waiting.delete(grant);
          reject(new SlotWaitAbortedError("aborted while waiting for a slot"));
        };
        const grant = () => {
          signal?.removeEventListener("abort", onAbort);
          resolve(releaser());
        };
        waiting.add(grant);
        signal?.addEventListener("abort", onAbort, { once: true });
      });
    },
  };
}
