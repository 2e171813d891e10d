import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type pg from "pg";
import { DeadLetterSchema, type DeadLetter } from "../../gen/herald/v1/dead_letter_pb.js";
import { Status } from "../../gen/herald/v1/notification_pb.js";
import { DLQ_TOPIC } from "../kafka/topics.js";
import { writeOutbox } from "../outbox/write.js";
import { toNotification, type NotificationRow } from "./rows.js";

// A death, as the worker's outcome transaction and the scheduler's stale-claim
// sweep record it: a dead_letters row and a herald.dlq record, written in the
// transaction that moved the notification to FAILED or DEAD_LETTERED.

/** The statuses a dead letter can be in, i.e. those redrive leaves from. */
export const deadStatuses: readonly Status[] = [Status.FAILED, Status.DEAD_LETTERED];

/** The dead_letters columns of one death. */
export interface Death {
  status: Status;
  lastError: string;
  attempts: number;
  at: Date;
  redriveCount: number;
}

/** The herald.v1.DeadLetter for notification `row` and its death. */
export function deadLetterMessage(row: NotificationRow, death: Death): DeadLetter {
  return create(DeadLetterSchema, {
    notificationId: row.id,
    channel: row.channel,
    status: death.status,
    lastError: death.lastError,
    attempts: death.attempts,
    deadLetterTime: timestampFromDate(death.at),
    notification: toNotification(row),
    redriveCount: death.redriveCount,
  });
}

/**
 * Records that `row` (as it is AFTER its transition to FAILED or
 * DEAD_LETTERED) is dead: upserts dead_letters (a second death updates the row
 * and clears redriven_at) and appends a herald.dlq outbox record (key =
 * notification id, value = DeadLetter protobuf, headers tenant + correlation-id).
 */
export async function writeDeadLetter(
  client: pg.ClientBase,
  row: NotificationRow,
  opts: { now: Date; correlationId?: string },
): Promise<void> {
  if (!deadStatuses.includes(row.status)) {
    throw new Error(`writeDeadLetter: notification ${row.id} is ${Status[row.status]}, not FAILED or DEAD_LETTERED`);
  }
  const upserted = await client.query<{ redrive_count: number }>(
    `INSERT INTO dead_letters (notification_id, tenant, channel, status, last_error, attempts, created_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7)
     ON CONFLICT (notification_id) DO UPDATE
     SET status = EXCLUDED.status, last_error = EXCLUDED.last_error, attempts = EXCLUDED.attempts,
         created_at = EXCLUDED.created_at, redriven_at = NULL
     RETURNING redrive_count`,
    [row.id, row.tenant, row.channel, row.status, row.last_error, row.attempts, opts.now],
  );
  const deadLetter = deadLetterMessage(row, {
    status: row.status,
    lastError: row.last_error,
    attempts: row.attempts,
    at: opts.now,
    redriveCount: upserted.rows[0]?.redrive_count ?? 0,
  });
  // Its NOTIFY is folded by PostgreSQL with the one writeTransitions sends in the same transaction.
  await writeOutbox(client, [
    {
      topic: DLQ_TOPIC,
      key: row.id,
      value: toBinary(DeadLetterSchema, deadLetter),
      headers: { tenant: row.tenant, "correlation-id": opts.correlationId ?? row.correlation_id },
      notificationId: row.id,
    },
  ]);
}
