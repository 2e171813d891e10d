import { HeraldError, isRetriable, TransientError } from "../errors.js";
import type { Logger } from "../log.js";
import type { ChannelDeliveryMetrics } from "../metrics/delivery.js";
import { backoffMs, type BackoffOptions } from "../loop/backoff.js";
import type { Outcome } from "../store/deliveries.js";
import type { NotificationRow } from "../store/rows.js";
import type { DeliveryCounters } from "./delivery-counters.js";

// What a failed attempt comes to. The error decides (STYLE habit 8): what cannot succeed
// fails at once; anything else is retried with backoff, never sooner than the provider's
// Retry-After, until the attempts are spent.

/** Errors and details are stored and published; a provider's message can be long. */
const MAX_DETAIL = 1000;
const bounded = (s: string): string => (s.length > MAX_DETAIL ? `${s.slice(0, MAX_DETAIL - 1)}…` : s);

export interface DecideOptions {
  backoff: BackoffOptions;
  random: () => number;
  now: Date;
  log: Logger;
}

/** The outcome of an attempt that failed with `err`. */
export function failedOutcome(err: unknown, row: NotificationRow, opts: DecideOptions): Outcome {
  const error = bounded(err instanceof Error ? err.message || err.name : String(err));
  if (!isRetriable(err, true)) return { kind: "failed", error };
  if (!(err instanceof HeraldError)) opts.log.warn({ err }, "unclassified send failure; treating it as transient");
  if (row.attempts >= row.max_attempts) return { kind: "dead", error };
  const retryAfterMs = err instanceof TransientError ? (err.retryAfterMs ?? 0) : 0;
  const delayMs = Math.max(retryAfterMs, backoffMs(row.attempts, opts.backoff, opts.random));
  return { kind: "retry", error, nextAttemptAt: new Date(opts.now.getTime() + delayMs) };
}

/**
 * Counts (in the worker's tally and, given `metrics`, herald_deliveries_total under `provider`:
 * the one called, NO_PROVIDER when none was) and logs a stored outcome.
 */
export function reportOutcome(
  outcome: Outcome,
  provider: string,
  counters: DeliveryCounters,
  log: Logger,
  metrics?: Pick<ChannelDeliveryMetrics, "outcome">,
): void {
  metrics?.outcome(outcome.kind === "dead" ? "dead_lettered" : outcome.kind, provider);
  switch (outcome.kind) {
    case "sent":
      counters.sent++;
      log.info({ provider, providerMessageId: outcome.providerMessageId }, "sent");
      break;
    case "retry":
      counters.retried++;
      log.info({ error: outcome.error, nextAttemptAt: outcome.nextAttemptAt }, "send failed; will retry");
      break;
    case "failed":
      counters.failed++;
      log.warn({ error: outcome.error }, "send failed permanently; dead-lettered");
      break;
    case "dead":
      counters.deadLettered++;
      log.warn({ error: outcome.error }, "last attempt failed; dead-lettered");
      break;
  }
}
