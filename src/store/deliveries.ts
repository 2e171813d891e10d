import type pg from "pg";
import { Status } from "../../gen/herald/v1/notification_pb.js";
import { inTransaction } from "./db.js";
import { writeDeadLetter } from "./dead-letters.js";
import { withStoreErrors } from "./errors.js";
import { transitionWrites, writeTransitions, type NotificationRow } from "./records.js";

// The workers' side of the notifications table: claiming one attempt and
// storing its outcome. Both are single guarded UPDATEs, so a redelivered
// Kafka record, a second worker or the scheduler's stale-claim sweep can race
// them freely: whoever's guard no longer matches changes nothing.
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

export type Outcome =
  | { kind: "sent"; providerMessageId: string; detail: string }
  | { kind: "retry"; nextAttemptAt: Date; error: string }
  /** Permanent failure: FAILED, with a dead letter. */
  | { kind: "failed"; error: string }
  /** Transient failure of the last attempt: DEAD_LETTERED, with a dead letter. */
  | { kind: "dead"; error: string };

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
}

export interface DeliveryStoreDeps {
  pool: pg.Pool;
  /** How long a claim holds. */
  leaseMs: number;
}

type ClaimedRow = NotificationRow & { from_status: Status };

const outcomeStatus = {
  sent: Status.SENT,
  retry: Status.RETRYING,
  failed: Status.FAILED,
  dead: Status.DEAD_LETTERED,
} as const;

export function createDeliveryStore(deps: DeliveryStoreDeps): DeliveryStore {
  const { pool, leaseMs } = deps;

  return {
    claim: ({ id, attempt, now, detail }) =>
      withStoreErrors(async () => {
        const row = await inTransaction(pool, async (client) => {
          // The self-join reads the status the row had before the UPDATE, under
          // the UPDATE's own row lock, so `reclaimed` is exact.
          const result = await client.query<ClaimedRow>(
            `UPDATE notifications n
             SET status = $3, attempts = $2, lease_until = now() + $4 * interval '1 millisecond',
                 last_sequence = n.last_sequence + 1, updated_at = $5, next_attempt_at = NULL
             FROM (SELECT id, status FROM notifications WHERE id = $1 FOR UPDATE) old
             WHERE n.id = old.id
               AND ((n.status = $6 AND n.attempts = $2 - 1) OR (n.status = $3 AND n.attempts = $2 AND n.lease_until < now()))
             RETURNING n.*, old.status AS from_status`,
            [id, attempt, Status.SENDING, leaseMs, now, Status.QUEUED],
          );
          const claimed = result.rows[0];
          if (!claimed) return undefined;
          const reclaimed = claimed.from_status === Status.SENDING;
          const why = detail ?? (reclaimed ? "re-claimed after an expired lease" : "claimed");
          await writeTransitions(client, [transitionWrites(claimed, { detail: why })]);
          return claimed;
        });
        if (row) {
          const { from_status, ...rest } = row;
          return { kind: "claimed", row: rest, reclaimed: from_status === Status.SENDING };
        }
        // Why not: one read, after the fact. A race may have changed it since;
        // the caller acts on this and, when told to wait, claims again anyway.
        const found = await pool.query<{ status: Status; attempts: number; lease_left_ms: number | null }>(
          `SELECT status, attempts,
                  (extract(epoch FROM lease_until - now()) * 1000)::float8 AS lease_left_ms
           FROM notifications WHERE id = $1`,
          [id],
        );
        const current = found.rows[0];
        if (!current) return { kind: "stale", status: undefined, attempts: 0 };
        if (current.status === Status.SENDING && current.attempts === attempt && (current.lease_left_ms ?? 0) >= 0) {
          return { kind: "leased", leaseLeftMs: Math.max(0, Math.ceil(current.lease_left_ms ?? 0)) };
        }
        return { kind: "stale", status: current.status, attempts: current.attempts };
      }),

    finish: ({ id, attempt, now, outcome }) =>
      withStoreErrors(() =>
        inTransaction(pool, async (client) => {
          const status = outcomeStatus[outcome.kind];
          const error = outcome.kind === "sent" ? "" : outcome.error;
          const result = await client.query<NotificationRow>(
            `UPDATE notifications
             SET status = $3, lease_until = NULL, last_sequence = last_sequence + 1, updated_at = $4,
                 next_attempt_at = $5, last_error = $6,
                 provider_message_id = CASE WHEN $7::text IS NULL THEN provider_message_id ELSE $7::text END
             WHERE id = $1 AND status = $8 AND attempts = $2
             RETURNING *`,
            [
              id,
              attempt,
              status,
              now,
              outcome.kind === "retry" ? outcome.nextAttemptAt : null,
              error,
              outcome.kind === "sent" ? outcome.providerMessageId : null,
              Status.SENDING,
            ],
          );
          const row = result.rows[0];
          if (!row) return undefined;
          await writeTransitions(client, [transitionWrites(row, { detail: outcome.kind === "sent" ? outcome.detail : error })]);
          if (outcome.kind === "failed" || outcome.kind === "dead") {
            await writeDeadLetter(client, row, { now, correlationId: row.correlation_id });
          }
          return row;
        }),
      ),

    release: ({ id, attempt }) =>
      withStoreErrors(async () => {
        const result = await pool.query(
          `UPDATE notifications SET lease_until = now()
           WHERE id = $1 AND status = $3 AND attempts = $2 AND lease_until > now()`,
          [id, attempt, Status.SENDING],
        );
        return result.rowCount === 1;
      }),
  };
}
