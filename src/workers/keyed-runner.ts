import type { Slots } from "./slots.js";

// Per-key ordering with bounded concurrency, and the offset watermark that
// goes with it.
//
// A channel topic is keyed by recipient, so one partition batch interleaves
// many people's messages. Each person's messages must be delivered in order,
// but one slow person must not hold up everyone else: the runner gives every
// key its own lane (items strictly one after another) and runs lanes side by
// side, all lanes of all batches sharing one process-wide limit. Because
// lanes finish out of offset order, what may be committed is tracked
// separately: the watermark is the lowest offset not yet finished.

export interface KeyedRunOptions<T> {
  keyOf(item: T): string;
  /** Resolves when the item is finished; a rejection means "not finished": its lane stops there. */
  handle(item: T): Promise<void>;
  /** Checked before each item starts: false (shutdown, rebalance) leaves the rest unstarted. */
  canStart(): boolean;
  onFinished?(item: T): void;
}

export interface KeyedRunResult {
  finished: number;
  /** Not finished: failed, or never started (canStart false, or behind a failure in their lane). */
  unfinished: number;
}

/**
 * Runs `items` (in offset order) lane by lane: items of one key strictly in
 * order, different keys concurrently within `slots`. Resolves once every lane
 * has stopped; never rejects.
 */
export async function runKeyed<T>(items: readonly T[], slots: Slots, opts: KeyedRunOptions<T>): Promise<KeyedRunResult> {
  const lanes = new Map<string, T[]>();
  for (const item of items) {
    const key = opts.keyOf(item);
    const lane = lanes.get(key);
    if (lane) lane.push(item);
    else lanes.set(key, [item]);
  }
  let finished = 0;
  const runLane = async (lane: readonly T[]): Promise<void> => {
    for (const item of lane) {
      if (!opts.canStart()) return;
      // One slot per item rather than per lane, so a recipient with a long
      // backlog takes turns with the others instead of holding a slot throughout.
      const release = await slots.acquire();
      try {
        if (!opts.canStart()) return;
        await opts.handle(item);
      } catch {
        // A later item of this key must never overtake it: the lane ends here
        // and the whole rest of it is redelivered.
        return;
      } finally {
        release();
      }
      finished++;
      opts.onFinished?.(item);
    }
  };
  await Promise.all([...lanes.values()].map(runLane));
  return { finished, unfinished: items.length - finished };
}

/**
 * Which offsets of one partition batch are finished. `next()` is the offset
 * to commit (Kafka's "next record to read"): the lowest unfinished offset, or
 * the one after the last when all are done. It never passes an unfinished one.
 */
export interface Watermark {
  finish(offset: string): void;
  /** Undefined while the first offset is unfinished (nothing to commit yet). */
  next(): string | undefined;
}

export function createWatermark(offsets: readonly string[]): Watermark {
  const index = new Map(offsets.map((o, i) => [o, i]));
  const done = offsets.map(() => false);
  let low = 0; // first index not known to be done
  return {
    finish(offset) {
      const i = index.get(offset);
      if (i === undefined) throw new Error(`offset ${offset} is not part of this batch`);
      done[i] = true;
      while (low < done.length && done[low]) low++;
    },
    next() {
      if (low === 0) return undefined;
      if (low < offsets.length) return offsets[low];
      // Offsets may have gaps (compaction, transaction markers), so "after the
      // last" is last + 1, not the next one in the batch.
      return (BigInt(offsets[offsets.length - 1]!) + 1n).toString();
    },
  };
}
