import { create, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { TimestampSchema } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { Channel, LocalTimeSchema, NotificationSpecSchema, Priority, type NotificationSpec } from "../../gen/herald/v1/notification_pb.js";
import type { ScheduleRequest } from "../../gen/herald/v1/notification_service_pb.js";
import { requestHash } from "../../src/domain/request-hash.js";

// The plain-object form of create()'s init (not an existing message), so Partial<> applies.
type SpecInit = Exclude<MessageInitShape<typeof NotificationSpecSchema>, NotificationSpec>;

function spec(over: Partial<SpecInit> = {}) {
  return create(NotificationSpecSchema, {
    channel: Channel.PUSH,
    recipient: { userId: "user-1", address: { case: "deviceToken", value: "tok-1" } },
    body: { case: "content", value: { subject: "Hi", text: "Hello", data: { a: "1", b: "2" } } },
    labels: { team: "growth", env: "prod" },
    ...over,
  });
}
const deliverAt = (seconds: bigint, nanos = 0): ScheduleRequest["when"] => ({ case: "deliverAt", value: create(TimestampSchema, { seconds, nanos }) });
const localTime = (dateTime: string, timeZone: string): ScheduleRequest["when"] => ({ case: "localTime", value: create(LocalTimeSchema, { dateTime, timeZone }) });
const hex = (parts: Parameters<typeof requestHash>[0]) => requestHash(parts).toString("hex");
const base = hex({ method: "create", spec: spec() });

describe("requestHash", () => {
  it("is a deterministic SHA-256", () => {
    const h = requestHash({ method: "create", spec: spec() });
    expect(h).toHaveLength(32);
    expect(h.toString("hex")).toBe(base);
  });

  it("ignores map insertion order, which protobuf binary does not", () => {
    const a = spec({
      labels: { team: "growth", env: "prod" },
      body: { case: "content", value: { subject: "Hi", text: "Hello", data: { a: "1", b: "2" } } },
    });
    const b = spec({
      labels: { env: "prod", team: "growth" },
      body: { case: "content", value: { subject: "Hi", text: "Hello", data: { b: "2", a: "1" } } },
    });
    expect(toBinary(NotificationSpecSchema, a)).not.toEqual(toBinary(NotificationSpecSchema, b));
    expect(hex({ method: "create", spec: a })).toBe(hex({ method: "create", spec: b }));
  });

  it("ignores template variable order", () => {
    const t = (variables: Record<string, string>) => spec({ body: { case: "template", value: { templateId: "t", variables } } });
    expect(hex({ method: "create", spec: t({ x: "1", y: "2" }) })).toBe(hex({ method: "create", spec: t({ y: "2", x: "1" }) }));
  });

  it("treats an absent when like an unset one", () => {
    expect(hex({ method: "create", spec: spec(), when: { case: undefined } })).toBe(base);
  });

  it.each<[string, Parameters<typeof requestHash>[0]]>([
    ["method", { method: "schedule", spec: spec() }],
    ["channel", { method: "create", spec: spec({ channel: Channel.SMS }) }],
    ["user_id", { method: "create", spec: spec({ recipient: { userId: "user-2", address: { case: "deviceToken", value: "tok-1" } } }) }],
    ["address kind with the same value", { method: "create", spec: spec({ recipient: { userId: "user-1", address: { case: "webhookUrl", value: "tok-1" } } }) }],
    ["subject", { method: "create", spec: spec({ body: { case: "content", value: { subject: "Hi!", text: "Hello", data: { a: "1", b: "2" } } } }) }],
    ["a data value", { method: "create", spec: spec({ body: { case: "content", value: { subject: "Hi", text: "Hello", data: { a: "1", b: "3" } } } }) }],
    ["an extra empty data entry", { method: "create", spec: spec({ body: { case: "content", value: { subject: "Hi", text: "Hello", data: { a: "1", b: "2", c: "" } } } }) }],
    ["content moved to a template", { method: "create", spec: spec({ body: { case: "template", value: { templateId: "Hi", variables: { a: "1", b: "2" } } } }) }],
    ["priority", { method: "create", spec: spec({ priority: Priority.HIGH }) }],
    ["a label value", { method: "create", spec: spec({ labels: { team: "growth", env: "dev" } }) }],
    ["a label key/value boundary", { method: "create", spec: spec({ labels: { team: "growth", en: "vprod" } }) }],
    ["a label missing", { method: "create", spec: spec({ labels: { team: "growth" } }) }],
    ["deliver_at set", { method: "create", spec: spec(), when: deliverAt(1_780_000_000n) }],
  ])("changes with %s", (_what, parts) => {
    expect(hex(parts)).not.toBe(base);
  });

  it("tells schedule times apart", () => {
    const hashes = new Set([
      hex({ method: "schedule", spec: spec(), when: deliverAt(1_780_000_000n) }),
      hex({ method: "schedule", spec: spec(), when: deliverAt(1_780_000_001n) }),
      hex({ method: "schedule", spec: spec(), when: deliverAt(1_780_000_000n, 1) }),
      hex({ method: "schedule", spec: spec(), when: localTime("2026-11-23T09:00:00", "Europe/Berlin") }),
      hex({ method: "schedule", spec: spec(), when: localTime("2026-11-23T09:00:00", "Europe/Paris") }),
      hex({ method: "schedule", spec: spec(), when: localTime("2026-11-23T09:00", "Europe/Berlin") }),
      hex({ method: "schedule", spec: spec() }),
    ]);
    expect(hashes.size).toBe(7);
  });

  it("hashes out-of-range input without throwing", () => {
    const when = deliverAt(10n ** 15n, -5);
    expect(() => requestHash({ method: "schedule", spec: spec({ channel: 42 as Channel }), when })).not.toThrow();
  });
});
