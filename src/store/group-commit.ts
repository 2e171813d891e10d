import type { Inc } from "../metrics/api.js";

// Group commit: callers submit one item each and share one flush (one
// transaction, one fsync). A batch closes when `maxBatch` items wait or the
// oldest has waited `maxDelayMs`, so a lone caller pays at most maxDelayMs.
// Only `maxInFlight` flushes run at once; whatever arrives meanwhile waits and
// goes out in the next flush, so batches grow with load on their own instead
// of load turning into more concurrent transactions.
//
// Admission: the wait is bounded. Beyond `maxQueued` waiting items a submit is
// refused at once (overloadedError), because an unbounded queue turns overload
// into latency past every caller's deadline: callers give up and retry, and the
// server spends itself committing work nobody waits for (metastable collapse).
// A submit is also refused when the queue's expected wait is longer than its
// caller's time left: it would only time out in the queue, and its client's
// cancellation would cost the server a stream reset. An item whose caller gave
// up (`abandoned`) is dropped when submitted and when its batch forms, so it
// costs the database nothing. Each refusal and drop is counted by its reason
// (herald_admission_rejected_total), once per call.

export interface GroupCommitOptions<I, O> {
  /** Flush as soon as this many items wait; also the largest batch. */
  maxBatch: number;
  /** Longest the oldest waiting item waits for company before its batch closes. */
  maxDelayMs: number;
  /** Flushes running at once. @defaultValue 1 */
  maxInFlight?: number;
  /** Items waiting for a flush (not counting running flushes) beyond which submit refuses. @defaultValue Infinity */
  maxQueued?: number;
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
  /** The error a submit to a full queue rejects with; `retryAfterMs` is about the time the queue takes to drain. */
  overloadedError?(retryAfterMs: number): Error;
  /** Whether the item's caller has given up (cancelled, deadline passed): it then rejects with AbandonedError, never flushed. */
  abandoned?(item: I): boolean;
  /** How long the item's caller still waits, in ms (undefined: no deadline). Refused at once if the queue cannot make it. */
  timeLeftMs?(item: I): number | undefined;
  /** Told when refusals start (`active`) and when the queue has caught up again, with how many were refused. */
  onShedding?(active: boolean, shed: number): void;
  /** Counts each call refused (the queue was full; its deadline was shorter than the wait) or dropped as abandoned here. */
  rejected?: { queueFull: Inc; deadline: Inc; abandoned: Inc };
}

export interface GroupCommit<I, O> {
  submit(item: I): Promise<O>;
  /**
   * Whether a submit now, from a caller with `timeLeftMs` to wait, would be refused: then the
   * retry hint in ms (and it counts as refused), else undefined. Lets a server refuse before it
   * spends anything on the call (decoding, validating it).
   */
  refusal(timeLeftMs: number | undefined): number | undefined;
  /** Calls waiting for a flush now (not those in running flushes). */
  depth(): number;
  /** Flushes everything waiting, waits for running flushes, then refuses new items. Idempotent. */
  close(): Promise<void>;
}

/** An item dropped because its caller gave up before it was flushed: nothing of it was written. */
export class AbandonedError extends Error {
  override name = "AbandonedError";
  constructor() {
    super("the caller gave up before its item was flushed");
  }
}

interface Waiter<I, O> {
  item: I;
  resolve(value: O): void;
  reject(err: unknown): void;
}

export function createGroupCommit<I, O>(opts: GroupCommitOptions<I, O>): GroupCommit<I, O> {
  const maxBatch = Math.max(1, opts.maxBatch);
  const maxInFlight = Math.max(1, opts.maxInFlight ?? 1);
  const maxQueued = opts.maxQueued ?? Infinity;
  const abandoned = (item: I) => opts.abandoned?.(item) ?? false;
  const overloadedError = (retryAfterMs: number) => opts.overloadedError?.(retryAfterMs) ?? new Error("group commit: queue full");
  const rejected = opts.rejected;
  let queue: Waiter<I, O>[] = [];
  let inFlight = 0;
  // Invariant: a non-empty queue has a timer armed or is already ripe.
  let ripe = false;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  let closing: Promise<void> | undefined;
  let drained: (() => void) | undefined;
  /** Recent flush time, for the retry hint; a first guess until a flush has run. */
  let flushMs = Math.max(10, opts.maxDelayMs);
  /** Refusals since shedding began; 0 while the queue has room. */
  let shed = 0;
  // A full queue is swept for abandoned items at most once per batch taken: sweeping on
  // every refused submit would cost O(queue) per call exactly when CPU is scarcest.
  let swept = false;

  /** Takes up to maxBatch live items from the front, rejecting abandoned ones on the way. */
  function take(): Waiter<I, O>[] {
    const batch: Waiter<I, O>[] = [];
    let i = 0;
    for (; i < queue.length && batch.length < maxBatch; i++) {
      const w = queue[i]!;
      if (abandoned(w.item)) drop(w);
      else batch.push(w);
    }
    queue = queue.slice(i);
    swept = false;
    return batch;
  }

  function drop(w: Waiter<I, O>): void {
    rejected?.abandoned.inc();
    w.reject(new AbandonedError());
  }

  function pump(): void {
    while (inFlight < maxInFlight && queue.length > 0 && (ripe || closed || queue.length >= maxBatch)) {
      const batch = take();
      if (queue.length === 0) {
        ripe = false;
        clearTimeout(timer);
        timer = undefined;
        if (shed > 0) {
          opts.onShedding?.(false, shed);
          shed = 0;
        }
      }
      if (batch.length > 0) run(batch);
    }
    if (closed && queue.length === 0 && inFlight === 0) drained?.();
  }

  function run(batch: Waiter<I, O>[]): void {
    inFlight++;
    const started = performance.now();
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
        flushMs = 0.8 * flushMs + 0.2 * (performance.now() - started);
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

  /** Whether the queue has room, after dropping abandoned items if it looked full. */
  function hasRoom(): boolean {
    if (queue.length < maxQueued) return true;
    if (swept) return false;
    swept = true;
    queue = queue.filter((w) => {
      if (!abandoned(w.item)) return true;
      drop(w);
      return false;
    });
    return queue.length < maxQueued;
  }

  /** About how long the last in line waits to be committed: the flush rounds ahead of it. */
  function expectedWaitMs(): number {
    return flushMs * (queue.length / (maxBatch * maxInFlight) + 1);
  }

  /** The retry hint if a caller with `left` ms to wait is refused now (counted as shed), else undefined. */
  function refusal(left: number | undefined): number | undefined {
    const room = hasRoom();
    if (room && (left === undefined || left >= expectedWaitMs())) return undefined;
    (room ? rejected?.deadline : rejected?.queueFull)?.inc();
    if (shed++ === 0) opts.onShedding?.(true, 0);
    // Spread over [1, 2) times the wait, so callers refused together do not return together.
    return Math.ceil(expectedWaitMs() * (1 + Math.random()));
  }

  return {
    submit(item) {
      if (closed) return Promise.reject(opts.closedError());
      if (abandoned(item)) {
        rejected?.abandoned.inc();
        return Promise.reject(new AbandonedError());
      }
      const retryAfterMs = refusal(opts.timeLeftMs?.(item));
      if (retryAfterMs !== undefined) return Promise.reject(overloadedError(retryAfterMs));
      return new Promise<O>((resolve, reject) => {
        queue.push({ item, resolve, reject });
        if (queue.length === 1 && !ripe && timer === undefined) {
          timer = setTimeout(() => {
            timer = undefined;
            // A sweep may have emptied the queue since: ripe then would wrongly skip the next wait.
            ripe = queue.length > 0;
            pump();
          }, opts.maxDelayMs);
        }
        pump();
      });
    },
    refusal,
    depth: () => queue.length,
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
