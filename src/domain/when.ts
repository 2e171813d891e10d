import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { DateTime, IANAZone } from "luxon";
import type { LocalTime } from "../../gen/herald/v1/notification_pb.js";
import type { ScheduleRequest } from "../../gen/herald/v1/notification_service_pb.js";
import { echo, invalidArgument, limits } from "./validate.js";
import { instantsOfWallClock } from "./wall-clock.js";

// Schedule's `when`, resolved once at accept time to the instant stored as
// deliver_time. Local times keep their wall-clock form too, so reads can show
// what the caller asked for.

export interface WhenOptions {
  now: Date;
  /** How far ahead of `now` the instant may be (inclusive). */
  horizonMs: number;
  /** How far ahead of `now` the instant must at least be; 0 means just "after now". @defaultValue 0 */
  minLeadMs?: number;
}

export interface ResolvedWhen {
  deliverAt: Date;
  /** Set when the caller used `local_time`, as given. */
  localTime?: { dateTime: string; timeZone: string };
}

// The google.protobuf.Timestamp range: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
const minSeconds = -62_135_596_800n;
const maxSeconds = 253_402_300_799n;
const minute = 60_000;
const day = 86_400_000;

// YYYY-MM-DDTHH:MM[:SS[.fff]], deliberately without Z or an offset: the zone
// comes from time_zone, and two sources of truth would have to be reconciled.
// Hour 24 is excluded here because luxon would read it as the next day's 00:00.
const localDateTime = /^(\d{4})-(\d{2})-(\d{2})T([01]\d|2[0-3]):(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?$/;
// IANA names only ("Europe/Berlin", "UTC", "Etc/GMT+5"): a leading letter rules
// out bare offsets like "+02:00", which newer Intl implementations accept as zones.
const zoneName = /^[A-Za-z][A-Za-z0-9_+\-/]*$/;

/** A non-empty IANA time zone name (Schedule's local_time, a recipient's time_zone). */
export function validateTimeZone(zone: string, path: string): void {
  if (zone.length > limits.timeZoneMaxChars || !zoneName.test(zone) || !IANAZone.isValidZone(zone)) {
    throw invalidArgument(path, `must be an IANA time zone name like Europe/Berlin, got ${echo(zone)}`);
  }
}

/** Resolves ScheduleRequest.when to an instant; throws ConnectError(InvalidArgument) naming the field. */
export function resolveDeliverAt(when: ScheduleRequest["when"], opts: WhenOptions): ResolvedWhen {
  switch (when.case) {
    case "deliverAt": {
      const at = timestampInRange(when.value, "deliver_at");
      const problem = windowProblem(at, opts);
      if (problem === "past") throw invalidArgument("deliver_at", "must be in the future");
      if (problem === "soon") throw invalidArgument("deliver_at", `must be at least ${duration(opts.minLeadMs ?? 0)} in the future`);
      if (problem === "beyond") throw invalidArgument("deliver_at", `must be within ${duration(opts.horizonMs)}`);
      return { deliverAt: at };
    }
    case "localTime": {
      const at = resolveLocalTime(when.value, "local_time");
      const problem = windowProblem(at, opts);
      const resolves = `resolves to ${at.toISOString()}, which`;
      if (problem === "past") throw invalidArgument("local_time", `${resolves} is in the past`);
      if (problem === "soon") throw invalidArgument("local_time", `${resolves} is less than ${duration(opts.minLeadMs ?? 0)} ahead`);
      if (problem === "beyond") throw invalidArgument("local_time", `${resolves} is not within ${duration(opts.horizonMs)}`);
      return { deliverAt: at, localTime: { dateTime: when.value.dateTime, timeZone: when.value.timeZone } };
    }
    default:
      throw invalidArgument("when", "set deliver_at or local_time");
  }
}

function timestampInRange(ts: Timestamp, path: string): Date {
  if (!Number.isInteger(ts.nanos) || ts.nanos < 0 || ts.nanos > 999_999_999) {
    throw invalidArgument(`${path}.nanos`, "must be 0 to 999999999");
  }
  // Outside this range Date is Invalid, and every comparison with NaN is false.
  if (ts.seconds < minSeconds || ts.seconds > maxSeconds) {
    throw invalidArgument(`${path}.seconds`, "must be between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z");
  }
  return timestampDate(ts);
}

function windowProblem(at: Date, { now, horizonMs, minLeadMs = 0 }: WhenOptions): "past" | "soon" | "beyond" | undefined {
  const t = at.getTime();
  if (t <= now.getTime()) return "past";
  if (t < now.getTime() + minLeadMs) return "soon";
  if (t > now.getTime() + horizonMs) return "beyond";
  return undefined;
}

/** The instant a wall-clock time in an IANA zone means: the earlier one if ambiguous, an error if skipped. */
function resolveLocalTime(lt: LocalTime, path: string): Date {
  const dtPath = `${path}.date_time`;
  if (lt.dateTime === "") throw invalidArgument(dtPath, "is required");
  const m = localDateTime.exec(lt.dateTime);
  if (!m) throw invalidArgument(dtPath, "must be a local date-time like 2026-11-23T09:00:00, without offset");
  const [, year, month, dayOfMonth, hour, min, sec = "0", frac = ""] = m;
  // Wall-clock fields read as if in UTC; luxon flags Feb 30, minute 60 and the like.
  const wallClock = DateTime.fromObject(
    {
      year: Number(year),
      month: Number(month),
      day: Number(dayOfMonth),
      hour: Number(hour),
      minute: Number(min),
      second: Number(sec),
      millisecond: Number(frac.padEnd(3, "0")),
    },
    { zone: "UTC" },
  );
  if (!wallClock.isValid) throw invalidArgument(dtPath, `${echo(lt.dateTime)} is not a valid date and time`);

  const tzPath = `${path}.time_zone`;
  if (lt.timeZone === "") throw invalidArgument(tzPath, "is required");
  validateTimeZone(lt.timeZone, tzPath);
  // None in a gap (refused), two in an overlap (the earlier): wall-clock.ts.
  const fits = instantsOfWallClock(wallClock.toMillis(), lt.timeZone);
  if (fits.length === 0) {
    throw invalidArgument(dtPath, `${lt.dateTime} does not exist in ${lt.timeZone} (skipped by a daylight-saving change)`);
  }
  return new Date(fits[0]!);
}

/** A span for messages: "366 days", "2 hours", "30 seconds", or "1500 ms". */
function duration(ms: number): string {
  const units: [number, string][] = [[day, "day"], [3_600_000, "hour"], [minute, "minute"], [1000, "second"]];
  for (const [size, name] of units) {
    if (ms >= size && ms % size === 0) return `${ms / size} ${name}${ms === size ? "" : "s"}`;
  }
  return `${ms} ms`;
}
