import { fromBinary } from "@bufbuild/protobuf";
import type { Dispatch } from "../../gen/herald/v1/dispatch_pb.js";
import { NotificationSpecSchema, Priority } from "../../gen/herald/v1/notification_pb.js";
import { systemClock, type Clock } from "../clock.js";
import { isUuid } from "../domain/ids.js";
import { isRetriable, PermanentError } from "../errors.js";
import { channelName } from "../kafka/topics.js";
import type { Logger } from "../log.js";
import type { BackoffOptions } from "../loop/backoff.js";
import { NO_PROVIDER, type ChannelDeliveryMetrics } from "../metrics/delivery.js";
import { sleep } from "../loop/sleep.js";
import type { DeliveryStore, Outcome } from "../store/deliveries.js";
import type { NotificationRow } from "../store/rows.js";
import type { Renderer } from "../templates/notification-renderer.js";
import { newCounters, type DeliveryCounters } from "./delivery-counters.js";
import { abandonedWhileWaiting, DeliveryAbandonedError, type DeliverySignals } from "./delivery-signals.js";
import { failedOutcome, reportOutcome } from "./outcome.js";
import { createHighFirst, type HighFirst } from "./high-first.js";
import { attributeFailure, failedProvider } from "./providers/attribution.js";
import { type Provider, type RenderedMessage, type SendResult } from "./providers/provider.js";
import type { LeaseKeeper } from "./lease-keeper.js";
import type { RateLimiter } from "./rate-limit.js";
import { SlotWaitAbortedError, type Slots } from "./slots.js";
import { createStoreRetry } from "./store-retry.js";
import { traceOutcome } from "../tracing/spans.js";

// One Dispatch, one attempt: claim it, render, take a send slot and a
// rate-limit token, send, store the outcome. Only the token and the send hold
// a send slot: claims and outcomes wait on group commits, and a provider slot
// held through them would sit idle. The handler resolves only once the outcome (or the fact
// that there was nothing to do) is stored, so the worker may commit the Kafka
// offset; it rejects only when the worker stops before that, and then the
// record is redelivered. Provider failures are outcomes, never rejections.
// Our own database failing is neither: the handler waits and tries again
// (store-retry.ts); what a failed send comes to is outcome.ts.

export interface DeliveryHandlerDeps {
  store: DeliveryStore;
  renderer: Renderer;
  provider: Provider;
  limiter: RateLimiter;
  /** Bounds the provider sends in flight (shared by every handler of one provider). @defaultValue no bound */
  sends?: Slots;
  backoff: BackoffOptions;
  log: Logger;
  /** @defaultValue systemClock */
  clock?: Clock;
  /** @defaultValue Math.random */
  random?: () => number;
  /**
   * Longest single wait for another worker's claim; the claim is tried again after it. Short:
   * after a rebalance the holder is usually the partition's previous owner finishing a send,
   * and the record is skipped as soon as that outcome is stored, long before the lease ends.
   * @defaultValue 500
   */
  maxLeaseWaitMs?: number;
  /** Cap of the pause between retries while the database fails. @defaultValue 5000 */
  maxStoreBackoffMs?: number;
  /** Shared by every handler of a worker. @defaultValue fresh counters, backed by `metrics` */
  counters?: DeliveryCounters;
  /**
   * Renews each claim's lease from the claim until its outcome is stored, so a slow send keeps
   * its claim while a dead worker's claims lapse one lease after it died. Without it the lease
   * set by the claim is all there is.
   */
  leases?: LeaseKeeper;
  /**
   * The registry's instruments of this channel (src/metrics/delivery.ts): provider calls, outcomes
   * and e2e time are recorded here, takeovers through the counters this handler makes
   * (`newCounters(metrics)`; counters passed in are not backed by it).
   */
  metrics?: ChannelDeliveryMetrics;
  /** Makes new normal and low records wait while high-priority ones run. @defaultValue no waiting */
  highFirst?: HighFirst;
}

export interface DeliveryHandler {
  handle(dispatch: Dispatch, signals: DeliverySignals): Promise<void>;
  readonly counters: DeliveryCounters;
}

export function createDeliveryHandler(deps: DeliveryHandlerDeps): DeliveryHandler {
  const { store, renderer, provider, limiter, sends, backoff, metrics } = deps;
  const clock = deps.clock ?? systemClock;
  const now = () => new Date(clock.now());
  const random = deps.random ?? Math.random;
  const { maxLeaseWaitMs = 500, maxStoreBackoffMs = 5_000 } = deps;
  const highFirst = deps.highFirst ?? createHighFirst({ maxYieldMs: 0 });
  const counters = deps.counters ?? newCounters(metrics);
  const persist = createStoreRetry({ log: deps.log, onRetry: () => counters.storeRetries++, maxBackoffMs: maxStoreBackoffMs, random });

  async function claim(dispatch: Dispatch, signals: DeliverySignals, log: Logger) {
    const { notificationId: id, attempt } = dispatch;
    for (let waits = 0; ; waits++) {
      const result = await persist(() => store.claim({ id, attempt, now: now() }), signals.stop);
      if (result.kind !== "leased") return result;
      // The holder is alive or its lease has not run out yet: either it stores
      // an outcome (our next claim finds the row moved on) or it dies, stops
      // renewing, and the lease ends: the attempt is then ours. Sends have
      // timeouts, so a live holder's renewals end too.
      if (waits === 0) {
        counters.leaseWaits++;
        log.info({ leaseLeftMs: result.leaseLeftMs }, "another worker holds this attempt; waiting for its outcome or the end of its lease");
      }
      if (!(await sleep(Math.min(result.leaseLeftMs + 50, maxLeaseWaitMs), signals.stop))) throw abandonedWhileWaiting();
    }
  }

  async function attempt(row: NotificationRow, dispatch: Dispatch, signals: DeliverySignals): Promise<Outcome> {
    const spec = fromBinary(NotificationSpecSchema, row.spec);
    if (!spec.recipient) throw new PermanentError("notification has no recipient");
    // Templates live in the database too: a store outage is waited out, not a failed attempt.
    const rendered = await persist(() => renderer.render(row.tenant, spec), signals.abort, (e) => isRetriable(e, false));
    const message: RenderedMessage = {
      notificationId: row.id,
      tenant: row.tenant,
      channel: row.channel,
      recipient: spec.recipient,
      ...rendered,
      labels: row.labels,
      // The same for every attempt and every worker, so a repeat can be dropped by the provider.
      idempotencyKey: row.id,
      attempt: dispatch.attempt,
      category: spec.category,
    };
    // A claimed record still waiting for a send slot when the worker stops is
    // given back (see handle) rather than sent: it has not gone out, so its
    // redelivered record may be claimed at once. PRIORITY_HIGH goes ahead of the others for
    // both the send slot and the rate limit (which may keep a share for it).
    const high = row.priority === Priority.HIGH;
    // Fair slots (slots.ts) serve the tenants waiting for a send round robin.
    const release = sends ? await sends.acquire(signals.stop, { ahead: high, share: row.tenant }) : () => {};
    let result: SendResult;
    try {
      await limiter.take(signals.abort, { high, share: row.tenant });
      const send = () => provider.send(message, signals.abort);
      try {
        result = await (metrics
          ? metrics.providerCall(send, (settled) =>
              settled.status === "fulfilled" ? (settled.value.provider ?? provider.name) : (failedProvider(settled.reason) ?? provider.name),
            )
          : send());
      } catch (err) {
        // The retry or failure event names the provider that failed (a failover provider has said which).
        throw attributeFailure(err, provider.name);
      }
    } finally {
      release();
    }
    // With failover, the provider that accepted it is one of the channel's several.
    const by = result.provider ?? provider.name;
    return {
      kind: "sent",
      providerMessageId: result.providerMessageId,
      detail: `sent via ${by}`,
      provider: by,
      ...(result.delivered ? { deliveredBy: by } : {}),
    };
  }

  async function attemptAndStore(row: NotificationRow, dispatch: Dispatch, signals: DeliverySignals, log: Logger): Promise<void> {
    let outcome: Outcome;
    try {
      outcome = await attempt(row, dispatch, signals);
    } catch (err) {
      if (signals.abort.aborted || err instanceof SlotWaitAbortedError) {
        // Shutting down mid-attempt: whether it went out is unknown (or it
        // surely did not, still waiting for a send slot), so no outcome is
        // invented. Ending the lease lets the redelivered record be claimed
        // (and re-sent under the same idempotency key) at once.
        await store.release({ id: row.id, attempt: dispatch.attempt }).catch(() => false);
        log.warn("worker stopped before the attempt finished; it will be redelivered");
        throw new DeliveryAbandonedError("worker stopped during the attempt", { cause: err });
      }
      // Failures before the send (rendering, no recipient) concern no provider.
      outcome = { ...failedOutcome(err, row, { backoff, random, now: now(), log }), provider: failedProvider(err) ?? "" };
    }

    const stored = await traceOutcome(outcome.kind, () =>
      persist(() => store.finish({ id: row.id, attempt: dispatch.attempt, now: now(), outcome }), signals.abort),
    );
    if (!stored) {
      counters.outcomesLost++;
      log.warn({ outcome: outcome.kind }, "outcome not stored: the claim was taken over meanwhile");
      return;
    }
    // From the notification's due time (deliver_at: a Create's is its created_at, a retry keeps
    // the first due time) to now, when SENT is stored.
    if (outcome.kind === "sent") metrics?.delivered(row.deliver_at.getTime(), clock.now(), row.priority === Priority.HIGH);
    // An outcome no provider was called for (rendering failed, suppressed, every circuit open) is NO_PROVIDER's.
    reportOutcome(outcome, outcome.provider || NO_PROVIDER, counters, log, metrics);
  }

  return {
    counters,
    async handle(dispatch, signals) {
      const channel = dispatch.notification ? safeChannelName(dispatch.notification.channel) : undefined;
      // correlationId (the accepting request's id) and, through the log mixin, trace_id: grep either
      // and find this notification's lines in every role.
      const log = deps.log.child({
        notificationId: dispatch.notificationId,
        tenant: dispatch.tenant,
        channel,
        attempt: dispatch.attempt,
        correlationId: dispatch.correlationId,
      });
      if (!isUuid(dispatch.notificationId) || dispatch.attempt < 1) {
        // It can never match a row; retrying would only block the recipient's lane.
        counters.malformed++;
        log.error("dispatch record without a notification id or attempt; skipping");
        return;
      }
      // High-priority records have the worker to themselves while they run (high-first.ts).
      const high = dispatch.notification?.priority === Priority.HIGH;
      const leave = high ? highFirst.enter() : undefined;
      try {
        if (!high) await highFirst.yieldTo(signals.stop);
        await claimAndAttempt(dispatch, signals, log);
      } finally {
        leave?.();
      }
    },
  };

  async function claimAndAttempt(dispatch: Dispatch, signals: DeliverySignals, log: Logger): Promise<void> {
    const claimed = await claim(dispatch, signals, log);
    if (claimed.kind === "stale") {
      counters.skipped++;
      log.debug({ status: claimed.status, attempts: claimed.attempts }, "nothing to do for this record; skipping");
      return;
    }
    const { row } = claimed;
    counters.claimed++;
    if (claimed.reclaimed) {
      counters.resentAfterLostOutcome++;
      log.warn("re-sending after a lost outcome");
    }
    const unhold = deps.leases?.hold({ id: row.id, attempt: dispatch.attempt });
    try {
      await attemptAndStore(row, dispatch, signals, log);
    } finally {
      unhold?.();
    }
  }
}

function safeChannelName(channel: number): string | undefined {
  try {
    return channelName(channel);
  } catch {
    return undefined;
  }
}
