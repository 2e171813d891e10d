import { status } from "@grpc/grpc-js";
import { isGood, type CallRecord } from "./deadline-load.js";
import { quantile } from "./stats.js";

// Reading an overload run: goodput (calls answered OK within their deadline) and how long the
// service took to return to its normal latency once the overload ended. Pure functions over
// call records, so the definitions are in one place and the scenario only reports them.

/** Good calls per second over [fromMs, toMs) of due time: the goodput rate of that stretch. */
export function goodputRate(records: readonly CallRecord[], deadlineMs: number, fromMs: number, toMs: number): number {
  let good = 0;
  for (const r of records) if (r.due >= fromMs && r.due < toMs && isGood(r, deadlineMs)) good++;
  return (good * 1000) / (toMs - fromMs);
}

/** Good calls per whole second of due time since `fromMs` (for the throughput chart). */
export function goodputSeries(records: readonly CallRecord[], deadlineMs: number, fromMs = 0): Array<[number, number]> {
  const counts: number[] = [];
  for (const r of records) {
    if (r.due < fromMs || !isGood(r, deadlineMs)) continue;
    const s = Math.floor((r.due - fromMs) / 1000);
    counts[s] = (counts[s] ?? 0) + 1;
  }
  return Array.from({ length: counts.length }, (_, s) => [s, counts[s] ?? 0]);
}

/**
 * p99 latency (ms from due time to answer) of the calls due in [fromMs, toMs). A call that was
 * not answered OK counts as infinitely slow: a window of refusals is not "fast".
 */
export function p99(records: readonly CallRecord[], fromMs: number, toMs: number): number {
  const latencies = records
    .filter((r) => r.due >= fromMs && r.due < toMs)
    .map((r) => (r.code === status.OK ? r.end - r.due : Infinity))
    .sort((a, b) => a - b);
  return quantile(latencies, 0.99);
}

/** The latency bound that counts as "normal again": twice the pre-overload p99, with 20 ms of slack for a busy machine. */
export const normalBound = (baselineP99: number) => Math.max(2 * baselineP99, baselineP99 + 20);

const WINDOW_MS = 1000;
const STEP_MS = 250;
/** How long latency must stay normal to count as recovered (not a lucky window). */
const HOLD_MS = 3000;

/**
 * Seconds from `endMs` (the overload's end) until latency is normal again: the start of the
 * first 1 s window (stepping 250 ms) from which every window for the next 3 s has its p99 within
 * `boundMs`. Undefined when that never happens before `untilMs`.
 */
export function recoverySeconds(records: readonly CallRecord[], endMs: number, untilMs: number, boundMs: number): number | undefined {
  const normal: boolean[] = [];
  for (let at = endMs; at + WINDOW_MS <= untilMs; at += STEP_MS) normal.push(p99(records, at, at + WINDOW_MS) <= boundMs);
  const hold = HOLD_MS / STEP_MS;
  for (let i = 0; i + hold < normal.length; i++) {
    if (normal.slice(i, i + hold + 1).every(Boolean)) return (i * STEP_MS) / 1000;
  }
  return undefined;
}
