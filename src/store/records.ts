import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
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
  headers: RecordHeaders;
  notificationId: string;
}

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

const dispatchNotificationField = DispatchSchema.field.notification.number;

/**
 * The channel-topic record asking a worker for delivery attempt `attempt`.
 * Keyed by recipient so one person's notifications stay in order.
 */
export function dispatchRecord(row: NotificationRow, attempt: number): OutboxRecord {
  // The spec is stored encoded. Appending those bytes as the `notification` field is the same
  // message as decoding and re-encoding them (a parser takes fields in any order), for a
  // fraction of the work, which every Create pays.
  const value = new BinaryWriter()
    .raw(
      toBinary(
        DispatchSchema,
        create(DispatchSchema, {
          notificationId: row.id,
          tenant: row.tenant,
          attempt,
          createTime: timestampFromDate(row.created_at),
          correlationId: row.correlation_id,
        }),
      ),
    )
    .tag(dispatchNotificationField, WireType.LengthDelimited)
    .bytes(row.spec)
    .finish();
  return {
    topic: channelTopic(row.channel),
    key: row.user_id,
    value,
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
  row: NotificationRow,
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

/** The outbox rows of `records` as one `unnest(...)` source (aliased `r`, with `ord`), like eventsSource. */
export function outboxSource(first: number, records: readonly OutboxRecord[]): { sql: string; params: unknown[] } {
  const types = ["text", "text", "bytea", "jsonb", "uuid"];
  return {
    sql: `unnest(${types.map((t, i) => `$${first + i}::${t}[]`).join(", ")})
          WITH ORDINALITY AS r(topic, key, value, headers, notification_id, ord)`,
    params: [
      records.map((r) => r.topic),
      records.map((r) => r.key),
      records.map((r) => asBuffer(r.value)),
      records.map((r) => JSON.stringify(r.headers)),
      records.map((r) => r.notificationId),
    ],
  };
}

/** Column lists of the two inserts, for statements that build their own. */
export const EVENT_COLUMNS = "notification_id, sequence, tenant, user_id, channel, status, attempt, detail, created_at";
export const OUTBOX_COLUMNS = "topic, key, value, headers, notification_id";

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
     SELECT pg_notify($6, '')`,
    [...records.params, OUTBOX_CHANNEL],
  );
}
