import type pg from "pg";
import { Status, type Notification } from "../../gen/herald/v1/notification_pb.js";
import { isUuid } from "../domain/ids.js";
import { cancelable } from "../domain/status.js";
import { withdrawDispatches } from "../outbox/write.js";
import { inTransaction } from "./db.js";
import { withStoreErrors } from "./errors.js";
import { toNotification, type NotificationRow } from "./rows.js";
import { transitionWrites, writeTransitions } from "./transitions.js";

export type CancelOutcome =
  | { kind: "canceled"; notification: Notification }
  | { kind: "not_found" }
  | { kind: "too_late"; status: Status };

/** Cancels a tenant's notification if its status still allows it, with its event and records. */
export async function cancelNotification(
  pool: pg.Pool,
  tenant: string,
  id: string,
  opts: { now: Date; correlationId: string },
): Promise<CancelOutcome> {
  if (!isUuid(id)) return { kind: "not_found" };
  return withStoreErrors(() =>
    inTransaction(pool, async (client): Promise<CancelOutcome> => {
      // Lock first so "too late" reports the status that actually won the race.
      const found = await client.query<{ status: Status }>(
        "SELECT status FROM notifications WHERE id = $1 AND tenant = $2 FOR UPDATE",
        [id, tenant],
      );
      const current = found.rows[0];
      if (!current) return { kind: "not_found" };
      if (!cancelable.includes(current.status)) return { kind: "too_late", status: current.status };
      const updated = await client.query<NotificationRow>(
        `UPDATE notifications
         SET status = $3, last_sequence = last_sequence + 1, updated_at = $4, next_attempt_at = NULL
         WHERE id = $1 AND tenant = $2 AND status = ANY($5::smallint[])
         RETURNING *`,
        [id, tenant, Status.CANCELED, opts.now, cancelable],
      );
      const row = updated.rows[0];
      if (!row) throw new Error(`cancel: locked row ${id} did not update`);
      await withdrawDispatches(client, row.id);
      await writeTransitions(client, [transitionWrites(row, { detail: "canceled", correlationId: opts.correlationId })]);
      return { kind: "canceled", notification: toNotification(row) };
    }),
  );
}
