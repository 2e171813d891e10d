// One lane per key: tasks of the same key run strictly one after another, in
// the order they were queued, and tasks of different keys side by side.
//
// A channel topic is keyed by recipient, so this is what keeps each person's
// messages in order while one slow person does not hold up everyone else.
// Lanes live as long as the worker, not one fetched batch: a recipient's next
// record, fetched while the previous one is still being sent, waits for it.

export interface KeyLanes {
  /**
   * Queues `task` behind every task of `key` queued before it. Resolves when `task` has settled;
   * a rejecting task settles its turn all the same (the task decides what the next may do).
   */
  run(key: string, task: () => Promise<void>): Promise<void>;
  /** Keys with a task queued or running. */
  readonly size: number;
}

export function createKeyLanes(): KeyLanes {
  const tails = new Map<string, Promise<void>>();
  return {
    run(key, task) {
      const previous = tails.get(key);
      const turn = (previous ?? Promise.resolve()).then(task).catch(() => {});
      tails.set(key, turn);
      // The lane is forgotten once its last task settles, so idle keys cost nothing.
      void turn.then(() => {
        if (tails.get(key) === turn) tails.delete(key);
      });
      return turn;
    },
    get size() {
      return tails.size;
    },
  };
}
