import type { ConsumedBatch } from "../kafka/consumer.js";

// A batch handler that waits (for its partition's previous batch) must still heartbeat, or the
// group drops the member; kafkajs heartbeats only when asked.

/**
 * Waits for `done` while keeping this member in the group, heartbeating every `intervalMs`;
 * resolves early when `stop` aborts. Rejects when a heartbeat does (the group rebalances):
 * kafkajs then rejoins, and the worker's onAssigned says what stays ours.
 */
export function waitBeating(done: Promise<void>, batch: Pick<ConsumedBatch, "heartbeat">, stop: AbortSignal, intervalMs: number): Promise<void> {
  if (stop.aborted) return Promise.resolve();
  return new Promise<void>((resolve, reject) => {
    let beat: Promise<void> = Promise.resolve();
    const finish = (err?: unknown) => {
      clearInterval(timer);
      stop.removeEventListener("abort", onStop);
      if (err === undefined) resolve();
      else reject(err instanceof Error ? err : new Error("heartbeat failed", { cause: err }));
    };
    const onStop = () => finish();
    const timer = setInterval(() => {
      beat = beat.then(() => batch.heartbeat()).catch(finish);
    }, intervalMs);
    stop.addEventListener("abort", onStop, { once: true });
    void done.then(onStop);
  });
}
