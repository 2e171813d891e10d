import type pg from "pg";
import type { Notification } from "../../gen/herald/v1/notification_pb.js";
import type { WatchSelection } from "../domain/watch-request.js";
import { withStoreErrors } from "./errors.js";
import { toNotification, type NotificationRow } from "./rows.js";

// The snapshot phase of WatchStatus: the current state of what a stream selects, bounded.

export interface SnapshotItem {
  notification: Notification;
  /** Sequence of its newest status event: live events up to it are already reflected. */
  lastSequence: number;
}

export interface WatchSnapshotStore {
  /** Whether the tenant has this notification (a stream on another tenant's id is NOT_FOUND). */
  exists(tenant: string, id: string): Promise<boolean>;
  /**
   * The selected notifications as they are now, oldest first: the one named, or the newest
   * `limit` created at or after `since` for a recipient or the tenant.
   */
  snapshot(selection: WatchSelection, since: Date, limit: number): Promise<SnapshotItem[]>;
}

export function createWatchSnapshotStore(deps: { pool: pg.Pool }): WatchSnapshotStore {
  const { pool } = deps;
  return {
    exists: (tenant, id) =>
      withStoreErrors(async () => {
        const { rowCount } = await pool.query("SELECT 1 FROM notifications WHERE id = $1 AND tenant = $2", [id, tenant]);
        return (rowCount ?? 0) > 0;
      }),
    snapshot: (selection, since, limit) =>
      withStoreErrors(async () => {
        const params: unknown[] = [selection.tenant];
        const where = ["tenant = $1"];
        if (selection.notificationId !== undefined) {
          params.push(selection.notificationId);
          where.push(`id = $${params.length}`);
        } else {
          params.push(since);
          where.push(`created_at >= $${params.length}`);
          if (selection.userId !== undefined) {
            params.push(selection.userId);
            where.push(`user_id = $${params.length}`);
          }
        }
        if (selection.statuses.size > 0) {
          params.push([...selection.statuses]);
          where.push(`status = ANY($${params.length}::smallint[])`);
        }
        if (selection.channels.size > 0) {
          params.push([...selection.channels]);
          where.push(`channel = ANY($${params.length}::smallint[])`);
        }
        params.push(limit);
        // Newest `limit` by the (tenant[, user_id], created_at) indexes, then oldest first.
        const { rows } = await pool.query<NotificationRow>(
          `SELECT * FROM (SELECT * FROM notifications WHERE ${where.join(" AND ")}
             ORDER BY created_at DESC, id DESC LIMIT $${params.length}) newest
           ORDER BY created_at, id`,
          params,
        );
        return rows.map((row) => ({ notification: toNotification(row), lastSequence: row.last_sequence }));
      }),
  };
}
