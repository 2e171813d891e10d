import { HeraldError } from "../errors.js";

// A FIFO counting semaphore. The worker uses two: one bounds the records a
// worker holds at once (claimed, rendering, waiting, storing an outcome), the
// other, smaller, bounds the provider sends in flight. Keeping them apart
// lets claims and outcomes, which are group-committed and wait on
// PostgreSQL, overlap the sends instead of holding a provider slot idle.
// A waiter may ask to go `ahead`: it is served before every plain waiter (FIFO among those
// ahead), so a high-priority send takes the next free provider slot even behind a backlog.
//
// Fair share (issue 17): with `fair`, plain waiters name their `share` (the tenant) and a freed
// slot goes round robin between the shares that wait, first come, first served within each. A
// tenant with a thousand records waiting and one with a single record then alternate, where a
// plain FIFO made the second wait behind the first's thousand. Every slot costs the same (one
// record, one send), so round robin is deficit round robin with a quantum of one. Each waiter
// is one record at the head of its recipient's lane (key-lanes.ts): reordering waiters never
// reorders a person's messages.

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
   * With `ahead`, the wait is served before every wait without it. `share`: whose wait it is,
   * for the round robin of fair slots (ignored otherwise).
   */
  acquire(signal?: AbortSignal, opts?: { ahead?: boolean; share?: string }): Promise<() => void>;
  /** Slots taken right now. */
  readonly inUse: number;
  readonly limit: number;
}

export interface SlotsOptions {
  /** Serve plain waiters round robin by their `share` instead of first come, first served. @defaultValue false */
  fair?: boolean;
}

export function createSlots(limit: number, opts: SlotsOptions = {}): Slots {
  if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`slot limit must be a positive integer, got ${limit}`);
  const fair = opts.fair === true;
  let inUse = 0;
  // Insertion order: FIFO within each set.
  const ahead = new Set<() => void>();
  // Plain waiters by share, the map's order the round robin's: the share served goes to the back.
  // Without `fair` every waiter is in the one share "".
  const shares = new Map<string, Set<() => void>>();
  const next = (): (() => void) | undefined => {
    const first = ahead.values().next();
    if (!first.done) {
      ahead.delete(first.value);
      return first.value;
    }
    const turn = shares.entries().next();
    if (turn.done) return undefined;
    const [share, queue] = turn.value;
    const grant = queue.values().next().value!;
    queue.delete(grant);
    shares.delete(share);
    if (queue.size > 0) shares.set(share, queue);
    return grant;
  };
  const release = () => {
    const grant = next();
    // Handing the slot straight to the next waiter keeps the order: nobody arriving in between can
    // overtake it.
    if (!grant) inUse--;
    else grant();
  };
  const releaser = () => {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      release();
    };
  };
  const queueOf = (waitOpts: { ahead?: boolean; share?: string } | undefined): Set<() => void> => {
    if (waitOpts?.ahead) return ahead;
    const share = fair ? (waitOpts?.share ?? "") : "";
    let queue = shares.get(share);
    if (!queue) shares.set(share, (queue = new Set()));
    return queue;
  };
  const leave = (queue: Set<() => void>, grant: () => void, share: string | undefined) => {
    queue.delete(grant);
    const key = fair ? (share ?? "") : "";
    if (queue.size === 0 && shares.get(key) === queue) shares.delete(key);
  };
  return {
    limit,
    get inUse() {
      return inUse;
    },
    acquire(signal, waitOpts) {
      if (signal?.aborted) return Promise.reject(new SlotWaitAbortedError("aborted before a slot was free"));
      if (inUse < limit) {
        inUse++;
        return Promise.resolve(releaser());
      }
      const queue = queueOf(waitOpts);
      return new Promise((resolve, reject) => {
        const onAbort = () => {
          leave(queue, grant, waitOpts?.share);
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
