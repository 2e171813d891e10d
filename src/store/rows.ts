import { create, fromBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  LocalTimeSchema,
  NotificationSchema,
  NotificationSpecSchema,
  StatusEventSchema,
  type Channel,
  type Notification,
  type NotificationSpec,
  type Priority,
  type Status,
  type StatusEvent,
} from "../../gen/herald/v1/notification_pb.js";

// Rows as node-postgres returns them, and their protobuf messages: the API answers, the
// snapshot of a stream and the herald.status records are all built from these.

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
  /** The key it was created with, once released after the idempotency window (accept.ts). */
  released_idempotency_key?: string | null;
  request_hash: Buffer | null;
  correlation_id: string;
  /** W3C traceparent of the accept span (tracing on), carried on every record written for it. */
  traceparent?: string | null;
  local_time: { dateTime: string; timeZone: string } | null;
  deliver_at: Date;
  attempts: number;
  max_attempts: number;
  next_attempt_at: Date | null;
  last_error: string;
  provider_message_id: string;
  /** The configured provider that accepted it ('' before SENT; absent from narrower SELECTs). */
  provider?: string;
  /** The Notify request it was fanned out from (migration 012); null for Create and Schedule, absent from narrower SELECTs. */
  notify_id?: string | null;
  last_sequence: number;
  created_at: Date;
  updated_at: Date;
  /** When EraseRecipient scrubbed it (store/erasure.ts); absent from narrower SELECTs. */
  erased_at?: Date | null;
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
  /** The provider the transition concerns; '' when none. @defaultValue "" */
  provider?: string;
  created_at: Date;
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
    idempotencyKey: row.idempotency_key ?? row.released_idempotency_key ?? "",
    nextAttemptTime: row.next_attempt_at ? timestampFromDate(row.next_attempt_at) : undefined,
    providerMessageId: row.provider_message_id,
    provider: row.provider ?? "",
    localTime: row.local_time ? create(LocalTimeSchema, row.local_time) : undefined,
    category: spec.category,
    notifyId: row.notify_id ?? "",
    locale: spec.locale,
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
    provider: row.provider ?? "",
  });
}
