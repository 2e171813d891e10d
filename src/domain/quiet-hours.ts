import { DateTime } from "luxon";
import { invalidArgument } from "./validate.js";
import { firstInstantAtOrAfter } from "./wall-clock.js";

// Quiet hours: a daily window of wall-clock time in the recipient's zone ("22:00" to "07:00")
// during which notifications that are not PRIORITY_HIGH wait. Read in the zone, never as a fixed
// offset, so the window follows daylight-saving changes: "07:00" is 07:00 on the clock on both
// sides of a change. A window end that the clock skips (02:30 on a spring-forward night) ends the
// window at the change itself (the first wall time at or after it); one the clock shows twice
// (an autumn night) ends it the first time.

export interface QuietHours {
  /** "HH:MM", 00:00-23:59: the window opens at this wall-clock minute. */
  start: string;
  /** "HH:MM": it closes here; before `start` means the window spans midnight. */
  end: string;
}

const hhmm = /^([01]\d|2[0-3]):([0-5]\d)$/;

/** Minutes after midnight of an "HH:MM" the caller checked (checkQuietHours). */
function minutesOf(t: string): number {
  const m = hhmm.exec(t)!;
  return Number(m[1]) * 60 + Number(m[2]);
}

/** INVALID_ARGUMENT naming the field unless both times are HH:MM and differ. */
export function checkQuietHours(q: QuietHours, path: string): void {
  for (const [field, value] of [["start", q.start], ["end", q.end]] as const) {
    if (!hhmm.test(value)) throw invalidArgument(`${path}.${field}`, `must be a wall-clock time HH:MM (00:00 to 23:59), got ${JSON.stringify(value.slice(0, 20))}`);
  }
  if (q.start === q.end) throw invalidArgument(path, "start and end must differ (an empty window is no quiet hours: leave it unset)");
}

/**
 * When `at` falls inside the quiet hours in `zone` (an IANA name), the instant they end;
 * undefined when it does not. The window includes its start minute and excludes its end minute.
 */
export function quietUntil(at: Date, zone: string, q: QuietHours): Date | undefined {
  const local = DateTime.fromJSDate(at, { zone });
  const now = local.hour * 60 + local.minute;
  const start = minutesOf(q.start);
  const end = minutesOf(q.end);
  const inside = start < end ? now >= start && now < end : now >= start || now < end;
  if (!inside) return undefined;
  // The end is today, or tomorrow when the window spans midnight and opened today.
  const endDay = start > end && now >= start ? local.plus({ days: 1 }) : local;
  return instantOfWallClock(endDay.year, endDay.month, endDay.day, Math.floor(end / 60), end % 60, zone);
}

/** The first instant whose wall clock in `zone` reads at least year-month-day hour:minute (wall-clock.ts). */
export function instantOfWallClock(year: number, month: number, day: number, hour: number, min: number, zone: string): Date {
  return new Date(firstInstantAtOrAfter(Date.UTC(year, month - 1, day, hour, min), zone));
}
