import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type pg from "pg";
import { DispatchSchema } from "../../gen/herald/v1/dispatch_pb.js";
import {
  LocalTimeSchema,
  NotificationSchema,
  NotificationSpecSchema,
  Status,
  StatusEventSchema,
  type Channel,
  type Notification,
  type NotificationSpec,
  type Priority,
  type StatusEvent,
} from "../../gen/herald/v1/notification_pb.js";
import { channelTopic, STATUS_TOPIC, type RecordHeaders } from "../kafka/topics.js";
import { OUTBOX_CHANNEL } from "./outbox-channel.js";

// Rows ↔ protobuf, and what one status transition writes besides the
// notification row: its status_events row and its outbox records. Accept,
// Cancel and the scheduler all build those here, so every producer of a
// status change publishes the exact same records (workers and the status
// stream decode them).

/** A notifications row as node-postgres returns it. */
export interface NotificationRow {
  id: string;
  tenant: string;
  channel: Channel;
  user_id: string;
  status: Status;
  spec: Buffer;
  priority: Priority;
  labels: Record<string, string>;
  idempotency_key: string | null;
  request_hash: Buffer | null;
  correlation_id: string;
  local_time: { dateTime: string; timeZone: string } | null;
  deliver_at: Date;
  attempts: number;
  max_attempts: number;
  next_attempt_at: Date | null;
  last_error: string;
  provider_message_id: string;
  last_sequence: number;
  created_at: Date;
  updated_at: Date;
}

/** A status_events row (without its position). */
export interface StatusEventRow {
  notification_id: string;
  sequence: number;
  tenant: string;
  user_id: string;
  channel: Channel;
  status: Status;
  attempt: number;
  detail: string;
  created_at: Date;
}

/** One outbox row to insert; the relay publishes it as a Kafka record. */
export interface OutboxRecord {
  /** Logical topic (herald.email, herald.status); the relay adds the prefix. */
  topic: string;
  key: string;
  value: Uint8Array;
  /**
   * When set, `value` is only the head of the record: the insert appends the stored spec of
   * notification `notificationId` and then this (see dispatchFrame). Only for a notification
   * row that exists before the inserting statement.
   */
  specTail?: Uint8Array;
  headers: RecordHeaders;
  notificationId: string;
}

/** The columns a transition reads from its notification row; a release reads no more. */
export type TransitionRow = Pick<
  NotificationRow,
  "id" | "tenant" | "channel" | "user_id" | "status" | "attempts" | "last_sequence" | "correlation_id" | "created_at" | "updated_at"
> &
  /** The stored spec, or only its length: the Dispatch then takes the spec from the row as it is inserted. */
  ({ spec: Buffer } | { spec_length: number });

/** Everything one transition appends, next to the updated notification row. */
export interface TransitionWrites {
  event: StatusEventRow;
  outbox: OutboxRecord[];
}

/** `spec` is row.spec decoded, when the caller already has it (accept does). */
export function toNotification(row: NotificationRow, spec: NotificationSpec = fromBinary(NotificationSpecSchema, row.spec)): Notification {
  return create(NotificationSchema, {
    id: row.id,
    channel: row.channel,
    recipient: spec.recipient,
    status: row.status,
    createTime: timestampFromDate(row.created_at),
    deliverTime: timestampFromDate(row.deliver_at),
    updateTime: timestampFromDate(row.updated_at),
    attempts: row.attempts,
    lastError: row.last_error,
    labels: row.labels,
    priority: row.priority,
    body: spec.body,
    idempotencyKey: row.idempotency_key ?? "",
    nextAttemptTime: row.next_attempt_at ? timestampFromDate(row.next_attempt_at) : undefined,
    providerMessageId: row.provider_message_id,
    localTime: row.local_time ? create(LocalTimeSchema, row.local_time) : undefined,
  });
}

export function toStatusEvent(row: StatusEventRow): StatusEvent {
  return create(StatusEventSchema, {
    notificationId: row.notification_id,
    sequence: row.sequence,
    status: row.status,
    attempt: row.attempt,
    detail: row.detail,
    time: timestampFromDate(row.created_at),
    channel: row.channel,
    userId: row.user_id,
  });
}

/**
 * A Dispatch's bytes on either side of its spec: head || spec || tail is the Dispatch. A
 * message is the concatenation of its fields, written in field-number order, and the spec is
 * field 3; so head holds fields 1, 2 and field 3's tag and length, and tail fields 4 to 6, and
 * the stored spec is used as it is, never decoded and encoded again.
 */
export function dispatchFrame(
  row: Pick<NotificationRow, "id" | "tenant" | "created_at" | "correlation_id">,
  attempt: number,
  specLength: number,
): { head: Uint8Array; tail: Uint8Array } {
  const head = new BinaryWriter()
    .raw(toBinary(DispatchSchema, create(DispatchSchema, { notificationId: row.id, tenant: row.tenant })))
    .tag(3, WireType.LengthDelimited)
    .uint32(specLength)
    .finish();
  const tail = toBinary(
    DispatchSchema,
    create(DispatchSchema, { attempt, createTime: timestampFromDate(row.created_at), correlationId: row.correlation_id }),
  );
  return { head, tail };
}

/**
 * The channel-topic record asking a worker for delivery attempt `attempt`.
 * Keyed by recipient so one person's notifications stay in order.
 */
export function dispatchRecord(row: TransitionRow, attempt: number): OutboxRecord {
  const stored = "spec" in row;
  const { head, tail } = dispatchFrame(row, attempt, stored ? row.spec.length : row.spec_length);
  return {
    topic: channelTopic(row.channel),
    key: row.user_id,
    ...(stored ? { value: Buffer.concat([head, row.spec, tail]) } : { value: head, specTail: tail }),
    headers: { tenant: row.tenant, "correlation-id": row.correlation_id, attempt: String(attempt) },
    notificationId: row.id,
  };
}

/** The herald.status record of one event, keyed by notification so its events stay in order. */
export function statusRecord(event: StatusEventRow, correlationId: string): OutboxRecord {
  return {
    topic: STATUS_TOPIC,
    key: event.notification_id,
    value: toBinary(StatusEventSchema, toStatusEvent(event)),
    headers: { tenant: event.tenant, "correlation-id": correlationId },
    notificationId: event.notification_id,
  };
}

/**
 * What entering `row.status` appends, given the row as it is AFTER the
 * transition (status, last_sequence and updated_at already set). The event's
 * attempt is the number of attempts started so far; entering QUEUED also asks
 * for the next one (attempts + 1) on the channel topic.
 */
export function transitionWrites(
  row: TransitionRow,
  opts: { detail: string; /** Of the request causing it; defaults to the notification's. */ correlationId?: string },
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
    created_at: row.updated_at,
  };
  const outbox: OutboxRecord[] = [];
  if (row.status === Status.QUEUED) outbox.push(dispatchRecord(row, row.attempts + 1));
  outbox.push(statusRecord(event, opts.correlationId ?? row.correlation_id));
  return { event, outbox };
}

const asBuffer = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength);

/**
 * The status_events rows of `events` as one `unnest(...)` source (aliased `e`, with `ord` for
 * their order) whose parameters start at $`first`, and those parameters. Shared by
 * writeTransitions and the accept statement, so both insert exactly the same rows.
 */
export function eventsSource(first: number, events: readonly StatusEventRow[]): { sql: string; params: unknown[] } {
  const types = ["uuid", "int", "text", "text", "smallint", "smallint", "int", "text", "timestamptz"];
  return {
    sql: `unnest(${types.map((t, i) => `$${first + i}::${t}[]`).join(", ")})
          WITH ORDINALITY AS e(notification_id, sequence, tenant, user_id, channel, status, attempt, detail, created_at, ord)`,
    params: [
      events.map((e) => e.notification_id),
      events.map((e) => e.sequence),
      events.map((e) => e.tenant),
      events.map((e) => e.user_id),
      events.map((e) => e.channel),
      events.map((e) => e.status),
      events.map((e) => e.attempt),
      events.map((e) => e.detail),
      events.map((e) => e.created_at),
    ],
  };
}

/**
 * The outbox rows of `records` as one source (aliased `r`, with `ord`), like eventsSource. A
 * record with a specTail gets its notification's spec between value and tail, from `specs`: a
 * relation with columns id and spec (the notifications table, or the RETURNING of the statement).
 */
export function outboxSource(first: number, records: readonly OutboxRecord[], specs = "notifications"): { sql: string; params: unknown[] } {
  const types = ["text", "text", "bytea", "bytea", "jsonb", "uuid"];
  const source = `unnest(${types.map((t, i) => `$${first + i}::${t}[]`).join(", ")})
                WITH ORDINALITY AS u(topic, key, head, tail, headers, notification_id, ord)`;
  // Without a spliced record, `specs` need not have a spec column (accept returns only ids).
  const spliced = records.some((r) => r.specTail);
  return {
    sql: spliced
      ? `(SELECT u.topic, u.key, u.headers, u.notification_id, u.ord,
             CASE WHEN u.tail IS NULL THEN u.head ELSE u.head || s.spec || u.tail END AS value
           FROM ${source}
           LEFT JOIN ${specs} s ON u.tail IS NOT NULL AND s.id = u.notification_id) AS r`
      : `(SELECT u.topic, u.key, u.headers, u.notification_id, u.ord, u.head AS value FROM ${source}) AS r`,
    params: [
      records.map((r) => r.topic),
      records.map((r) => r.key),
      records.map((r) => asBuffer(r.value)),
      records.map((r) => (r.specTail ? asBuffer(r.specTail) : null)),
      records.map((r) => JSON.stringify(r.headers)),
      records.map((r) => r.notificationId),
    ],
  };
}

/** Column lists of the two inserts, for statements that build their own. */
export const EVENT_COLUMNS = "notification_id, sequence, tenant, user_id, channel, status, attempt, detail, created_at";
export const OUTBOX_COLUMNS = "topic, key, value, headers, notification_id";

/**
 * Two CTEs (`events`, `records`) appending `writes` for only the notifications that the relation
 * `kept` (an earlier CTE of the statement: id, and spec if a record has a specTail) returns,
 * with their parameters from $`first`. For statements that write the notification rows and
 * their transitions at once, building the records before knowing which rows it will write.
 */
export function keptTransitions(first: number, writes: readonly TransitionWrites[], kept: string): { sql: string; params: unknown[] } {
  const events = eventsSource(first, writes.map((w) => w.event));
  const records = outboxSource(first + events.params.length, writes.flatMap((w) => w.outbox), kept);
  return {
    sql: `events AS (
       INSERT INTO status_events (${EVENT_COLUMNS}) SELECT ${EVENT_COLUMNS} FROM ${events.sql}
       WHERE notification_id IN (SELECT id FROM ${kept}) ORDER BY ord),
     records AS (
       INSERT INTO outbox (${OUTBOX_COLUMNS}) SELECT ${OUTBOX_COLUMNS} FROM ${records.sql}
       WHERE notification_id IN (SELECT id FROM ${kept}) ORDER BY ord)`,
    params: [...events.params, ...records.params],
  };
}

/**
 * Appends the events and outbox rows of many transitions in two statements,
 * in the given order (status_events.position and outbox.id follow it), and
 * wakes the relay: PostgreSQL delivers the NOTIFY only if this transaction
 * commits, and once per transaction however many batches share it.
 */
export async function writeTransitions(client: pg.ClientBase, writes: readonly TransitionWrites[]): Promise<void> {
  if (writes.length === 0) return;
  const events = eventsSource(1, writes.map((w) => w.event));
  await client.query(
    `INSERT INTO status_events (${EVENT_COLUMNS}) SELECT ${EVENT_COLUMNS} FROM ${events.sql} ORDER BY ord`,
    events.params,
  );
  const records = outboxSource(1, writes.flatMap((w) => w.outbox));
  await client.query(
    `WITH inserted AS (
       INSERT INTO outbox (${OUTBOX_COLUMNS}) SELECT ${OUTBOX_COLUMNS} FROM ${records.sql} ORDER BY ord)
     SELECT pg_notify($${records.params.length + 1}, '')`,
    [...records.params, OUTBOX_CHANNEL],
  );
}
