import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { Channel, Status } from "../../gen/herald/v1/notification_pb.js";
import { WatchStatusRequestSchema } from "../../gen/herald/v1/notification_service_pb.js";
import { planWatch, selects, type WatchSelection } from "../../src/domain/watch-request.js";
import { createCursorCodec } from "../../src/domain/cursor.js";
import { expectInvalid } from "../support/expect-invalid.js";

type RequestInit = Exclude<MessageInitShape<typeof WatchStatusRequestSchema>, { $typeName: string }>;
const request = (init: RequestInit = {}) => create(WatchStatusRequestSchema, init);
const cursors = createCursorCodec(Buffer.from("watch-request test key"));
const plan = (init: RequestInit = {}, tenant = "acme") => planWatch(tenant, request(init), cursors);

const ID = "0190a5c4-7f1e-7c3a-9d2b-1a2b3c4d5e6f";
// The Timestamp range of google/protobuf/timestamp.proto, in seconds.
const MIN_SECONDS = -62135596800n; // 0001-01-01T00:00:00Z
const MAX_SECONDS = 253402300799n; // 9999-12-31T23:59:59Z

describe("planWatch: valid requests", () => {
  it("an empty request watches the whole tenant, every status and channel, live only", () => {
    expect(plan({}, "tenant-7")).toEqual({
      selection: { tenant: "tenant-7", statuses: new Set(), channels: new Set() },
      snapshot: false,
    });
  });

  it("takes the tenant from the argument, whatever the selector", () => {
    expect(plan({ selector: { case: "notificationId", value: ID } }, "t-a").selection.tenant).toBe("t-a");
    expect(plan({ selector: { case: "userId", value: "ada" } }, "t-b").selection.tenant).toBe("t-b");
    expect(plan({}, "t-c").selection.tenant).toBe("t-c");
  });

  it("lowercases a notification id given in upper case (stored ids are lowercase)", () => {
    expect(plan({ selector: { case: "notificationId", value: ID.toUpperCase() } }).selection).toEqual({
      tenant: "acme",
      notificationId: ID,
      statuses: new Set(),
      channels: new Set(),
    });
  });

  it("keeps a user id exactly as given, up to 256 code points", () => {
    expect(plan({ selector: { case: "userId", value: "Ada Lovelace" } }).selection.userId).toBe("Ada Lovelace");
    expect(plan({ selector: { case: "userId", value: "u".repeat(256) } }).selection.userId).toBe("u".repeat(256));
    // 256 astral characters are 512 UTF-16 units, still 256 characters.
    const astral = "😀".repeat(256);
    expect(plan({ selector: { case: "userId", value: astral } }).selection.userId).toBe(astral);
  });

  it("turns status and channel filters into sets, repeats collapsed", () => {
    const p = plan({ statuses: [Status.SENT, Status.FAILED, Status.SENT], channels: [Channel.SMS, Channel.WEBHOOK] });
    expect([...p.selection.statuses]).toEqual([Status.SENT, Status.FAILED]);
    expect([...p.selection.channels]).toEqual([Channel.SMS, Channel.WEBHOOK]);
  });

  it("decodes `after` into the feed position, 0 included", () => {
    expect(plan({ after: cursors.encode("acme", 0) }).after).toBe(0);
    expect(plan({ after: cursors.encode("acme", 123_456) }).after).toBe(123_456);
    expect(plan({ after: "h1.zz" }).after).toBe(36 * 36 - 1);
    expect(plan({}).after).toBeUndefined();
  });

  it("keeps snapshot and converts snapshot_since to a Date, at both ends of the Timestamp range", () => {
    expect(plan({ snapshot: true })).toEqual({
      selection: { tenant: "acme", statuses: new Set(), channels: new Set() },
      snapshot: true,
    });
    expect(plan({ snapshot: true, snapshotSince: { seconds: 1_700_000_000n, nanos: 5_000_000 } }).snapshotSince).toEqual(
      new Date(1_700_000_000_005),
    );
    expect(plan({ snapshot: true, snapshotSince: { seconds: MIN_SECONDS } }).snapshotSince?.toISOString()).toBe("0001-01-01T00:00:00.000Z");
    expect(plan({ snapshot: true, snapshotSince: { seconds: MAX_SECONDS, nanos: 999_000_000 } }).snapshotSince?.toISOString()).toBe(
      "9999-12-31T23:59:59.999Z",
    );
    // The largest nanos value is valid too (the Date rounds it to the next millisecond).
    expect(plan({ snapshot: true, snapshotSince: { seconds: 0n, nanos: 999_999_999 } }).snapshotSince).toEqual(new Date(1000));
  });

  it("keeps both after and snapshot (the handler resumes and ignores the snapshot)", () => {
    expect(plan({ after: "h1.a", snapshot: true })).toMatchObject({ after: 10, snapshot: true });
  });
});

describe("planWatch: each rule's exact message", () => {
  it("after: anything that is not one of our cursors", () => {
    for (const after of ["not-a-cursor", "h1.", "h1.-1", "h1.A", "h2.1", "h1.zzzzzzzzzzzz", " h1.1"]) {
      expectInvalid(() => plan({ after }), "after", "must be a cursor from a previous WatchStatusResponse");
    }
  });

  it("notification_id: required and a UUID", () => {
    expectInvalid(() => plan({ selector: { case: "notificationId", value: "" } }), "notification_id", "is required");
    for (const value of ["nope", `${ID}0`, ID.replaceAll("-", ""), `{${ID}}`]) {
      expectInvalid(
        () => plan({ selector: { case: "notificationId", value } }),
        "notification_id",
        "must be a UUID like 123e4567-e89b-12d3-a456-426614174000",
      );
    }
  });

  it("user_id: not empty, at most 256 characters, no control characters", () => {
    expectInvalid(
      () => plan({ selector: { case: "userId", value: "" } }),
      "user_id",
      "must not be empty (leave the selector unset to watch the whole tenant)",
    );
    expectInvalid(() => plan({ selector: { case: "userId", value: "u".repeat(257) } }), "user_id", "must be at most 256 characters");
    expectInvalid(() => plan({ selector: { case: "userId", value: "😀".repeat(257) } }), "user_id", "must be at most 256 characters");
    for (const value of ["a\u0000b", "tab\there", "line\n", "\u001f", "del\u007f"]) {
      expectInvalid(() => plan({ selector: { case: "userId", value } }), "user_id", "must not contain control characters");
    }
  });

  // recipient.user_id (validate.ts) rejects C1 controls U+0080–U+009F too, so a user id
  // holding one can never be stored; watching it should be refused the same way.
  it("user_id: C1 control characters are refused like Create refuses them", () => {
    for (const value of ["a\u0085b", "\u0080", "x\u009f"]) {
      expectInvalid(() => plan({ selector: { case: "userId", value } }), "user_id", "must not contain control characters");
    }
  });

  it("statuses[i]: a known status other than STATUS_UNSPECIFIED, naming the index", () => {
    const rule = "must be a known status other than STATUS_UNSPECIFIED";
    expectInvalid(() => plan({ statuses: [Status.UNSPECIFIED] }), "statuses[0]", rule);
    expectInvalid(() => plan({ statuses: [Status.SENT, 99 as Status] }), "statuses[1]", rule);
    expectInvalid(() => plan({ statuses: [Status.SENT, Status.FAILED, -1 as Status] }), "statuses[2]", rule);
    // Every known status passes.
    const all = [1, 2, 3, 4, 5, 6, 7, 8, 9] as Status[];
    expect(plan({ statuses: all }).selection.statuses.size).toBe(9);
  });

  it("channels[i]: a known channel other than CHANNEL_UNSPECIFIED, naming the index", () => {
    const rule = "must be a known channel other than CHANNEL_UNSPECIFIED";
    expectInvalid(() => plan({ channels: [Channel.UNSPECIFIED] }), "channels[0]", rule);
    expectInvalid(() => plan({ channels: [Channel.EMAIL, 5 as Channel] }), "channels[1]", rule);
    const all = [Channel.EMAIL, Channel.SMS, Channel.PUSH, Channel.WEBHOOK];
    expect([...plan({ channels: all }).selection.channels]).toEqual(all);
  });

  it("snapshot_since: only with snapshot", () => {
    expectInvalid(() => plan({ snapshotSince: { seconds: 1n } }), "snapshot_since", "is only allowed with snapshot");
    // Even the zero Timestamp counts as set.
    expectInvalid(() => plan({ snapshotSince: {} }), "snapshot_since", "is only allowed with snapshot");
  });

  it("snapshot_since: inside the Timestamp range, nanos in [0, 999999999]", () => {
    const cases: RequestInit["snapshotSince"][] = [
      { seconds: MIN_SECONDS - 1n },
      { seconds: MAX_SECONDS + 1n },
      { seconds: 0n, nanos: -1 },
      { seconds: 0n, nanos: 1_000_000_000 },
    ];
    for (const snapshotSince of cases) {
      expectInvalid(() => plan({ snapshot: true, snapshotSince }), "snapshot_since", "must be a valid timestamp");
    }
  });
});

describe("selects", () => {
  const event = { notificationId: ID, userId: "ada", status: Status.SENT, channel: Channel.EMAIL };
  const selection = (over: Partial<WatchSelection> = {}): WatchSelection => ({
    tenant: "acme",
    statuses: new Set(),
    channels: new Set(),
    ...over,
  });

  it("a tenant-wide selection without filters takes every event", () => {
    expect(selects(selection(), event)).toBe(true);
    expect(selects(selection(), { ...event, userId: "bob", status: Status.QUEUED, channel: Channel.PUSH })).toBe(true);
  });

  it("a notification selector takes only that notification", () => {
    const s = selection({ notificationId: ID });
    expect(selects(s, event)).toBe(true);
    expect(selects(s, { ...event, notificationId: "0190a5c4-7f1e-7c3a-9d2b-000000000000" })).toBe(false);
  });

  it("a user selector takes only that recipient, compared exactly", () => {
    const s = selection({ userId: "ada" });
    expect(selects(s, event)).toBe(true);
    expect(selects(s, { ...event, userId: "Ada" })).toBe(false);
    expect(selects(s, { ...event, userId: "bob" })).toBe(false);
  });

  it("status and channel filters narrow any selector", () => {
    const statuses = new Set([Status.SENT, Status.FAILED]);
    const channels = new Set([Channel.EMAIL]);
    for (const base of [selection(), selection({ userId: "ada" }), selection({ notificationId: ID })]) {
      const s = { ...base, statuses, channels };
      expect(selects(s, event)).toBe(true);
      expect(selects(s, { ...event, status: Status.FAILED })).toBe(true);
      expect(selects(s, { ...event, status: Status.QUEUED })).toBe(false);
      expect(selects(s, { ...event, channel: Channel.SMS })).toBe(false);
    }
  });

  it("every condition must hold: one mismatch is enough to refuse", () => {
    const s = selection({ userId: "ada", statuses: new Set([Status.SENT]), channels: new Set([Channel.EMAIL]) });
    expect(selects(s, event)).toBe(true);
    expect(selects(s, { ...event, userId: "bob" })).toBe(false);
    expect(selects(s, { ...event, status: Status.DELIVERED })).toBe(false);
    expect(selects(s, { ...event, channel: Channel.PUSH })).toBe(false);
    expect(selects(selection({ statuses: new Set([Status.SENT]) }), { ...event, status: Status.QUEUED })).toBe(false);
    expect(selects(selection({ channels: new Set([Channel.SMS]) }), event)).toBe(false);
  });
});
