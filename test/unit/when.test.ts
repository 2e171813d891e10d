import { create } from "@bufbuild/protobuf";
import { timestampFromDate, TimestampSchema } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { LocalTimeSchema } from "../../gen/herald/v1/notification_pb.js";
import type { ScheduleRequest } from "../../gen/herald/v1/notification_service_pb.js";
import { resolveDeliverAt, type WhenOptions } from "../../src/domain/when.js";
import { expectInvalid } from "../support/expect-invalid.js";

const day = 86_400_000;
const now = new Date("2026-01-15T12:00:00.000Z");
const opts: WhenOptions = { now, horizonMs: 366 * day };

const at = (iso: string): ScheduleRequest["when"] => ({ case: "deliverAt", value: timestampFromDate(new Date(iso)) });
const local = (dateTime: string, timeZone: string): ScheduleRequest["when"] => ({
  case: "localTime",
  value: create(LocalTimeSchema, { dateTime, timeZone }),
});
/** The resolved instant, as an ISO string for readable assertions. */
const resolve = (when: ScheduleRequest["when"], o: WhenOptions = opts): string => resolveDeliverAt(when, o).deliverAt.toISOString();

/** Asserts fn throws InvalidArgument with exactly `${path}: ${rule}`. */

describe("resolveDeliverAt: when", () => {
  it("is required", () => {
    expectInvalid(() => resolveDeliverAt({ case: undefined }, opts), "when", "set deliver_at or local_time");
  });
});

describe("resolveDeliverAt: deliver_at", () => {
  it("returns the instant, without a local time", () => {
    expect(resolveDeliverAt(at("2026-02-01T08:30:00.250Z"), opts)).toEqual({ deliverAt: new Date("2026-02-01T08:30:00.250Z") });
  });
  it("rejects now and the past", () => {
    expectInvalid(() => resolve(at("2026-01-15T12:00:00.000Z")), "deliver_at", "must be in the future");
    expectInvalid(() => resolve(at("2025-12-31T00:00:00.000Z")), "deliver_at", "must be in the future");
  });
  it("accepts 1 ms after now", () => {
    expect(resolve(at("2026-01-15T12:00:00.001Z"))).toBe("2026-01-15T12:00:00.001Z");
  });
  it("accepts exactly the horizon and rejects past it", () => {
    expect(resolve(at("2027-01-16T12:00:00.000Z"))).toBe("2027-01-16T12:00:00.000Z");
    expectInvalid(() => resolve(at("2027-01-16T12:00:00.001Z")), "deliver_at", "must be within 366 days");
  });
  it("words other horizons from horizonMs", () => {
    expectInvalid(() => resolve(at("2026-01-15T15:00:00Z"), { now, horizonMs: 2 * 3_600_000 }), "deliver_at", "must be within 2 hours");
    expectInvalid(() => resolve(at("2026-01-17T12:00:00Z"), { now, horizonMs: day }), "deliver_at", "must be within 1 day");
  });
  it("enforces minLeadMs", () => {
    const o = { ...opts, minLeadMs: 30_000 };
    expectInvalid(() => resolve(at("2026-01-15T12:00:10Z"), o), "deliver_at", "must be at least 30 seconds in the future");
    expect(resolve(at("2026-01-15T12:00:30Z"), o)).toBe("2026-01-15T12:00:30.000Z");
  });
  it.each([-1, 1_000_000_000, 0.5])("rejects nanos %s", (nanos) => {
    const when: ScheduleRequest["when"] = { case: "deliverAt", value: create(TimestampSchema, { seconds: 1_780_000_000n, nanos }) };
    expectInvalid(() => resolve(when), "deliver_at.nanos", "must be 0 to 999999999");
  });
  it.each([-62_135_596_801n, 253_402_300_800n, 10n ** 15n])("rejects seconds %s outside the Timestamp range", (seconds) => {
    const when: ScheduleRequest["when"] = { case: "deliverAt", value: create(TimestampSchema, { seconds, nanos: 0 }) };
    expectInvalid(() => resolve(when), "deliver_at.seconds", "must be between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z");
  });
});

describe("resolveDeliverAt: local_time, normal times", () => {
  it.each([
    ["2026-11-23T09:00:00", "America/Los_Angeles", "2026-11-23T17:00:00.000Z"], // PST, UTC-8
    ["2026-07-01T09:00:00", "America/Los_Angeles", "2026-07-01T16:00:00.000Z"], // PDT, UTC-7
    ["2026-11-23T09:00:00", "Asia/Kolkata", "2026-11-23T03:30:00.000Z"], // IST, UTC+5:30, no DST
    ["2026-07-01T09:00:00", "Asia/Kolkata", "2026-07-01T03:30:00.000Z"],
    ["2026-11-23T09:00", "UTC", "2026-11-23T09:00:00.000Z"], // seconds optional
    ["2026-11-23T09:00:00.25", "Etc/UTC", "2026-11-23T09:00:00.250Z"], // fraction is milliseconds
    ["2026-11-23T09:00:00", "Etc/GMT+5", "2026-11-23T14:00:00.000Z"], // POSIX sign: GMT+5 is UTC-5
  ])("%s in %s is %s", (dateTime, zone, utc) => {
    expect(resolve(local(dateTime, zone))).toBe(utc);
  });
  it("returns the local time as given", () => {
    expect(resolveDeliverAt(local("2026-11-23T09:00:00", "Europe/Berlin"), opts)).toEqual({
      deliverAt: new Date("2026-11-23T08:00:00.000Z"),
      localTime: { dateTime: "2026-11-23T09:00:00", timeZone: "Europe/Berlin" },
    });
  });
});

describe("resolveDeliverAt: local_time across daylight-saving changes", () => {
  it("rejects a time skipped in America/New_York", () => {
    expectInvalid(() => resolve(local("2026-03-08T02:30:00", "America/New_York")), "local_time.date_time", "2026-03-08T02:30:00 does not exist in America/New_York (skipped by a daylight-saving change)");
  });
  it("rejects a time skipped in Europe/Berlin", () => {
    expectInvalid(() => resolve(local("2026-03-29T02:30:00", "Europe/Berlin")), "local_time.date_time", "2026-03-29T02:30:00 does not exist in Europe/Berlin (skipped by a daylight-saving change)");
  });
  it("rejects the first instant of a gap and accepts its edges", () => {
    expectInvalid(() => resolve(local("2026-03-08T02:00:00", "America/New_York")), "local_time.date_time", "2026-03-08T02:00:00 does not exist in America/New_York (skipped by a daylight-saving change)");
    expect(resolve(local("2026-03-08T01:59:59.999", "America/New_York"))).toBe("2026-03-08T06:59:59.999Z"); // EST
    expect(resolve(local("2026-03-08T03:00:00", "America/New_York"))).toBe("2026-03-08T07:00:00.000Z"); // EDT
  });
  it("rejects a half-hour gap (Australia/Lord_Howe)", () => {
    expectInvalid(() => resolve(local("2026-10-04T02:15", "Australia/Lord_Howe")), "local_time.date_time", "2026-10-04T02:15 does not exist in Australia/Lord_Howe (skipped by a daylight-saving change)");
  });
  it.each([
    ["2026-11-01T01:30:00", "America/New_York", "2026-11-01T05:30:00.000Z"], // EDT, not EST 06:30Z
    ["2026-11-01T01:00:00", "America/New_York", "2026-11-01T05:00:00.000Z"], // first minute of the overlap
    ["2026-11-01T02:00:00", "America/New_York", "2026-11-01T07:00:00.000Z"], // just after: EST only
    ["2026-10-25T02:30:00", "Europe/Berlin", "2026-10-25T00:30:00.000Z"], // CEST, not CET 01:30Z
    ["2026-04-05T02:30:00", "Australia/Sydney", "2026-04-04T15:30:00.000Z"], // AEDT, not AEST 16:30Z
  ])("resolves ambiguous %s in %s to the earlier instant %s", (dateTime, zone, utc) => {
    expect(resolve(local(dateTime, zone))).toBe(utc);
  });
});

describe("resolveDeliverAt: local_time rules", () => {
  it("requires date_time", () => {
    expectInvalid(() => resolve(local("", "Europe/Berlin")), "local_time.date_time", "is required");
  });
  it.each([
    "2026-11-23T09:00:00Z",
    "2026-11-23T09:00:00+01:00",
    "2026-11-23",
    "2026-11-23 09:00:00",
    "2026-11-23T9:00",
    "2026-11-23T24:00:00",
    "2026-11-23T09:00:00.1234",
    "+002026-11-23T09:00:00",
  ])("rejects the format of %j", (dateTime) => {
    expectInvalid(() => resolve(local(dateTime, "Europe/Berlin")), "local_time.date_time", "must be a local date-time like 2026-11-23T09:00:00, without offset");
  });
  it.each(["2026-02-29T09:00:00", "2026-04-31T09:00:00", "2026-13-01T09:00:00", "2026-11-23T09:60:00", "2026-11-23T09:00:60"])("rejects the impossible %j", (dateTime) => {
    expectInvalid(() => resolve(local(dateTime, "Europe/Berlin")), "local_time.date_time", `"${dateTime}" is not a valid date and time`);
  });
  it("requires time_zone", () => {
    expectInvalid(() => resolve(local("2026-11-23T09:00:00", "")), "local_time.time_zone", "is required");
  });
  it.each(["+02:00", "-0500", "UTC+2", "GMT-3", "Mars/Olympus_Mons", "Europe/Berlin ", "Z"])("rejects time_zone %j", (zone) => {
    expectInvalid(() => resolve(local("2026-11-23T09:00:00", zone)), "local_time.time_zone", `must be an IANA time zone name like Europe/Berlin, got ${JSON.stringify(zone)}`);
  });
  it("does not echo a huge time_zone", () => {
    expectInvalid(() => resolve(local("2026-11-23T09:00:00", "A".repeat(5000))), "local_time.time_zone", `must be an IANA time zone name like Europe/Berlin, got "${"A".repeat(40)}…"`);
  });
  it("rejects a local time that resolves to the past", () => {
    // 12:00 in Berlin is 11:00Z, an hour before now.
    expectInvalid(() => resolve(local("2026-01-15T12:00:00", "Europe/Berlin")), "local_time", "resolves to 2026-01-15T11:00:00.000Z, which is in the past");
  });
  it("accepts a local time just after now", () => {
    expect(resolve(local("2026-01-15T04:00:01", "America/Los_Angeles"))).toBe("2026-01-15T12:00:01.000Z");
  });
  it("rejects a local time beyond the horizon", () => {
    expectInvalid(() => resolve(local("2027-01-17T09:00:00", "Asia/Kolkata")), "local_time", "resolves to 2027-01-17T03:30:00.000Z, which is not within 366 days");
  });
  it("enforces minLeadMs", () => {
    expectInvalid(() => resolve(local("2026-01-15T13:00:10", "Europe/Berlin"), { ...opts, minLeadMs: 60_000 }), "local_time", "resolves to 2026-01-15T12:00:10.000Z, which is less than 1 minute ahead");
  });
});
