// A FIFO of abortable waits, for the rate limiter's pump: each waiter leaves the queue, rejected
// with its signal's reason, as soon as its signal aborts. One abort listener per signal, not per
// waiter: a worker's blocked sends usually all wait on the same shutdown signal, hundreds at a time.

export interface WaiterQueue {
  /** Queues a wait; rejects with signal.reason when `signal` aborts first. */
  push(signal: AbortSignal): Promise<void>;
  /** Resolves the oldest waiter; false when there was none. */
  grant(): boolean;
  /** Rejects every waiter with `err`. */
  failAll(err: Error): void;
  readonly length: number;
}

interface Waiter {
  signal: AbortSignal;
  resolve(): void;
  reject(err: Error): void;
}

/** `onEmptied`: every waiter left by aborting (not by a grant). */
export function createWaiterQueue(onEmptied: () => void): WaiterQueue {
  let queue: Waiter[] = [];
  const watched = new Map<AbortSignal, { waiters: Set<Waiter>; onAbort: () => void }>();

  function watch(waiter: Waiter): void {
    const { signal } = waiter;
    let entry = watched.get(signal);
    if (!entry) {
      const waiters = new Set<Waiter>();
      const onAbort = () => {
        watched.delete(signal);
        queue = queue.filter((w) => !waiters.has(w));
        if (queue.length === 0) onEmptied();
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
    push(signal) {
      if (signal.aborted) return Promise.reject(signal.reason as Error);
      return new Promise<void>((resolve, reject) => {
        const waiter: Waiter = { signal, resolve, reject };
        watch(waiter);
        queue.push(waiter);
      });
    },
    grant() {
      const next = queue.shift();
      if (!next) return false;
      unwatch(next);
      next.resolve();
      return true;
    },
    failAll(err) {
      for (const w of queue.splice(0)) {
        unwatch(w);
        w.reject(err);
      }
    },
    get length() {
      return queue.length;
    },
  };
}
