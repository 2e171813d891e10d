// What a channel worker's deliveries came to, counted where they happen (one set per worker,
// shared by its handlers) and logged when the worker stops. The outcomes and re-claims are the
// registry's herald_deliveries_total and herald_lease_takeovers_total too (src/metrics/delivery.ts),
// counted by the same calls (outcome.ts `reportOutcome`, the handler's claim), so the tally logged
// at stop and /metrics never disagree; the rest (skips, lease waits, store retries) is only here.

export interface DeliveryCounters {
  /** Attempts claimed (including re-claims). */
  claimed: number;
  /** Re-claims of an attempt whose previous holder's lease expired: it may have sent already. */
  resentAfterLostOutcome: number;
  sent: number;
  retried: number;
  failed: number;
  deadLettered: number;
  /** Records with nothing to do: duplicates, past attempts, canceled or finished notifications. */
  skipped: number;
  /** Records that waited for another worker's live claim (once each, however many times it looked again). */
  leaseWaits: number;
  /** Outcomes not stored because the claim had been taken over meanwhile. */
  outcomesLost: number;
  /** Database operations retried after a failure. */
  storeRetries: number;
  /** Records that are not a usable Dispatch (undecodable, no id, attempt 0): logged and skipped. */
  malformed: number;
}

export const newCounters = (): DeliveryCounters => ({
  claimed: 0,
  resentAfterLostOutcome: 0,
  sent: 0,
  retried: 0,
  failed: 0,
  deadLettered: 0,
  skipped: 0,
  leaseWaits: 0,
  outcomesLost: 0,
  storeRetries: 0,
  malformed: 0,
});
