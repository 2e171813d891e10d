// Group commit: callers submit one item each and share one flush (one
// transaction, one fsync). A batch closes when `maxBatch` items wait or the
// oldest has waited `maxDelayMs`, so a lone caller pays at most maxDelayMs.
// Only `maxInFlight` flushes run at once; whatever arrives meanwhile waits and
// goes out in the next flush, so batches grow with load on their own instead
// of load turning into more concurrent transactions.

export interface GroupCommitOptions<I, O> {
  /** Flush as soon as this many items wait; also the largest batch. */
  maxBatch: number;
  /** Longest the oldest waiting item waits for company before its batch closes. */
  maxDelayMs: number;
  /** Flushes running at once. @defaultValue 1 */
  maxInFlight?: number;
  /**
   * Writes one batch and settles each item, in order. Throwing (or rejecting)
   * fails every item of the batch with that error.
   */
  flush(items: readonly I[]): Promise<PromiseSettledResult<O>[]>;
  /** The error a submit after close() rejects with. */
  closedError(): Error;
  /**
   * Whether an item's failure is the resource's, not the item's (the database is unreachable):
   * then every item waiting meanwhile fails with it at once. They waited out that attempt
   * already; another in the same outage would make them wait a second timeout for the same
   * answer. Items submitted after it get a fresh attempt, which is how recovery is found.
   */
  sharesFailure?(err: unknown): boolean;
}

export interface GroupCommit<I, O> {
  submit(item: I): Promise<O>;
  /** Flushes everything waiting, waits for running flushes, then refuses new items. Idempotent. */
  close(): Promise<void>;
}

interface Waiter<I, O> {
  item: I;
  resolve(value: O): void;
  reject(err: unknown): void;
}

export function createGroupCommit<I, O>(opts: GroupCommitOptions<I, O>): GroupCommit<I, O> {
  const maxBatch = Math.max(1, opts.maxBatch);
  const maxInFlight = Math.max(1, opts.maxInFlight ?? 1);
  let queue: Waiter<I, O>[] = [];
  let inFlight = 0;
  // Invariant: a non-empty queue has a timer armed or is already ripe.
  let ripe = false;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  let closing: Promise<void> | undefined;
  let drained: (() => void) | undefined;

  function pump(): void {
    while (inFlight < maxInFlight && queue.length > 0 && (ripe || closed || queue.length >= maxBatch)) {
      const batch = queue.slice(0, maxBatch);
      queue = queue.slice(maxBatch);
      if (queue.length === 0) {
        ripe = false;
        clearTimeout(timer);
        timer = undefined;
      }
      run(batch);
    }
    if (closed && queue.length === 0 && inFlight === 0) drained?.();
  }

  function run(batch: Waiter<I, O>[]): void {
    inFlight++;
    // Promise.resolve().then: a flush that throws synchronously still settles its callers.
    Promise.resolve()
      .then(() => opts.flush(batch.map((w) => w.item)))
      .then(
        (results) =>
          batch.forEach((w, i) => {
            const r = results[i];
            if (!r) w.reject(new Error("group commit: flush returned fewer results than items"));
            else if (r.status === "fulfilled") w.resolve(r.value);
            else failed(w, r.reason);
          }),
        (err: unknown) => batch.forEach((w) => failed(w, err)),
      )
      .finally(() => {
        inFlight--;
        pump();
      })
      .catch(() => {}); // pump() does not throw; this only keeps the chain from floating
  }

  function failed(w: Waiter<I, O>, err: unknown): void {
    w.reject(err);
    if (queue.length === 0 || !opts.sharesFailure?.(err)) return;
    const waiting = queue;
    queue = [];
    ripe = false;
    clearTimeout(timer);
    timer = undefined;
    waiting.forEach((other) => other.reject(err));
  }

  return {
    submit(item) {
      if (closed) return Promise.reject(opts.closedError());
      return new Promise<O>((resolve, reject) => {
        queue.push({ item, resolve, reject });
        if (queue.length === 1 && !ripe && timer === undefined) {
          timer = setTimeout(() => {
            timer = undefined;
            ripe = true;
            pump();
          }, opts.maxDelayMs);
        }
        pump();
      });
    },
    close() {
      if (!closing) {
        closed = true;
        clearTimeout(timer);
        timer = undefined;
        closing = new Promise<void>((resolve) => (drained = resolve));
        pump(); // closed makes whatever waits ripe
      }
      return closing;
    },
  };
}
