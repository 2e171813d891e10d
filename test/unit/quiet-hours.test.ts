import { describe, expect, it } from "vitest";
import { ConnectError } from "@connectrpc/connect";
import { checkQuietHours, instantOfWallClock, quietUntil } from "../../src/domain/quiet-hours.js";

// Quiet hours read in the recipient's zone, across daylight-saving changes (Europe/Berlin: clocks
// go 02:00 → 03:00 on 2026-03-29 and 03:00 → 02:00 on 2026-10-25; America/New_York: 2026-03-08
// and 2026-11-01).

const at = (iso: string) => new Date(iso);
const iso = (d: Date | undefined) => d?.toISOString();

describe("quiet hours", () => {
  it("outside the window: nothing to wait for; inside: the end, today or tomorrow across midnight", () => {
    const night = { start: "22:00", end: "07:00" };
    // 20:00 in Berlin (CET, +1) is 19:00Z: outside.
    expect(quietUntil(at("2026-01-15T19:00:00Z"), "Europe/Berlin", night)).toBeUndefined();
    // 23:30 Berlin → ends 07:00 the next morning, 06:00Z.
    expect(iso(quietUntil(at("2026-01-15T22:30:00Z"), "Europe/Berlin", night))).toBe("2026-01-16T06:00:00.000Z");
    // 03:00 Berlin → ends 07:00 the same morning.
    expect(iso(quietUntil(at("2026-01-16T02:00:00Z"), "Europe/Berlin", night))).toBe("2026-01-16T06:00:00.000Z");
    // The start minute is inside, the end minute outside.
    expect(quietUntil(at("2026-01-15T21:00:00Z"), "Europe/Berlin", night)).toBeDefined();
    expect(quietUntil(at("2026-01-16T06:00:00Z"), "Europe/Berlin", night)).toBeUndefined();
    // A window within one day.
    const lunch = { start: "12:00", end: "13:30" };
    expect(iso(quietUntil(at("2026-07-01T10:15:00Z"), "Europe/Berlin", lunch))).toBe("2026-07-01T11:30:00.000Z");
  });

  it("follows the wall clock across a spring-forward night: 07:00 is 07:00 CEST, one hour less in UTC", () => {
    const night = { start: "22:00", end: "07:00" };
    // 23:00 CET on 2026-03-28 (22:00Z); the night loses an hour; 07:00 CEST on 03-29 is 05:00Z.
    expect(iso(quietUntil(at("2026-03-28T22:00:00Z"), "Europe/Berlin", night))).toBe("2026-03-29T05:00:00.000Z");
    // New York: 23:00 EST on 03-07 (04:00Z on 03-08); 07:00 EDT is 11:00Z.
    expect(iso(quietUntil(at("2026-03-08T04:00:00Z"), "America/New_York", night))).toBe("2026-03-08T11:00:00.000Z");
  });

  it("follows the wall clock across a fall-back night: 07:00 CET, one hour more in UTC", () => {
    const night = { start: "22:00", end: "07:00" };
    // 23:00 CEST on 2026-10-24 (21:00Z); 07:00 CET on 10-25 is 06:00Z.
    expect(iso(quietUntil(at("2026-10-24T21:00:00Z"), "Europe/Berlin", night))).toBe("2026-10-25T06:00:00.000Z");
  });

  it("an end the clock skips ends the window at the change; one it shows twice, the first time", () => {
    // Berlin 2026-03-29: 02:30 does not exist; the clock jumps from 02:00 CET (01:00Z) to 03:00 CEST.
    expect(iso(instantOfWallClock(2026, 3, 29, 2, 30, "Europe/Berlin"))).toBe("2026-03-29T01:00:00.000Z");
    expect(iso(quietUntil(at("2026-03-29T00:30:00Z"), "Europe/Berlin", { start: "01:00", end: "02:30" }))).toBe("2026-03-29T01:00:00.000Z");
    // Berlin 2026-10-25: 02:30 happens at 00:30Z (CEST) and again at 01:30Z (CET): the first.
    expect(iso(instantOfWallClock(2026, 10, 25, 2, 30, "Europe/Berlin"))).toBe("2026-10-25T00:30:00.000Z");
    // An ordinary minute is itself.
    expect(iso(instantOfWallClock(2026, 6, 1, 9, 15, "Asia/Kolkata"))).toBe("2026-06-01T03:45:00.000Z");
  });

  it("refuses a malformed time or an empty window, naming the field", () => {
    const message = (start: string, end: string) => {
      try {
        checkQuietHours({ start, end }, "preferences.quiet_hours");
      } catch (e) {
        return (e as ConnectError).rawMessage;
      }
      return "accepted";
    };
    expect(message("22:00", "07:00")).toBe("accepted");
    expect(message("24:00", "07:00")).toBe('preferences.quiet_hours.start: must be a wall-clock time HH:MM (00:00 to 23:59), got "24:00"');
    expect(message("22:00", "7:00")).toBe('preferences.quiet_hours.end: must be a wall-clock time HH:MM (00:00 to 23:59), got "7:00"');
    expect(message("08:00", "08:00")).toBe("preferences.quiet_hours: start and end must differ (an empty window is no quiet hours: leave it unset)");
  });
});
