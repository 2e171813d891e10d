// Which offsets of one partition this member has taken on and finished, across
// every batch it fetched: the worker hands each batch's records to their lanes
// and fetches the next batch while they run, so what may be committed spans
// batches. Records finish out of offset order (one lane per recipient), so the
// offset to commit is tracked here: the lowest one taken on and not finished.
//
// After the group rejoins, kafkajs fetches a partition it kept from the
// committed offset again, below records this member still holds or already
// finished. `admit` says no to those, so nothing is taken on twice.

export interface PartitionProgress {
  /** Takes `offset` on; false when this member already took it on (a refetch after a rejoin). */
  admit(offset: string): boolean;
  finish(offset: string): void;
  /**
   * Kafka's "next record to read" to commit: the lowest offset taken on and not finished, or
   * the one after the highest taken on. Undefined before anything was taken on.
   */
  next(): string | undefined;
}

export function createPartitionProgress(): PartitionProgress {
  // Offsets are taken on in increasing order, so the map's insertion order is
  // offset order and its first key is the lowest unfinished offset.
  const unfinished = new Map<string, true>();
  let high: bigint | undefined; // one after the highest offset taken on
  return {
    admit(offset) {
      const o = BigInt(offset);
      if (high !== undefined && o < high) return false;
      unfinished.set(offset, true);
      // Offsets may have gaps (compaction, transaction markers), so "after the
      // last" is last + 1, not the next one fetched.
      high = o + 1n;
      return true;
    },
    finish(offset) {
      if (!unfinished.delete(offset)) throw new Error(`offset ${offset} was not taken on or is already finished`);
    },
    next() {
      const lowest = unfinished.keys().next();
      if (!lowest.done) return lowest.value;
      return high?.toString();
    },
  };
}
