import type pg from "pg";
import { Status } from "../../gen/herald/v1/notification_pb.js";
import { dispatchRecord, statusRecord, type OutboxRecord } from "../outbox/records.js";
import { OUTBOX_CHANNEL } from "../outbox/channel.js";
import { outboxInsert } from "../outbox/write.js";
import { toStatusEvent, type NotificationRow, type StatusEventRow } from "./rows.js";

// What one status transition writes besides the notification row: its status_events row and
// its outbox records, in the same transaction. Accept, Cancel, the scheduler and the workers
// all build them here, so every status change is recorded and announced alike.

/** The columns a transition reads from its notification row; a release reads no more. */
export type TransitionRow = Pick<
  NotificationRow,
  "id" | "tenant" | "channel" | "user_id" | "priority" | "status" | "attempts" | "last_sequence" | "correlation_id" | "created_at" | "updated_at" | "traceparent"
> &
  /** The stored spec, or only its length: the Dispatch then takes the spec from the row as it is inserted. */
  ({ spec: Buffer } | { spec_length: number });

/** Everything one transition appends, next to the updated notification row. */
export interface TransitionWrites {
  event: StatusEventRow;
  outbox: OutboxRecord[];
}

/**
 * What entering `row.status` appends, given the row as it is AFTER the
 * transition (status, last_sequence and updated_at already set). The event's
 * attempt is the number of attempts started so far; entering QUEUED also asks
 * for the next one (attempts + 1) on the channel topic.
 */
export function transitionWrites(
  row: TransitionRow,
  opts: {
    detail: string;
    /** Of the request causing it; defaults to the notification's. */
    correlationId?: string;
    /** The provider the transition concerns (attempted, accepted, or whose receipt it is). @defaultValue "" */
    provider?: string;
    /** Whether the event goes to herald.status too; false: stored only (a lean stream's SENDING). @defaultValue true */
    publish?: boolean;
  },
): TransitionWrites {
  const event: StatusEventRow = {
    notification_id: row.id,
    sequence: row.last_sequence,
    tenant: row.tenant,
    user_id: row.user_id,
    channel: row.channel,
    status: row.status,
    attempt: row.attempts,
    detail: opts.detail,
    provider: opts.provider ?? "",
    created_at: row.updated_at,
  };
  const outbox: OutboxRecord[] = [];
  if (row.status === Status.QUEUED) outbox.push(dispatchRecord(row, row.attempts + 1));
  if (opts.publish ?? true) outbox.push(statusRecord(toStatusEvent(event), event.tenant, opts.correlationId ?? row.correlation_id, row.traceparent));
  return { event, outbox };
}

const EVENT_COLUMNS = "notification_id, sequence, tenant, user_id, channel, status, attempt, detail, provider, created_at";

/**
 * An INSERT of `events` in the given order (status_events.position follows it) with parameters
 * from $`first`; with `kept`, only the events of the notifications that relation returns.
 * Shared by writeTransitions and keptTransitions, so both insert exactly the same rows.
 */
function eventsInsert(first: number, events: readonly StatusEventRow[], kept?: string): { sql: string; params: unknown[] } {
  const types = ["uuid", "int", "text", "text", "smallint", "smallint", "int", "text", "text", "timestamptz"];
  const where = kept ? `WHERE notification_id IN (SELECT id FROM ${kept})` : "";
  return {
    sql: `INSERT INTO status_events (${EVENT_COLUMNS}) SELECT ${EVENT_COLUMNS}
          FROM unnest(${types.map((t, i) => `$${first + i}::${t}[]`).join(", ")})
          WITH ORDINALITY AS e(${EVENT_COLUMNS}, ord) ${where} ORDER BY ord`,
    params: [
      events.map((e) => e.notification_id),
      events.map((e) => e.sequence),
      events.map((e) => e.tenant),
      events.map((e) => e.user_id),
      events.map((e) => e.channel),
      events.map((e) => e.status),
      events.map((e) => e.attempt),
      events.map((e) => e.detail),
      events.map((e) => e.provider ?? ""),
      events.map((e) => e.created_at),
    ],
  };
}

/**
 * Two CTEs (`events`, `records`) appending `writes` for only the notifications that the relation
 * `kept` (an earlier CTE of the statement: id, and spec if a record has a specTail) returns,
 * with their parameters from $`first`. For statements that write the notification rows and
 * their transitions at once, building the records before knowing which rows it will write.
 */
export function keptTransitions(first: number, writes: readonly TransitionWrites[], kept: string): { sql: string; params: unknown[] } {
  const events = eventsInsert(first, writes.map((w) => w.event), kept);
  const records = outboxInsert(first + events.params.length, writes.flatMap((w) => w.outbox), kept);
  return {
    sql: `events AS (${events.sql}),
     records AS (${records.sql})`,
    params: [...events.params, ...records.params],
  };
}

/** One more data-modifying step of writeTransitions' statement (its SQL, parameters from $first); its rows are returned. */
export type Alongside = (first: number) => { sql: string; params: unknown[] };

/**
 * Appends the events and outbox rows of many transitions, in the given order, and wakes the
 * relay (on commit) when there are outbox rows, in ONE statement: a claim or outcome batch pays
 * one round trip for them.
 * `alongside`, when given, runs in the same statement (a CTE of its own) and its rows are
 * returned, decoded from JSON (timestamps as ISO strings): a follow-up that must see what
 * committed before the caller's UPDATE took its locks (a fresh statement, as this one is)
 * without a round trip of its own. Nothing is written or run for no writes.
 */
export async function writeTransitions<R = never>(client: pg.ClientBase, writes: readonly TransitionWrites[], alongside?: Alongside): Promise<R[]> {
  if (writes.length === 0) return [];
  const events = eventsInsert(1, writes.map((w) => w.event));
  const records = outboxInsert(1 + events.params.length, writes.flatMap((w) => w.outbox));
  let next = 1 + events.params.length + records.params.length;
  const extra = alongside?.(next);
  if (extra) next += extra.params.length;
  // Nothing for the outbox (a lean stream's claims): the relay is not woken for nothing.
  const wake = writes.some((w) => w.outbox.length > 0);
  const result = await client.query<{ alongside: R[] | null }>(
    `WITH events AS (${events.sql}), records AS (${records.sql})${extra ? `, alongside AS (${extra.sql})` : ""}
     SELECT ${wake ? `pg_notify($${next}, '')` : "NULL"} AS woke, ${extra ? "(SELECT json_agg(a) FROM alongside a)" : "NULL::json"} AS alongside`,
    [...events.params, ...records.params, ...(extra?.params ?? []), ...(wake ? [OUTBOX_CHANNEL] : [])],
  );
  return result.rows[0]?.alongside ?? [];
}
