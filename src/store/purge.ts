import type pg from "pg";
import { terminalStatuses } from "../domain/status.js";
import { inTransaction } from "./db.js";

// Retention (issue 16 item 7): a terminal notification whose last change is older than the
// retention goes, with everything keyed to it. A batch is one transaction of one statement:
//
// - notifications: only terminal ones (SENT, DELIVERED, FAILED, DEAD_LETTERED, CANCELED), by
//   updated_at, the time of their last change. Nothing non-terminal can be purged: a SCHEDULED,
//   QUEUED, SENDING or RETRYING row can still change. A SENT row can still take a receipt and a
//   FAILED or DEAD_LETTERED one a redrive, and either updates updated_at, so the retention counts
//   from the last thing that happened: a receipt or a redrive after it finds nothing (a receipt is
//   then 'unmatched', a redrive NOT_FOUND).
// - status_events (and through their foreign key status_feed_log), outbox rows (published or
//   not), dead_letters and receipts (foreign keys, ON DELETE CASCADE). Suppressions stay: they are
//   about an address, not a notification (their notification_id then names a purged row).
// - notify_requests, by their own created_at: a Notify's request row (its key, its skipped list)
//   outlives its use, the idempotency window, long before the retention; its notifications carry
//   its id but nothing reads the row through them.
//
// The scan is the partial index notifications_retention (migration 014), whose predicate the
// statement repeats literally. FOR UPDATE SKIP LOCKED: a row a receipt, redrive or erasure holds
// is left for the next batch, never waited for. A transaction-scoped advisory lock keeps one
// purger at a time across every process of the deployment, with no session to hold.

/** Advisory lock key of the purge ("purge" in ASCII). */
export const PURGE_LOCK_KEY = 0x70_75_72_67_65;

/** Rows one batch deleted, per table (status_feed_log, dead_letters and receipts go by cascade). */
export interface PurgeCounts {
  notifications: number;
  statusEvents: number;
  outbox: number;
  /** Notify's request rows (migration 012), by their own age: a request's rows outlive its idempotency window long before. */
  notifyRequests: number;
}

/** A batch's outcome: what it deleted, or `busy` when another purger holds the lock. */
export type PurgeBatch = { kind: "purged"; counts: PurgeCounts } | { kind: "busy" };

// Literal, not a parameter: the planner proves the partial index's predicate from constants only.
const TERMINAL = terminalStatuses.join(", ");

/** Deletes up to `limit` expired terminal notifications and what is keyed to them, in one transaction. */
export async function purgeBatch(
  pool: pg.Pool,
  opts: { retentionMs: number; limit: number; lockKey?: number },
): Promise<PurgeBatch> {
  return inTransaction(pool, async (client): Promise<PurgeBatch> => {
    const lock = await client.query<{ locked: boolean }>("SELECT pg_try_advisory_xact_lock($1) AS locked", [opts.lockKey ?? PURGE_LOCK_KEY]);
    if (lock.rows[0]?.locked !== true) return { kind: "busy" };
    const result = await client.query<{ notifications: number; status_events: number; outbox: number; notify_requests: number }>(
      `WITH doomed AS (
         SELECT id FROM notifications
         WHERE status IN (${TERMINAL}) AND updated_at < now() - $1::bigint * interval '1 millisecond'
         ORDER BY updated_at LIMIT $2
         FOR UPDATE SKIP LOCKED),
       events AS (DELETE FROM status_events WHERE notification_id IN (SELECT id FROM doomed) RETURNING 1),
       records AS (DELETE FROM outbox WHERE notification_id IN (SELECT id FROM doomed) RETURNING 1),
       gone AS (DELETE FROM notifications WHERE id IN (SELECT id FROM doomed) RETURNING 1),
       requests AS (
         DELETE FROM notify_requests WHERE id IN (
           SELECT id FROM notify_requests WHERE created_at < now() - $1::bigint * interval '1 millisecond'
           ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)
         RETURNING 1)
       SELECT (SELECT count(*) FROM gone)::int AS notifications, (SELECT count(*) FROM events)::int AS status_events,
              (SELECT count(*) FROM records)::int AS outbox, (SELECT count(*) FROM requests)::int AS notify_requests`,
      [opts.retentionMs, opts.limit],
    );
    const row = result.rows[0]!;
    return {
      kind: "purged",
      counts: { notifications: row.notifications, statusEvents: row.status_events, outbox: row.outbox, notifyRequests: row.notify_requests },
    };
  });
}
