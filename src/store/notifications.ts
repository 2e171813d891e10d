import type pg from "pg";
import { Status, type Channel, type Notification, type StatusEvent } from "../../gen/herald/v1/notification_pb.js";
import { InvalidInputError, OverloadedError, UnavailableError } from "../errors.js";
import type { Logger } from "../log.js";
import { acceptBatch, unstorableField, type AcceptOutcome } from "./accept.js";
import type { AcceptInput } from "./accept-statement.js";
import { cancelNotification, type CancelOutcome } from "./cancel.js";
import { inTransaction, isConnectionFailure } from "./db.js";
import { databaseUnavailable, withStoreErrors } from "./errors.js";
import { AbandonedError, createGroupCommit } from "./group-commit.js";
import { findByIdempotencyKey, getNotification } from "./notification-reads.js";
import { CHANNELS, channelName } from "../kafka/topics.js";
import type { AcceptMetrics, Inc } from "../metrics/api.js";

// The notification store: the accept path (group-committed), reads, and Cancel. Every status
// change writes the row, its status event and its outbox records in one transaction (see
// transitions.ts).

export interface AcceptOptions {
  /**
   * Whether the caller has given up (cancelled, or its deadline passed). Checked when the call
   * arrives, when its batch forms and once more inside the transaction just before the
   * insert; a call found abandoned rejects with AbandonedError and nothing of it is written.
   * Past that last check it commits whatever happens to the caller.
   */
  abandoned?: () => boolean;
  /** How long the caller still waits, in ms (undefined: no deadline): refused at once if the accept queue cannot make it. */
  timeLeftMs?: () => number | undefined;
}

export interface NotificationStore {
  /** Rejects with OverloadedError at once when the accept queue is full. */
  accept(input: AcceptInput, opts?: AcceptOptions): Promise<AcceptOutcome>;
  /** Whether accept would refuse a caller with `timeLeftMs` now: its retry hint in ms, else undefined (see GroupCommit.refusal). */
  acceptRefusal(timeLeftMs: number | undefined): number | undefined;
  get(tenant: string, id: string): Promise<{ notification: Notification; history: StatusEvent[] } | undefined>;
  /** The notification a live idempotency key names if the same request created it (notification-reads.ts). */
  findByIdempotencyKey(tenant: string, key: string, requestHash: Buffer, now: Date): Promise<Notification | undefined>;
  cancel(tenant: string, id: string, opts: { now: Date; correlationId: string }): Promise<CancelOutcome>;
  /** Flushes the pending batch, then refuses new work. Idempotent. */
  close(): Promise<void>;
}

export interface NotificationStoreDeps {
  pool: pg.Pool;
  /**
   * Group commit: flush when maxBatch accepts wait or the oldest has waited maxDelayMs; beyond
   * maxQueued accepts waiting for a flush, refuse with OverloadedError.
   */
  commit: {
    maxBatch: number;
    maxDelayMs: number;
    /** @defaultValue 1 */ maxInFlight?: number;
    /** @defaultValue Infinity */ maxQueued?: number;
  };
  /** How long an idempotency key holds (accept.ts). @defaultValue 0, for ever */
  idempotencyTtlMs?: number;
  log: Logger;
  /** The accept path's metrics (herald_accepted_total, batch size, flush time, queue depth, admission refusals); none: not recorded. */
  metrics?: AcceptMetrics;
}

/** One accept waiting in the group commit. */
interface Call {
  input: AcceptInput;
  abandoned: (() => boolean) | undefined;
  timeLeftMs: (() => number | undefined) | undefined;
}

export function createNotificationStore(deps: NotificationStoreDeps): NotificationStore {
  const { pool, log, metrics } = deps;
  const ttlMs = deps.idempotencyTtlMs ?? 0;
  let closed = false;
  const accepted = metrics && acceptedCounters(metrics);

  // One batch is one transaction. If it fails for a reason other than the
  // database being unavailable, some input was refused by PostgreSQL; retry
  // the halves so that input fails alone and everyone else's request commits.
  async function flush(calls: readonly Call[]): Promise<PromiseSettledResult<AcceptOutcome>[]> {
    const started = performance.now();
    let began = started;
    let inserted = 0;
    try {
      // An explicit transaction, though the writes are one statement: a statement in autocommit
      // that outlives its client (connection cut while it waits on a lock) still commits, and
      // the caller would be told UNAVAILABLE about a notification that was stored. Here no
      // COMMIT comes, so it rolls back.
      const outcomes = await withStoreErrors(() =>
        inTransaction(pool, async (client) => {
          // The last look before the insert: a pool connection can take a while to come under
          // load, and a caller that gave up meanwhile must not be stored.
          const live = calls.map((c) => !c.abandoned?.());
          const inputs = calls.filter((_, i) => live[i]).map((c) => c.input);
          inserted = inputs.length;
          const stored = inputs.length > 0 ? await acceptBatch(client, inputs, ttlMs) : [];
          let next = 0;
          return live.map((alive): PromiseSettledResult<AcceptOutcome> =>
            alive ? { status: "fulfilled", value: stored[next++]! } : { status: "rejected", reason: new AbandonedError() },
          );
        }, metrics && { begins: () => void (began = performance.now()) }),
      );
      const ended = performance.now();
      log.debug({ size: calls.length, ms: Math.round(ended - started) }, "accept batch committed");
      if (metrics && accepted) record(metrics, accepted, calls, outcomes, inserted, (ended - began) / 1000);
      return outcomes;
    } catch (err) {
      if (err instanceof UnavailableError || calls.length === 1) {
        return calls.map(() => ({ status: "rejected", reason: err }));
      }
      log.warn({ err, size: calls.length }, "accept batch failed; retrying in halves to isolate the input");
      const mid = calls.length >> 1;
      return [...(await flush(calls.slice(0, mid))), ...(await flush(calls.slice(mid)))];
    }
  }

  const maxQueued = deps.commit.maxQueued ?? Infinity;
  const commits = createGroupCommit<Call, AcceptOutcome>({
    ...deps.commit,
    flush,
    closedError: () => databaseUnavailable("notification store is closed"),
    // The database did not answer (not: answered slowly): whoever waits behind that batch fails now.
    sharesFailure: (err) => err instanceof UnavailableError && isConnectionFailure(err.cause),
    overloadedError: (retryAfterMs) => new OverloadedError(`accept queue full (${maxQueued} waiting)`, retryAfterMs),
    rejected: metrics?.rejected,
    abandoned: (call) => call.abandoned?.() ?? false,
    timeLeftMs: (call) => call.timeLeftMs?.(),
    // Once per episode, not per refused call: under overload that would be thousands a second.
    onShedding: (active, shed) =>
      active
        ? log.warn({ maxQueued }, "accept queue full: refusing Create and Schedule with RESOURCE_EXHAUSTED")
        : log.info({ shed }, "accept queue has room again"),
  });

  const untrackDepth = metrics?.trackQueueDepth(() => commits.depth());

  function refuseIfClosed(): void {
    if (closed) throw databaseUnavailable("notification store is closed");
  }

  return {
    accept(input, opts) {
      // Checked before batching: a row PostgreSQL refuses would fail (and
      // retry) everyone else's batch too.
      const field = unstorableField(input);
      if (field) {
        return Promise.reject(new InvalidInputError(`${field}: must not contain NUL or unpaired surrogates`));
      }
      return commits.submit({ input, abandoned: opts?.abandoned, timeLeftMs: opts?.timeLeftMs });
    },

    acceptRefusal: (timeLeftMs) => commits.refusal(timeLeftMs),

    async get(tenant, id) {
      refuseIfClosed();
      return getNotification(pool, tenant, id);
    },

    async findByIdempotencyKey(tenant, key, requestHash, now) {
      refuseIfClosed();
      return findByIdempotencyKey(pool, { tenant, key, requestHash, now, ttlMs: deps.idempotencyTtlMs ?? 0 });
    },

    async cancel(tenant, id, opts) {
      refuseIfClosed();
      return cancelNotification(pool, tenant, id, opts);
    },

    close() {
      closed = true;
      untrackDepth?.();
      return commits.close();
    },
  };
}

type AcceptedCounters = ReadonlyMap<Channel, { create: Inc; schedule: Inc }>;

/** herald_accepted_total's children, bound once per channel and method. */
function acceptedCounters(metrics: AcceptMetrics): AcceptedCounters {
  return new Map(CHANNELS.map((c) => [c, { create: metrics.accepted(channelName(c), "create"), schedule: metrics.accepted(channelName(c), "schedule") }]));
}

/** One committed transaction: its size and time, each new row by channel and method, the calls found abandoned inside it. */
function record(metrics: AcceptMetrics, accepted: AcceptedCounters, calls: readonly Call[], outcomes: PromiseSettledResult<AcceptOutcome>[], inserted: number, seconds: number): void {
  metrics.batchSize.observe(inserted);
  metrics.flushSeconds.observe(seconds);
  outcomes.forEach((o, i) => {
    // A replay of a stored request (same key, same request) is answered from the row: not accepted again.
    if (o.status === "rejected") metrics.rejected.abandoned.inc();
    else if (o.value.kind === "created") {
      const { input } = calls[i]!;
      const counters = accepted.get(input.spec.channel);
      (input.status === Status.SCHEDULED ? counters?.schedule : counters?.create)?.inc();
    }
  });
}
