import { HeraldError } from "../errors.js";

// How a worker stops the deliveries it runs: first it stops starting things (claims, waits),
// then, when the drain period ends, it cancels what is still in flight. A delivery cut short
// either way is abandoned, never given an outcome: its record is delivered again.

export interface DeliverySignals {
  /** Aborted when the worker stops taking work: nothing new is claimed, waits end. */
  stop: AbortSignal;
  /** Aborted when the drain period ends: sends in flight are cancelled, storing stops retrying. */
  abort: AbortSignal;
}

/**
 * The worker stopped before this record was finished; its offset must not be committed. Not
 * retriable here: this process takes no more work, and Kafka redelivers the record to the
 * partition's next owner.
 */
export class DeliveryAbandonedError extends HeraldError {
  override name = "DeliveryAbandonedError";
  readonly retriable = false;
}

export const abandonedWhileWaiting = (): DeliveryAbandonedError => new DeliveryAbandonedError("worker stopped while waiting");
