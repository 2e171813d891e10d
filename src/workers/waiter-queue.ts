// A FIFO of abortable waits, for the rate limiter's pump: each waiter leaves the queue, rejected
// with its signal's reason, as soon as its signal aborts. One abort listener per signal, not per
// waiter: a worker's blocked sends usually all wait on the same shutdown signal, hundreds at a time.
// Waits may name a `share` (the tenant): grants then go round robin between the shares waiting,
// first come, first served within each (fair share of the rate, as in slots.ts); waits that name
// none share one queue, first come, first served.

export interface WaiterQueue {
  /** Queues a wait; rejects with signal.reason when `signal` aborts first. */
  push(signal: AbortSignal, share?: string): Promise<void>;
  /** Resolves the oldest waiter of the share whose turn it is; false when there was none. */
  grant(): boolean;
  /** Rejects every waiter with `err`. */
  failAll(err: Error): void;
  readonly length: number;
}

interface Waiter {
  signal: AbortSignal;
  share: string;
  resolve(): void;
  reject(err: Error): void;
}

/** `onEmptied`: every waiter left by aborting (not by a grant). */
export function createWaiterQueue(onEmptied: () => void): WaiterQueue {
  // By share, in round-robin order: the share served goes to the back.
  const shares = new Map<string, Waiter[]>();
  let length = 0;
  const remove = (gone: Set<Waiter>) => {
    for (const [share, waiters] of shares) {
      const kept = waiters.filter((w) => !gone.has(w));
      length -= waiters.length - kept.length;
      if (kept.length === 0) shares.delete(share);
      else shares.set(share, kept);
    }
  };
  const watched = new Map<AbortSignal, { waiters: Set<Waiter>; onAbort: () => void }>();

  function watch(waiter: Waiter): void {
    const { signal } = waiter;
    let entry = watched.get(signal);
    if (!entry) {
      const waiters = new Set<Waiter>();
      const onAbort = () => {
        watched.delete(signal);
        remove(waiters);
        if (length === 0) onEmptied();
        for (const w of waiters) w.reject(signal.reason as Error);
      };
      entry = { waiters, onAbort };
      watched.set(signal, entry);
      signal.addEventListener("abort", onAbort, { once: true });
    }
    entry.waiters.add(waiter);
  }

  function unwatch(waiter: Waiter): void {
    const entry = watched.get(waiter.signal);
    if (!entry) return;
    entry.waiters.delete(waiter);
    if (entry.waiters.size > 0) return;
    waiter.signal.removeEventListener("abort", entry.onAbort);
    watched.delete(waiter.signal);
  }

  return {
    push(signal, share = "") {
      if (signal.aborted) return Promise.reject(signal.reason as Error);
      return new Promise<void>((resolve, reject) => {
        const waiter: Waiter = { signal, share, resolve, reject };
        watch(waiter);
        const waiters = shares.get(share);
        if (waiters) waiters.push(waiter);
        else shares.set(share, [waiter]);
        length++;
      });
    },
    grant() {
      const turn = shares.entries().next();
      if (turn.done) return false;
      const [share, waiters] = turn.value;
      const next = waiters.shift()!;
      length--;
      shares.delete(share);
      if (waiters.length > 0) shares.set(share, waiters);
      unwatch(next);
      next.resolve();
      return true;
    },
    failAll(err) {
      const all = [...shares.values()].flat();
      shares.clear();
      length = 0;
      for (const w of all) {
        unwatch(w);
        w.reject(err);
      }
    },
    get length() {
      return length;
    },
  };
}
