import { create, toBinary } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { DispatchSchema } from "../../gen/herald/v1/dispatch_pb.js";
import { Priority, StatusEventSchema, type Channel, type StatusEvent } from "../../gen/herald/v1/notification_pb.js";
import { channelTopic, STATUS_TOPIC, type RecordHeaders } from "../kafka/topics.js";

// The outbox records a status change appends: a Dispatch on the channel topic, asking a worker
// for an attempt, and a StatusEvent on herald.status. Accept, Cancel, the scheduler and the
// workers all build them here, so every producer of a status change publishes the exact same
// records (workers and the status feed decode them).

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

/** The notification columns a Dispatch is framed from (a notifications row has them). */
export interface DispatchFrameSource {
  id: string;
  tenant: string;
  created_at: Date;
  correlation_id: string;
  /** W3C trace context stored at accept; published as the record's `traceparent` header. */
  traceparent?: string | null;
}

/** What a Dispatch record is built from: the stored spec, or only its length (the insert splices it in). */
export type DispatchSource = DispatchFrameSource & { channel: Channel; user_id: string; priority: Priority } & (
    | { spec: Buffer }
    | { spec_length: number }
  );

/**
 * A Dispatch's bytes on either side of its spec: head || spec || tail is the Dispatch. A
 * message is the concatenation of its fields, written in field-number order, and the spec is
 * field 3; so head holds fields 1, 2 and field 3's tag and length, and tail fields 4 to 6, and
 * the stored spec is used as it is, never decoded and encoded again.
 */
export function dispatchFrame(row: DispatchFrameSource, attempt: number, specLength: number): { head: Uint8Array; tail: Uint8Array } {
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
 * The Kafka key of a recipient's records: tenant and user id, so two tenants that both have a user
 * "42" do not share a partition's ordering lane. The tenant cannot contain "/" (see TENANT in
 * domain/api-keys.ts), so the first "/" splits it off unambiguously. Workers treat the key as an
 * opaque lane name, so records written before the key included the tenant (the bare user id) are
 * still processed after an upgrade; only the order between such an old record and a new one of
 * the same person is not kept, since they may hash to different partitions.
 */
export function recordKey(tenant: string, userId: string): string {
  return `${tenant}/${userId}`;
}

/**
 * The channel-topic record asking a worker for delivery attempt `attempt`.
 * Keyed by recipient (recordKey) so one person's notifications stay in order within a lane. PRIORITY_HIGH
 * goes to the channel's high lane (herald.<channel>.high), every attempt of it: a retry or a
 * redrive of a high-priority notification is as urgent as its first attempt.
 */
export function dispatchRecord(row: DispatchSource, attempt: number): OutboxRecord {
  const stored = "spec" in row;
  const { head, tail } = dispatchFrame(row, attempt, stored ? row.spec.length : row.spec_length);
  return {
    topic: channelTopic(row.channel, row.priority === Priority.HIGH ? "high" : "main"),
    key: recordKey(row.tenant, row.user_id),
    ...(stored ? { value: Buffer.concat([head, row.spec, tail]) } : { value: head, specTail: tail }),
    headers: withTrace({ tenant: row.tenant, "correlation-id": row.correlation_id, attempt: String(attempt) }, row.traceparent),
    notificationId: row.id,
  };
}

/** The herald.status record of one event, keyed by notification so its events stay in order. */
export function statusRecord(event: StatusEvent, tenant: string, correlationId: string, traceparent?: string | null): OutboxRecord {
  return {
    topic: STATUS_TOPIC,
    key: event.notificationId,
    value: toBinary(StatusEventSchema, event),
    headers: withTrace({ tenant, "correlation-id": correlationId }, traceparent),
    notificationId: event.notificationId,
  };
}

/** The notification's trace travels with each of its records (none when tracing was off at accept). */
function withTrace(headers: RecordHeaders, traceparent: string | null | undefined): RecordHeaders {
  if (traceparent) headers.traceparent = traceparent;
  return headers;
}
