import type pg from "pg";
import type { WatchSelection } from "../domain/watch-request.js";
import { withStoreErrors } from "./errors.js";
import { toStatusEvent, type StatusEventRow } from "./records.js";
import type { FeedEvent } from "../feed/feed-event.js";

// The status feed in PostgreSQL (migration 003): positions are assigned by the relay leader
// just before it publishes herald.status records, and read back by API instances to fill
// gaps and to resume a stream from a cursor older than their in-memory ring.

/** One herald.status outbox row the relay is about to publish, identified by its event. */
export interface FeedAssignInput {
  notificationId: string;
  sequence: number;
}

/**
 * Gives each event a feed position (keeping the one it already has: a republished record
 * carries the same position as its first copy) and returns the positions in input order.
 * Must run on the relay leader's session: positions are dense and increasing only because
 * one writer at a time bumps `status_feed.head`, in the order given.
 * An event with no status_events row (cannot happen for rows written by writeTransitions)
 * gets undefined and is published without a position.
 */
export async function assignFeedPositions(
  client: pg.ClientBase,
  inputs: readonly FeedAssignInput[],
): Promise<(number | undefined)[]> {
  if (inputs.length === 0) return [];
  // One statement, so the head bump and the log rows commit together: a reader that sees
  // head = N finds every position up to N in status_feed_log.
  const { rows } = await client.query<{ ord: string; position: string }>(
    `WITH input AS (
       SELECT e.position AS event_position, e.tenant, e.user_id, e.notification_id, i.ord, f.position AS known
       FROM unnest($1::uuid[], $2::int[]) WITH ORDINALITY AS i(notification_id, sequence, ord)
       JOIN status_events e ON e.notification_id = i.notification_id AND e.sequence = i.sequence
       LEFT JOIN status_feed_log f ON f.event_position = e.position),
     fresh AS (
       SELECT *, row_number() OVER (ORDER BY ord) AS n, count(*) OVER () AS total FROM input WHERE known IS NULL),
     head AS (
       UPDATE status_feed SET head = head + (SELECT count(*) FROM fresh)
       WHERE id = 1 AND EXISTS (SELECT 1 FROM fresh) RETURNING head),
     logged AS (
       INSERT INTO status_feed_log (position, event_position, tenant, user_id, notification_id)
       SELECT (SELECT head FROM head) - total + n, event_position, tenant, user_id, notification_id FROM fresh
       RETURNING position, event_position)
     SELECT i.ord, coalesce(i.known, l.position) AS position
     FROM input i LEFT JOIN logged l ON l.event_position = i.event_position`,
    [inputs.map((i) => i.notificationId), inputs.map((i) => i.sequence)],
  );
  const out: (number | undefined)[] = new Array<number | undefined>(inputs.length).fill(undefined);
  for (const row of rows) out[Number(row.ord) - 1] = Number(row.position);
  return out;
}

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
  e.status, e.attempt, e.detail, e.created_at`;

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
