import { timestampFromDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { UsageError } from "./usage-error.js";

// When `herald schedule` delivers: relative to now (`--in 10m`, `--at +1h`), at an
// instant (`--at 2030-01-01T09:00:00Z`), or at a wall-clock time in a zone
// (`--local 2030-01-01T09:00:00 --tz Europe/Berlin`, resolved by the server).
// Relative times are resolved here, against the clock passed in, so a README
// example or a cron line works on whatever day it runs.

export type ScheduleWhen =
  | { case: "deliverAt"; value: Timestamp }
  | { case: "localTime"; value: { dateTime: string; timeZone: string } };

const unitMs = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const durationPattern = /^(?:\d{1,9}[smhd])+$/;

/** `90s`, `10m`, `1h30m`, `2d`: a positive duration in ms; undefined if `text` is not one. */
export function parseDuration(text: string): number | undefined {
  if (!durationPattern.test(text)) return undefined;
  let ms = 0;
  for (const [, n, unit] of text.matchAll(/(\d+)([smhd])/g)) ms += Number(n) * unitMs[unit as keyof typeof unitMs];
  return ms > 0 ? ms : undefined;
}

export const durationHelp = "a duration such as 90s, 10m, 1h30m or 2d";

/** The schedule's `when` from the --in / --at / --local + --tz flags; exactly one form. */
export function scheduleWhen(
  v: { in?: string | undefined; at?: string | undefined; local?: string | undefined; tz?: string | undefined },
  now: Date,
): ScheduleWhen {
  const forms = [v.in, v.at, v.local ?? v.tz].filter((f) => f !== undefined).length;
  if (forms !== 1) throw new UsageError("schedule needs one of --in DURATION, --at INSTANT|+DURATION, or --local DATE_TIME with --tz ZONE");
  if (v.in !== undefined) return { case: "deliverAt", value: timestampFromDate(after(now, v.in, "--in")) };
  if (v.at !== undefined) {
    if (v.at.startsWith("+")) return { case: "deliverAt", value: timestampFromDate(after(now, v.at.slice(1), "--at +")) };
    const at = new Date(v.at);
    if (Number.isNaN(at.getTime())) {
      throw new UsageError(`--at expects an RFC 3339 instant (e.g. 2030-01-01T09:00:00Z) or +DURATION (e.g. +1h), got "${v.at}"`);
    }
    return { case: "deliverAt", value: timestampFromDate(at) };
  }
  if (!v.local || !v.tz) throw new UsageError("--local DATE_TIME and --tz ZONE go together, e.g. --local 2030-01-01T09:00:00 --tz Europe/Berlin");
  return { case: "localTime", value: { dateTime: v.local, timeZone: v.tz } };
}

function after(now: Date, text: string, flag: string): Date {
  const ms = parseDuration(text);
  if (ms === undefined) throw new UsageError(`${flag} expects ${durationHelp}, got "${text}"`);
  return new Date(now.getTime() + ms);
}
