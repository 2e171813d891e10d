import type pg from "pg";
import type { Notification, StatusEvent } from "../../gen/herald/v1/notification_pb.js";
import { isUuid } from "../domain/ids.js";
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
      `SELECT notification_id, sequence, tenant, user_id, channel, status, attempt, detail, created_at
       FROM status_events WHERE notification_id = $1 AND sequence <= $2 ORDER BY sequence`,
      [row.id, row.last_sequence],
    );
    return { notification: toNotification(row), history: events.rows.map(toStatusEvent) };
  });
}
