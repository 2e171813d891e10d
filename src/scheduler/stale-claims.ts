import type pg from "pg";
import { Status } from "../../gen/herald/v1/notification_pb.js";
import type { NotificationRow } from "../store/rows.js";
import { transitionWrites, writeTransitions } from "../store/transitions.js";
import { writeDeadLetter } from "../store/dead-letter-record.js";

// Claims whose worker is gone: a SENDING row whose lease ran out more than a grace period ago
// goes to RETRYING, due at once, and is released in the same transaction. Normally the
// redelivered Kafka record re-claims such a row long before; this catches the case where that
// record was committed anyway, so every notification still reaches a terminal status.

const STALE_CLAIM = "claim expired: worker lost";

export interface StaleClaimOptions {
  /** Rows swept per transaction. */
  batchSize: number;
  /** A claim is presumed lost this long after its lease ended. */
  claimGraceMs: number;
}

/**
 * SENDING rows whose lease ended more than claimGraceMs ago (database clock, as leases are
 * set) → RETRYING due `now`, in the caller's transaction, so a release after it queues them at
 * once; a lost claim on the last attempt is DEAD_LETTERED instead (the budget is spent).
 * Rows a worker is finishing are locked by it and skipped; the UPDATE re-checks status and
 * lease under the lock, so an outcome that committed first always wins. Returns the swept ids.
 */
export async function sweepStaleClaims(client: pg.PoolClient, now: Date, opts: StaleClaimOptions): Promise<string[]> {
  const swept = await client.query<NotificationRow>(
    `WITH stale AS MATERIALIZED (
       SELECT id FROM notifications
       WHERE status = $3 AND lease_until < now() - $4 * interval '1 millisecond'
       ORDER BY lease_until LIMIT $2 FOR UPDATE SKIP LOCKED
     )
     UPDATE notifications n
     SET status = CASE WHEN n.attempts >= n.max_attempts THEN $7::smallint ELSE $5::smallint END,
         next_attempt_at = CASE WHEN n.attempts >= n.max_attempts THEN NULL ELSE $1::timestamptz END,
         last_sequence = n.last_sequence + 1, updated_at = $1, lease_until = NULL, last_error = $6
     FROM stale WHERE n.id = stale.id AND n.status = $3 AND n.lease_until < now() - $4 * interval '1 millisecond'
     RETURNING n.*`,
    [now, opts.batchSize, Status.SENDING, opts.claimGraceMs, Status.RETRYING, STALE_CLAIM, Status.DEAD_LETTERED],
  );
  await writeTransitions(client, swept.rows.map((row) => transitionWrites(row, { detail: STALE_CLAIM })));
  for (const row of swept.rows) {
    if (row.status === Status.DEAD_LETTERED) await writeDeadLetter(client, row, { now });
  }
  return swept.rows.map((r) => r.id);
}
