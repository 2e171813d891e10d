import type { ChannelDeliveryMetrics } from "../metrics/delivery.js";

// What a channel worker's deliveries came to, counted where they happen (one set per worker,
// shared by its handlers) and logged when the worker stops. The one home of delivery counts:
// built with the registry's instruments (`newCounters(metrics)`), the re-claims counted here are
// counted there too (herald_lease_takeovers_total), so the tally logged at stop and /metrics never
// disagree. Outcomes carry a provider label the tally has no room for: reportOutcome
// (outcome.ts) counts each in both at once. The rest (skips, lease waits, store retries) has no
// metric in the catalogue and stays here.

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

export function newCounters(metrics?: Pick<ChannelDeliveryMetrics, "leaseTakeover">): DeliveryCounters {
  const counters: DeliveryCounters = {
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
  };
  if (!metrics) return counters;
  backedBy(counters, "resentAfterLostOutcome", () => metrics.leaseTakeover());
  return counters;
}

/**
 * Makes `counters[field]` an accessor whose every increment (`counters.sent++`) also records
 * into the registry, so the places that count need not know of metrics. Still a plain,
 * enumerable number to read, compare and log.
 */
function backedBy(counters: DeliveryCounters, field: keyof DeliveryCounters, record: () => void): void {
  let value = counters[field];
  Object.defineProperty(counters, field, {
    enumerable: true,
    get: () => value,
    set: (next: number) => {
      for (; value < next; value++) record();
      value = next;
    },
  });
}
