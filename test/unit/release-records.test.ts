import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { DispatchSchema } from "../../gen/herald/v1/dispatch_pb.js";
import { Channel, NotificationSpecSchema, Status } from "../../gen/herald/v1/notification_pb.js";
import { sleepUntilDue } from "../../src/scheduler/scheduler.js";
import { dispatchFrame, dispatchRecord } from "../../src/outbox/records.js";
import type { NotificationRow } from "../../src/store/rows.js";
import { transitionWrites } from "../../src/store/transitions.js";

const createdAt = new Date("2026-11-30T10:00:00.123Z");

function row(spec: Uint8Array): NotificationRow {
  return {
    id: "0193c1e2-7d4a-7b8c-9d0e-1f2a3b4c5d6e",
    tenant: "acme",
    channel: Channel.EMAIL,
    user_id: "user-7",
    status: Status.QUEUED,
    spec: Buffer.from(spec),
    priority: 0,
    labels: {},
    idempotency_key: null,
    request_hash: null,
    correlation_id: "corr-1",
    local_time: null,
    deliver_at: createdAt,
    attempts: 2,
    max_attempts: 4,
    next_attempt_at: null,
    last_error: "",
    provider_message_id: "",
    last_sequence: 5,
    created_at: createdAt,
    updated_at: createdAt,
  };
}

const specs = {
  small: create(NotificationSpecSchema, {
    channel: Channel.EMAIL,
    recipient: { userId: "user-7", address: { case: "email", value: "a@example.com" } },
    body: { case: "content", value: { subject: "Hi", text: "Your code is 123456" } },
  }),
  // Over 127 bytes: the spec's length takes two bytes of varint.
  large: create(NotificationSpecSchema, {
    channel: Channel.EMAIL,
    recipient: { userId: "user-7", address: { case: "email", value: "a@example.com" } },
    body: { case: "template", value: { templateId: "welcome", version: 3, variables: { name: "Ada", "2": "b", "1": "a", long: "x".repeat(400) } } },
    labels: { campaign: "spring" },
  }),
};

describe("Dispatch records around the stored spec", () => {
  for (const [name, spec] of Object.entries(specs)) {
    it(`head || spec || tail is the whole Dispatch, byte for byte (${name} spec)`, () => {
      const bytes = toBinary(NotificationSpecSchema, spec);
      const whole = toBinary(
        DispatchSchema,
        create(DispatchSchema, {
          notificationId: row(bytes).id,
          tenant: "acme",
          notification: spec,
          attempt: 3,
          createTime: timestampFromDate(createdAt),
          correlationId: "corr-1",
        }),
      );
      const { head, tail } = dispatchFrame(row(bytes), 3, bytes.length);
      expect(Buffer.concat([head, bytes, tail])).toEqual(Buffer.from(whole));
      expect(Buffer.from(dispatchRecord(row(bytes), 3).value)).toEqual(Buffer.from(whole));
      expect(fromBinary(DispatchSchema, whole).notification).toEqual(spec);
    });
  }

  it("a row read without its spec gets the head as value and the tail to append, nothing else differs", () => {
    const bytes = toBinary(NotificationSpecSchema, specs.large);
    const { spec: _spec, ...rest } = row(bytes);
    const full = transitionWrites(row(bytes), { detail: "released" });
    const framed = transitionWrites({ ...rest, spec_length: bytes.length }, { detail: "released" });
    expect(framed.event).toEqual(full.event);
    const [dispatch, status] = framed.outbox;
    expect(Buffer.concat([dispatch!.value, bytes, dispatch!.specTail!])).toEqual(Buffer.from(full.outbox[0]!.value));
    expect({ ...dispatch, value: undefined, specTail: undefined }).toEqual({ ...full.outbox[0], value: undefined });
    expect(status).toEqual(full.outbox[1]);
  });
});

describe("sleepUntilDue", () => {
  const now = new Date("2026-11-30T10:00:00.000Z");
  const at = (ms: number) => new Date(now.getTime() + ms);

  it("sleeps until the next due row to the millisecond, however close, at most pollMs", () => {
    expect(sleepUntilDue(at(7), now, 200)).toBe(7);
    expect(sleepUntilDue(at(1), now, 200)).toBe(1);
    expect(sleepUntilDue(at(0), now, 200)).toBe(1); // due within this millisecond (µs in the database)
    expect(sleepUntilDue(at(5_000), now, 200)).toBe(200);
    expect(sleepUntilDue(null, now, 200)).toBe(200);
  });

  it("backs off a little when rows are due already (another instance holds them)", () => {
    expect(sleepUntilDue(at(-1), now, 200)).toBe(20);
    expect(sleepUntilDue(at(-60_000), now, 10)).toBe(10);
  });
});
