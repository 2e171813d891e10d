import type pg from "pg";
import { Status } from "../../gen/herald/v1/notification_pb.js";
import { inTransaction } from "./db.js";
import { writeDeadLetter } from "./dead-letter-record.js";
import { databaseUnavailable, withStoreErrors } from "./errors.js";
import { createGroupCommit } from "./group-commit.js";
import type { NotificationRow } from "./rows.js";
import { applyTakenReceipts, deliveredOnSend, takePendingReceipts, type TakenReceipt } from "./receipts.js";
import { transitionWrites, writeTransitions } from "./transitions.js";

// The workers' side of the notifications table: claiming one attempt and
// storing its outcome. Both are guarded UPDATEs, so a redelivered Kafka
// record, a second worker or the scheduler's stale-claim sweep can race them
// freely: whoever's guard no longer matches changes nothing. Concurrent claims
// (and outcomes) of one process are group-committed: one transaction each.
//
// Leases are measured on the database clock (now()), the one clock every
// worker and scheduler shares, so host clock skew cannot make a live claim
// look expired.

export type ClaimResult =
  /** The attempt is ours. `reclaimed`: it was SENDING under an expired lease, so it may have been sent already. */
  | { kind: "claimed"; row: NotificationRow; reclaimed: boolean }
  /** Another worker holds a live claim on this attempt; it expires in `leaseLeftMs`. */
  | { kind: "leased"; leaseLeftMs: number }
  /** Nothing to do: past this attempt, terminal, canceled, or unknown (`status` undefined). */
  | { kind: "stale"; status: Status | undefined; attempts: number };

/**
 * `provider`: the configured provider that accepted the message (stored on the notification and
 * its SENT event), or whose failure it was (on the event only; '' or absent: none was involved).
 * `deliveredBy`: the provider is the destination (a webhook receiver's 2xx), so SENT → DELIVERED at once.
 */
export type Outcome = (
  | { kind: "sent"; providerMessageId: string; detail: string; provider: string; deliveredBy?: string }
  | { kind: "retry"; nextAttemptAt: Date; error: string }
  /** Permanent failure: FAILED, with a dead letter. */
  | { kind: "failed"; error: string }
  /** Transient failure of the last attempt: DEAD_LETTERED, with a dead letter. */
  | { kind: "dead"; error: string }
) & { provider?: string };

export interface DeliveryStore {
  /** SENDING for attempt `attempt` if the row is QUEUED for it, or SENDING for it under an expired lease. */
  claim(input: { id: string; attempt: number; now: Date; detail?: string }): Promise<ClaimResult>;
  /** Stores the outcome of our claim; undefined when the claim was no longer ours (the row moved on). */
  finish(input: { id: string; attempt: number; now: Date; outcome: Outcome }): Promise<NotificationRow | undefined>;
  /**
   * Gives a claim up without an outcome (shutdown before the send finished): the lease ends now,
   * so the redelivered record can be claimed at once instead of after the lease. Returns whether it was ours.
   */
  release(input: { id: string; attempt: number }): Promise<boolean>;
  /**
   * Extends the lease of claims that are still ours and live (SENDING for that attempt, lease not
   * yet ended) to leaseMs from now. Rows being written right now are skipped, never waited for:
   * their claim is ending anyway. Returns how many were renewed.
   */
  renew(claims: readonly { id: string; attempt: number }[]): Promise<number>;
}

export interface DeliveryStoreDeps {
  pool: pg.Pool;
  /** How long a claim holds. */
  leaseMs: number;
  /**
   * Claims, and outcomes, of concurrent deliveries share one transaction each (group commit),
   * so a worker with 32 sends in flight pays one round trip sequence and one fsync per batch
   * instead of per message. @defaultValue { maxBatch: 64, maxDelayMs: 1 }
   */
  batch?: { maxBatch: number; maxDelayMs: number };
  /** Publish each claim's SENDING event to herald.status; false: store it only (config.streamSending). @defaultValue true */
  streamSending?: boolean;
}

type ClaimedRow = NotificationRow & { from_status: Status };

interface ClaimInput {
  id: string;
  attempt: number;
  now: Date;
  detail?: string;
}

interface FinishInput {
  id: string;
  attempt: number;
  now: Date;
  outcome: Outcome;
}

const outcomeStatus = {
  sent: Status.SENT,
  retry: Status.RETRYING,
  failed: Status.FAILED,
  dead: Status.DEAD_LETTERED,
} as const;

/**
 * Why a claim of `attempt` did not take the row, from the row as read after the claim's UPDATE
 * (undefined: there is none). Still SENDING for this attempt is "leased" even when the lease ran
 * out between the UPDATE and the read (a negative lease left): the caller claims again at once and
 * takes it over. Calling it stale would skip the record and leave the notification to the
 * stale-claim sweep.
 */
export function unclaimed(row: { status: Status; attempts: number; lease_left_ms: number | null } | undefined, attempt: number): Exclude<ClaimResult, { kind: "claimed" }> {
  if (!row) return { kind: "stale", status: undefined, attempts: 0 };
  if (row.status === Status.SENDING && row.attempts === attempt) {
    return { kind: "leased", leaseLeftMs: Math.max(0, Math.ceil(row.lease_left_ms ?? 0)) };
  }
  return { kind: "stale", status: row.status, attempts: row.attempts };
}

// A closed store is the database going away for this process (shutdown): callers wait or give up as for an outage.
const closedError = () => databaseUnavailable("delivery store is closed");

export function createDeliveryStore(deps: DeliveryStoreDeps): DeliveryStore & { close(): Promise<void> } {
  const { pool, leaseMs, streamSending = true } = deps;
  const { maxBatch, maxDelayMs } = deps.batch ?? { maxBatch: 64, maxDelayMs: 1 };

  const claims = createGroupCommit<ClaimInput, ClaimResult>({
    maxBatch,
    maxDelayMs,
    closedError,
    flush: (items) => withStoreErrors(() => claimBatch(items)),
  });
  const outcomes = createGroupCommit<FinishInput, NotificationRow | undefined>({
    maxBatch,
    maxDelayMs,
    closedError,
    flush: (items) => withStoreErrors(() => finishBatch(items)),
  });

  async function claimBatch(items: readonly ClaimInput[]): Promise<PromiseSettledResult<ClaimResult>[]> {
    // One claim per notification per batch: a second one (cannot happen through the keyed
    // runner, which runs one recipient's records one at a time) is answered by the read below.
    const seen = new Set<string>();
    const unique = items.filter((i) => !seen.has(i.id.toLowerCase()) && seen.add(i.id.toLowerCase()));
    const claimed = await inTransaction(pool, async (client) => {
      // Rows are locked in id order, so two workers' batches wait for each other instead of
      // deadlocking. The self-join reads the status each row had before the UPDATE, under the
      // UPDATE's own row lock, so `reclaimed` is exact. A record's claim succeeds only for the
      // attempt it names: from QUEUED, or from SENDING of the same attempt whose lease expired.
      const result = await client.query<ClaimedRow>(
        `UPDATE notifications n
         SET status = $4, attempts = old.attempt, lease_until = now() + $5 * interval '1 millisecond',
             last_sequence = n.last_sequence + 1, updated_at = old.at, next_attempt_at = NULL
         FROM (SELECT o.id, o.status, i.attempt, i.at
               FROM notifications o JOIN unnest($1::uuid[], $2::int[], $3::timestamptz[]) AS i(id, attempt, at) ON o.id = i.id
               ORDER BY o.id FOR UPDATE OF o) old
         WHERE n.id = old.id
           AND ((n.status = $6 AND n.attempts = old.attempt - 1) OR (n.status = $4 AND n.attempts = old.attempt AND n.lease_until < now()))
         RETURNING n.*, old.status AS from_status`,
        [unique.map((i) => i.id), unique.map((i) => i.attempt), unique.map((i) => i.now), Status.SENDING, leaseMs, Status.QUEUED],
      );
      const byId = new Map(result.rows.map((row) => [row.id, row]));
      // Events in the batch's order, so one notification's sequence numbers stay in order.
      const writes = unique.flatMap((item) => {
        const row = byId.get(item.id.toLowerCase());
        if (!row) return [];
        const why = item.detail ?? (row.from_status === Status.SENDING ? "re-claimed after an expired lease" : "claimed");
        return [transitionWrites(row, { detail: why, publish: streamSending })];
      });
      await writeTransitions(client, writes);
      return byId;
    });
    // Why not, for those that were not claimed: one read, after the fact. A race may have
    // changed it since; the caller acts on this and, when told to wait, claims again anyway.
    const firstOf = new Set(unique);
    const missed = items.filter((i) => !firstOf.has(i) || !claimed.has(i.id.toLowerCase()));
    const current = new Map<string, { status: Status; attempts: number; lease_left_ms: number | null }>();
    if (missed.length > 0) {
      const found = await pool.query<{ id: string; status: Status; attempts: number; lease_left_ms: number | null }>(
        `SELECT id, status, attempts, (extract(epoch FROM lease_until - now()) * 1000)::float8 AS lease_left_ms
         FROM notifications WHERE id = ANY($1::uuid[])`,
        [missed.map((i) => i.id)],
      );
      for (const row of found.rows) current.set(row.id, row);
    }
    return items.map((item): PromiseSettledResult<ClaimResult> => {
      const row = firstOf.has(item) ? claimed.get(item.id.toLowerCase()) : undefined;
      if (row) {
        const { from_status, ...rest } = row;
        return { status: "fulfilled", value: { kind: "claimed", row: rest, reclaimed: from_status === Status.SENDING } };
      }
      return { status: "fulfilled", value: unclaimed(current.get(item.id.toLowerCase()), item.attempt) };
    });
  }

  async function finishBatch(items: readonly FinishInput[]): Promise<PromiseSettledResult<NotificationRow | undefined>[]> {
    const finished = await inTransaction(pool, async (client) => {
      // Locked in id order first (see claimBatch), then updated where the claim is still ours.
      const result = await client.query<NotificationRow>(
        `WITH input AS (
           SELECT * FROM unnest($1::uuid[], $2::int[], $3::smallint[], $4::timestamptz[], $5::timestamptz[], $6::text[], $7::text[], $9::text[])
             AS i(id, attempt, status, at, next_attempt_at, error, provider_message_id, provider)),
         locked AS (
           SELECT o.id FROM notifications o JOIN input i ON o.id = i.id ORDER BY o.id FOR UPDATE OF o)
         UPDATE notifications n
         SET status = i.status, lease_until = NULL, last_sequence = n.last_sequence + 1, updated_at = i.at,
             next_attempt_at = i.next_attempt_at, last_error = i.error,
             provider_message_id = coalesce(i.provider_message_id, n.provider_message_id),
             provider = coalesce(i.provider, n.provider)
         FROM input i
         WHERE n.id = i.id AND n.id IN (SELECT id FROM locked) AND n.status = $8 AND n.attempts = i.attempt
         RETURNING n.*`,
        [
          items.map((i) => i.id),
          items.map((i) => i.attempt),
          items.map((i) => outcomeStatus[i.outcome.kind]),
          items.map((i) => i.now),
          items.map((i) => (i.outcome.kind === "retry" ? i.outcome.nextAttemptAt : null)),
          items.map((i) => (i.outcome.kind === "sent" ? "" : i.outcome.error)),
          items.map((i) => (i.outcome.kind === "sent" ? i.outcome.providerMessageId : null)),
          Status.SENDING,
          // Only the provider that accepted it is the notification's; a failure's is on its event.
          items.map((i) => (i.outcome.kind === "sent" ? i.outcome.provider : null)),
        ],
      );
      const byId = new Map(result.rows.map((row) => [row.id, row]));
      const writes = items.flatMap((item) => {
        const row = byId.get(item.id.toLowerCase());
        if (!row) return [];
        const { outcome } = item;
        return [transitionWrites(row, { detail: outcome.kind === "sent" ? outcome.detail : outcome.error, provider: outcome.provider ?? "" })];
      });
      // After SENT, in the same transaction: a destination's own answer (webhook 2xx), or the
      // receipts that arrived before SENT was stored (store/receipts.ts says why this is race-free),
      // taken in the transitions' own statement.
      const sent = items.flatMap((item) => {
        const row = byId.get(item.id.toLowerCase());
        return row && item.outcome.kind === "sent" ? [{ row, item, outcome: item.outcome }] : [];
      });
      const relayed = sent.filter((s) => !s.outcome.deliveredBy).map((s) => s.row);
      const taken = await writeTransitions<TakenReceipt>(client, writes, takePendingReceipts(relayed.map((r) => r.id)));
      await deliveredOnSend(
        client,
        sent.flatMap(({ row, item, outcome }) => (outcome.deliveredBy ? [{ row, provider: outcome.deliveredBy, at: item.now }] : [])),
      );
      await applyTakenReceipts(client, relayed, taken);
      for (const item of items) {
        const row = byId.get(item.id.toLowerCase());
        if (row && (item.outcome.kind === "failed" || item.outcome.kind === "dead")) {
          await writeDeadLetter(client, row, { now: item.now, correlationId: row.correlation_id });
        }
      }
      return byId;
    });
    return items.map((item) => ({ status: "fulfilled", value: finished.get(item.id.toLowerCase()) }));
  }

  return {
    claim: (input) => claims.submit(input),
    finish: (input) => outcomes.submit(input),

    release: ({ id, attempt }) =>
      withStoreErrors(async () => {
        const result = await pool.query(
          `UPDATE notifications SET lease_until = now()
           WHERE id = $1 AND status = $3 AND attempts = $2 AND lease_until > now()`,
          [id, attempt, Status.SENDING],
        );
        return result.rowCount === 1;
      }),

    renew: (held) =>
      withStoreErrors(async () => {
        const result = await pool.query(
          `UPDATE notifications n SET lease_until = now() + $4 * interval '1 millisecond'
           FROM (SELECT o.id FROM notifications o
                 JOIN unnest($1::uuid[], $2::int[]) AS i(id, attempt) ON o.id = i.id AND o.attempts = i.attempt
                 WHERE o.status = $3 AND o.lease_until > now()
                 ORDER BY o.id FOR UPDATE OF o SKIP LOCKED) live
           WHERE n.id = live.id`,
          [held.map((c) => c.id), held.map((c) => c.attempt), Status.SENDING, leaseMs],
        );
        return result.rowCount ?? 0;
      }),

    async close() {
      await Promise.all([claims.close(), outcomes.close()]);
    },
  };
}
