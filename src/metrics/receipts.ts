import type { Registry } from "prom-client";
import { counterIn } from "./instruments.js";

// Receipts received on the API's HTTP listener (src/receipts/), by provider and what came of
// them. Each receipt counts once under its outcome; a receipt that also suppressed an address
// (hard bounce, complaint) counts once more under "suppressed".

export type ReceiptOutcome =
  /** SENT → DELIVERED. */
  | "delivered"
  /** SENT → FAILED (undelivered, bounced, dropped). */
  | "failed"
  /** An address suppressed for the tenant (counted besides the receipt's own outcome). */
  | "suppressed"
  /** Arrived before the SENT it follows was stored: kept, applied with that SENT. */
  | "pending"
  /** Changes nothing: an in-between status, an event type Herald does not use, a repeat or a late one. */
  | "ignored"
  /** Names no notification of ours, another tenant's or another message of it. */
  | "unmatched"
  /** Unsigned, wrongly signed, stale or malformed: answered 403 or 400. */
  | "refused";

export type ReceiptMetrics = (provider: string, outcome: ReceiptOutcome) => void;

export function createReceiptMetrics(registry: Registry): ReceiptMetrics {
  const total = counterIn(registry, {
    name: "herald_receipts_total",
    help: "Provider receipts (status callbacks, email events) received, by provider and outcome.",
    labelNames: ["provider", "outcome"],
  });
  return (provider, outcome) => total.labels(provider, outcome).inc();
}
