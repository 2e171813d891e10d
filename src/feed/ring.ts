import type { FeedEvent } from "./feed-event.js";

/**
 * The newest events of the feed, by position, in a fixed-size circular buffer: a stream that
 * resumes from a recent cursor is served from memory; an older cursor reads PostgreSQL.
 * Positions are dense, so the ring always holds the contiguous range (last - size, last].
 */
export class EventRing {
  private readonly slots: (FeedEvent | undefined)[];
  private count = 0;
  private next = 0;

  constructor(readonly capacity: number) {
    this.slots = new Array<FeedEvent | undefined>(capacity);
  }

  /** Appends the event that directly follows the newest one (the feed guarantees it). */
  add(event: FeedEvent): void {
    if (this.capacity === 0) return;
    this.slots[this.next] = event;
    this.next = (this.next + 1) % this.capacity;
    if (this.count < this.capacity) this.count++;
  }

  /** Forgets everything (the feed skipped positions it could not read). */
  clear(): void {
    this.slots.fill(undefined);
    this.count = 0;
    this.next = 0;
  }

  get size(): number {
    return this.count;
  }

  /**
   * The events after position `after` that `keep` accepts, oldest first; undefined when the
   * ring does not reach back that far (position `after + 1` is no longer, or not yet, held).
   */
  after(after: number, last: number, keep: (e: FeedEvent) => boolean): FeedEvent[] | undefined {
    if (after >= last) return [];
    const oldest = last - this.count + 1;
    if (this.count === 0 || after + 1 < oldest) return undefined;
    const out: FeedEvent[] = [];
    const skip = after + 1 - oldest;
    for (let i = skip; i < this.count; i++) {
      const event = this.slots[(this.next - this.count + i + this.capacity) % this.capacity]!;
      if (keep(event)) out.push(event);
    }
    return out;
  }
}
