import { describe, expect, it } from "vitest";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { DispatchSchema } from "../../gen/herald/v1/dispatch_pb.js";
import { Channel, NotificationSpecSchema, Priority, Status } from "../../gen/herald/v1/notification_pb.js";
import { dispatchRecord } from "../../src/outbox/records.js";
import { singleLane } from "../../src/relay/single-lane.js";
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
    expect(record).toMatchObject({ topic: "herald.email.high", key: "t1/u-1", headers: { tenant: "t1", "correlation-id": "req-1", attempt: "2" } });
  });

  it("keys a Dispatch by tenant and user, so two tenants' same user id are two ordering lanes", () => {
    expect(dispatchRecord({ ...row, tenant: "t1" }, 1).key).toBe("t1/u-1");
    expect(dispatchRecord({ ...row, tenant: "t2" }, 1).key).toBe("t2/u-1");
    // A user id may itself hold "/": the tenant (no "/" allowed) still splits off at the first one.
    expect(dispatchRecord({ ...row, user_id: "a/b" }, 1).key).toBe("t1/a/b");
  });

  it("a PRIORITY_HIGH Dispatch goes to the channel's high lane, every attempt; the other priorities to its main topic", () => {
    for (const attempt of [1, 2, 5]) expect(dispatchRecord(row, attempt).topic).toBe("herald.email.high");
    for (const priority of [Priority.UNSPECIFIED, Priority.LOW, Priority.NORMAL]) {
      expect(dispatchRecord({ ...row, priority }, 1).topic).toBe("herald.email");
    }
    expect(dispatchRecord({ ...row, channel: Channel.SMS }, 1).topic).toBe("herald.sms.high");
  });

  it("with lanes off the relay sends a high-lane record to the channel's main topic and leaves the rest alone", async () => {
    const sent: Array<{ topic: string; key: string }> = [];
    const sink = singleLane({ sendBatch: async (records) => void sent.push(...records.map((r) => ({ topic: r.topic, key: r.key }))) });
    await sink.sendBatch([
      { topic: "herald.email.high", key: "a", value: Buffer.alloc(0), headers: {} },
      { topic: "herald.email", key: "b", value: Buffer.alloc(0), headers: {} },
      { topic: "herald.webhook.high", key: "c", value: Buffer.alloc(0), headers: {} },
      { topic: "herald.status", key: "d", value: Buffer.alloc(0), headers: {} },
    ]);
    expect(sent).toEqual([
      { topic: "herald.email", key: "a" },
      { topic: "herald.email", key: "b" },
      { topic: "herald.webhook", key: "c" },
      { topic: "herald.status", key: "d" },
    ]);
  });

  it("toNotification with the spec already decoded equals decoding it from the row", () => {
    expect(toNotification(row, spec)).toEqual(toNotification(row));
  });
});
