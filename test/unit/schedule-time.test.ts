import { timestampDate } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { parseDuration, scheduleWhen } from "../../src/cli/schedule-time.js";
import { UsageError } from "../../src/cli/usage-error.js";

const now = new Date("2030-06-01T12:00:00.000Z");
const instant = (w: ReturnType<typeof scheduleWhen>) => {
  if (w.case !== "deliverAt") throw new Error(`expected deliverAt, got ${w.case}`);
  return timestampDate(w.value).toISOString();
};

describe("herald schedule: when", () => {
  it("reads durations in s, m, h and d, alone or combined", () => {
    expect(parseDuration("90s")).toBe(90_000);
    expect(parseDuration("10m")).toBe(600_000);
    expect(parseDuration("1h")).toBe(3_600_000);
    expect(parseDuration("2d")).toBe(172_800_000);
    expect(parseDuration("1h30m")).toBe(5_400_000);
    for (const bad of ["", "10", "m", "0s", "1.5h", "-1h", "+1h", "1w", "1 h", "1H", "10m ", "1234567890s"]) {
      expect(parseDuration(bad), bad).toBeUndefined();
    }
  });

  it("--in and --at +DURATION are relative to now", () => {
    expect(instant(scheduleWhen({ in: "10m" }, now))).toBe("2030-06-01T12:10:00.000Z");
    expect(instant(scheduleWhen({ at: "+1h" }, now))).toBe("2030-06-01T13:00:00.000Z");
    expect(instant(scheduleWhen({ at: "+1d2h" }, now))).toBe("2030-06-02T14:00:00.000Z");
  });

  it("keeps --at RFC 3339 and --local with --tz", () => {
    expect(instant(scheduleWhen({ at: "2031-01-02T03:04:05Z" }, now))).toBe("2031-01-02T03:04:05.000Z");
    expect(instant(scheduleWhen({ at: "2031-01-02T03:04:05+02:00" }, now))).toBe("2031-01-02T01:04:05.000Z");
    expect(scheduleWhen({ local: "2031-01-02T09:00:00", tz: "Europe/Berlin" }, now)).toEqual({
      case: "localTime",
      value: { dateTime: "2031-01-02T09:00:00", timeZone: "Europe/Berlin" },
    });
  });

  it("refuses a bad duration or instant, none or several forms, and --local without --tz, naming the flag", () => {
    const cases: Array<[Parameters<typeof scheduleWhen>[0], string]> = [
      [{ in: "10" }, '--in expects a duration such as 90s, 10m, 1h30m or 2d, got "10"'],
      [{ at: "+soon" }, '--at + expects a duration such as 90s, 10m, 1h30m or 2d, got "soon"'],
      [{ at: "tomorrow" }, '--at expects an RFC 3339 instant (e.g. 2030-01-01T09:00:00Z) or +DURATION (e.g. +1h), got "tomorrow"'],
      [{}, "schedule needs one of --in DURATION, --at INSTANT|+DURATION, or --local DATE_TIME with --tz ZONE"],
      [{ in: "1m", at: "+1m" }, "schedule needs one of --in DURATION, --at INSTANT|+DURATION, or --local DATE_TIME with --tz ZONE"],
      [{ local: "2031-01-02T09:00:00" }, "--local DATE_TIME and --tz ZONE go together, e.g. --local 2030-01-01T09:00:00 --tz Europe/Berlin"],
      [{ tz: "Europe/Berlin" }, "--local DATE_TIME and --tz ZONE go together, e.g. --local 2030-01-01T09:00:00 --tz Europe/Berlin"],
    ];
    for (const [flags, message] of cases) {
      expect(() => scheduleWhen(flags, now), JSON.stringify(flags)).toThrow(new UsageError(message));
    }
  });
});
