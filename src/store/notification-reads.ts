import type pg from "pg";
import type { Notification, StatusEvent } from "../../gen/herald/v1/notification_pb.js";
import { isUuid } from "../domain/ids.js";
import { keyExpired } from "./accept.js";
import { withStoreErrors } from "./errors.js";
import { toNotification, toStatusEvent, type NotificationRow, type StatusEventRow } from "./rows.js";

/** A tenant's notification and its status history; undefined when it has none by that id. */
export async function getNotification(
  pool: pg.Pool,
  tenant: string,
  id: string,
): Promise<{ notification: Notification; history: StatusEvent[] } | undefined> {
  if (!isUuid(id)) return undefined;
  return withStoreErrors(async () => {
    const found = await pool.query<NotificationRow>("SELECT * FROM notifications WHERE id = $1 AND tenant = $2", [id, tenant]);
    const row = found.rows[0];
    if (!row) return undefined;
    // Only events up to the row's last_sequence: history and status agree
    // even when a transition commits between these two reads.
    const events = await pool.query<StatusEventRow>(
      `SELECT notification_id, sequence, tenant, user_id, channel, status, attempt, detail, provider, created_at
       FROM status_events WHERE notification_id = $1 AND sequence <= $2 ORDER BY sequence`,
      [row.id, row.last_sequence],
    );
    return { notification: toNotification(row), history: events.rows.map(toStatusEvent) };
  });
}

/**
 * The notification a live idempotency key names, if it was created by the same request (same
 * hash): what a retry of that request is answered with. Undefined for an unknown or expired key
 * (`ttlMs` after its notification; 0: never expires) or another request's.
 */
export async function findByIdempotencyKey(
  pool: pg.Pool,
  input: { tenant: string; key: string; requestHash: Buffer; now: Date; ttlMs: number },
): Promise<Notification | undefined> {
  return withStoreErrors(async () => {
    const found = await pool.query<NotificationRow>("SELECT * FROM notifications WHERE tenant = $1 AND idempotency_key = $2", [input.tenant, input.key]);
    const row = found.rows[0];
    if (!row || !row.request_hash?.equals(input.requestHash)) return undefined;
    if (keyExpired(row.created_at, input.ttlMs, input.now)) return undefined;
    return toNotification(row);
  });
}
