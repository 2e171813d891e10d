import { IANAZone } from "luxon";

// Wall-clock times in an IANA zone, resolved to instants the way Herald's contract promises (not
// luxon's default, which moves a skipped time forward and picks the later of two).

const minute = 60_000;
const day = 86_400_000;

/**
 * The instants at which the clock in `zone` reads `wall` (a wall-clock time written as if UTC, in
 * ms): one normally, none when a daylight-saving change skips it, two when one repeats it (in
 * order). An instant t shows wall when wall - t equals the zone's offset at t; offsets lie within
 * ±14 h, so the offsets in force a day either side cover both sides of any one change.
 */
export function instantsOfWallClock(wall: number, zone: string): number[] {
  const tz = IANAZone.create(zone);
  return [...new Set(candidates(wall, tz).filter((t) => tz.offset(t) * minute === wall - t))].sort((a, b) => a - b);
}

/** The instants `wall` would be under the offsets in force a day before and a day after it. */
function candidates(wall: number, tz: IANAZone): number[] {
  return [tz.offset(wall - day), tz.offset(wall + day)].map((offsetMin) => wall - offsetMin * minute);
}

/**
 * The first instant whose wall clock in `zone` reads at least `wall`: the instant itself when it
 * exists once, the earlier of two in an overlap, and the moment of the change when the clock
 * skips it.
 */
export function firstInstantAtOrAfter(wall: number, zone: string): number {
  const fits = instantsOfWallClock(wall, zone);
  if (fits.length > 0) return fits[0]!;
  // Skipped: the change lies between the candidates the offsets either side give; find its minute.
  const tz = IANAZone.create(zone);
  const around = candidates(wall, tz);
  let lo = Math.min(...around);
  let hi = Math.max(...around);
  const before = tz.offset(lo);
  while (hi - lo > minute) {
    const mid = lo + Math.floor((hi - lo) / 2 / minute) * minute;
    if (tz.offset(mid) === before) lo = mid;
    else hi = mid;
  }
  return hi;
}
