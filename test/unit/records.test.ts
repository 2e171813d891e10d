import { describe, expect, it } from "vitest";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { DispatchSchema } from "../../gen/herald/v1/dispatch_pb.js";
import { Channel, NotificationSpecSchema, Priority, Status } from "../../gen/herald/v1/notification_pb.js";
import { dispatchRecord } from "../../src/outbox/records.js";
import { toNotification, type NotificationRow } from "../../src/store/rows.js";

const spec = create(NotificationSpecSchema, {
  channel: Channel.EMAIL,
  recipient: { userId: "u-1", address: { case: "email", value: "u-1@example.com" } },
  body: { case: "content", value: { subject: "Hi", text: "Hello ✓" } },
  labels: { b: "2", a: "1" },
  priority: Priority.HIGH,
});
const at = new Date("2026-11-30T10:00:00.123Z");
const row: NotificationRow = {
  id: "0190f2a0-0000-7000-8000-000000000001",
  tenant: "t1",
  channel: Channel.EMAIL,
  user_id: "u-1",
  status: Status.QUEUED,
  spec: Buffer.from(toBinary(NotificationSpecSchema, spec)),
  priority: Priority.HIGH,
  labels: { b: "2", a: "1" },
  idempotency_key: null,
  request_hash: null,
  correlation_id: "req-1",
  local_time: null,
  deliver_at: at,
  attempts: 0,
  max_attempts: 5,
  next_attempt_at: null,
  last_error: "",
  provider_message_id: "",
  last_sequence: 1,
  created_at: at,
  updated_at: at,
};

describe("records", () => {
  it("a Dispatch built from the stored spec bytes decodes to the Dispatch of the decoded spec", () => {
    const record = dispatchRecord(row, 2);
    expect(fromBinary(DispatchSchema, record.value)).toEqual(
      create(DispatchSchema, {
        notificationId: row.id,
        tenant: "t1",
        notification: spec,
        attempt: 2,
        createTime: timestampFromDate(at),
        correlationId: "req-1",
      }),
    );
    expect(record).toMatchObject({ topic: "herald.email", key: "u-1", headers: { tenant: "t1", "correlation-id": "req-1", attempt: "2" } });
  });

  it("toNotification with the spec already decoded equals decoding it from the row", () => {
    expect(toNotification(row, spec)).toEqual(toNotification(row));
  });
});
