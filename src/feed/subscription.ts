import type { FeedEvent } from "./feed-event.js";
import type { Inc } from "../metrics/api.js";

// One subscriber's queue between the feed (which pushes synchronously, for every subscriber,
// as each event arrives) and its stream (which takes at the pace the client reads). The queue
// is bounded: a subscriber that falls `limit` events behind is cut off (its queue dropped, so
// it holds no memory) and its stream ends with a resumable error, while the feed and every
// other subscriber go on untouched.

export type Wake = "event" | "timeout" | "aborted";

export class Subscription {
  private queue: FeedEvent[] = [];
  private head = 0;
  private waiter: (() => void) | undefined;
  private _overflowed = false;
  private _closed = false;
  private readonly overflow = new AbortController();

  /**
   * @param start events after this position arrive through the queue; those up to it are
   *   the stream's catch-up, read from the ring or the store.
   * @param limit queued events at most; one more and the subscription overflows.
   * @param onClose unregisters it from the feed.
   * @param dropped counts the events an overflow drops (herald_watch_events_dropped_total{reason="buffer_full"}).
   */
  constructor(
    readonly start: number,
    private readonly limit: number,
    private readonly onClose: (s: Subscription) => void,
    private readonly dropped?: Inc,
  ) {}

  get overflowed(): boolean {
    return this._overflowed;
  }

  /**
   * Aborts when the subscription overflows, for a stream whose handler is parked at a yield
   * while its transport waits on a reader that does not read (server/stream-cut.ts).
   */
  get cutOff(): AbortSignal {
    return this.overflow.signal;
  }

  get queued(): number {
    return this.queue.length - this.head;
  }

  /** Called by the feed for each selected event, in position order. */
  push(event: FeedEvent): void {
    if (this._closed) return;
    if (this.queued >= this.limit) {
      // The queue and the event that overflowed it: none of them reaches this stream now (its
      // client resumes from its last cursor and reads them again).
      this.dropped?.inc(this.queued + 1);
      this._overflowed = true;
      this.close();
      this.overflow.abort();
      return;
    }
    this.queue.push(event);
    this.wakeUp();
  }

  /** The next queued event, if any. */
  take(): FeedEvent | undefined {
    if (this.head >= this.queue.length) return undefined;
    const event = this.queue[this.head++];
    // Compact now and then instead of shift() per event (which is O(n) on long queues).
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    return event;
  }

  /** Resolves when an event is queued (or the subscription ended), after `ms`, or on abort. */
  wait(ms: number, signal: AbortSignal): Promise<Wake> {
    if (this.queued > 0 || this._closed) return Promise.resolve("event");
    if (signal.aborted) return Promise.resolve("aborted");
    return new Promise<Wake>((resolve) => {
      const done = (why: Wake) => {
        clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
        this.waiter = undefined;
        resolve(why);
      };
      const onAbort = () => done("aborted");
      const timer = setTimeout(() => done("timeout"), ms);
      signal.addEventListener("abort", onAbort, { once: true });
      this.waiter = () => done("event");
    });
  }

  get closed(): boolean {
    return this._closed;
  }

  /** Stops delivery and frees the queue. Idempotent. */
  close(): void {
    if (this._closed) return;
    this._closed = true;
    this.queue = [];
    this.head = 0;
    this.onClose(this);
    this.wakeUp();
  }

  private wakeUp(): void {
    this.waiter?.();
  }
}
