import type pg from "pg";
import type { WatchSelection } from "../domain/watch-request.js";
import { withStoreErrors } from "../store/errors.js";
import { toStatusEvent, type StatusEventRow } from "../store/rows.js";
import type { FeedEvent } from "./feed-event.js";

// The status feed as PostgreSQL holds it (migration 003), read back by API instances to fill
// gaps and to resume a stream from a cursor older than their in-memory ring.

export interface StatusFeedStore {
  /** The highest position assigned (and committed) so far; 0 before the first. */
  head(): Promise<number>;
  /** Every event with after < position < before, of all tenants, in position order (gap filling). */
  between(after: number, before: number, limit: number): Promise<FeedEvent[]>;
  /** The selected events (never another tenant's) with after < position ≤ upTo, in position order, at most `limit`. */
  read(selector: WatchSelection, after: number, upTo: number, limit: number): Promise<FeedEvent[]>;
}

interface FeedRow extends StatusEventRow {
  feed_position: string;
}

const EVENT_COLUMNS = `f.position AS feed_position, e.notification_id, e.sequence, e.tenant, e.user_id, e.channel,
  e.status, e.attempt, e.detail, e.provider, e.created_at`;

function toFeedEvent(row: FeedRow): FeedEvent {
  return { position: Number(row.feed_position), tenant: row.tenant, event: toStatusEvent(row) };
}

export function createStatusFeedStore(deps: { pool: pg.Pool }): StatusFeedStore {
  const { pool } = deps;
  return {
    head: () =>
      withStoreErrors(async () => {
        const { rows } = await pool.query<{ head: string }>("SELECT head FROM status_feed WHERE id = 1");
        return Number(rows[0]?.head ?? 0);
      }),
    between: (after, before, limit) =>
      withStoreErrors(async () => {
        const { rows } = await pool.query<FeedRow>(
          `SELECT ${EVENT_COLUMNS} FROM status_feed_log f JOIN status_events e ON e.position = f.event_position
           WHERE f.position > $1 AND f.position < $2 ORDER BY f.position LIMIT $3`,
          [after, before, limit],
        );
        return rows.map(toFeedEvent);
      }),
    read: (selector, after, upTo, limit) =>
      withStoreErrors(async () => {
        const params: unknown[] = [selector.tenant, after, upTo, limit];
        const where = ["f.tenant = $1", "f.position > $2", "f.position <= $3"];
        if (selector.notificationId !== undefined) {
          params.push(selector.notificationId);
          where.push(`f.notification_id = $${params.length}`);
        } else if (selector.userId !== undefined) {
          params.push(selector.userId);
          where.push(`f.user_id = $${params.length}`);
        }
        if (selector.statuses.size > 0) {
          params.push([...selector.statuses]);
          where.push(`e.status = ANY($${params.length}::smallint[])`);
        }
        if (selector.channels.size > 0) {
          params.push([...selector.channels]);
          where.push(`e.channel = ANY($${params.length}::smallint[])`);
        }
        const { rows } = await pool.query<FeedRow>(
          `SELECT ${EVENT_COLUMNS} FROM status_feed_log f JOIN status_events e ON e.position = f.event_position
           WHERE ${where.join(" AND ")} ORDER BY f.position LIMIT $4`,
          params,
        );
        return rows.map(toFeedEvent);
      }),
  };
}
