import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Status, type Channel, type StatusEvent } from "../../gen/herald/v1/notification_pb.js";
import type { Clock } from "../clock.js";
import { CHANNELS } from "../kafka/topics.js";

// How fast notifications flow, as this API instance sees them on the status feed (every instance
// reads the whole herald.status topic): SENT and FAILED per second over the last minute, and the
// end-to-end time of the last five minutes' SENT. Kept in memory, fed one event at a time by the
// feed, so the operations view costs no query and no scrape.
//
// A StatusEvent carries no creation time, so end to end is measured between two events of the
// same notification: its SENT event's time minus the time of its FIRST QUEUED event seen (accept
// for Create, release for Schedule; a retry's QUEUED does not restart the clock, so retries count
// from the first). Both times are the events' own, so a late or filled event measures the same.
// A SENT whose QUEUED came before this instance started (or was forgotten, below) gives no sample.
//
// Memory is bounded twice: at most `maxInFlight` notifications are remembered between QUEUED and
// their outcome (beyond, the oldest is forgotten and counted in `dropped`: a notification that
// never reaches an outcome, or one whose QUEUED this instance saw but whose SENT went elsewhere,
// must not grow the map forever), and each channel keeps its newest `maxSamples` samples.

/** Rates are over this window. */
export const RATE_WINDOW_MS = 60_000;
/** Percentiles are over the samples of this window. */
export const LATENCY_WINDOW_MS = 300_000;

export interface FlowWindowOptions {
  /** Stamps each event's arrival: the windows are "the last minute / five minutes" on this clock. */
  clock: Clock;
  /** Notifications remembered between their first QUEUED and their outcome. @defaultValue 100_000 */
  maxInFlight?: number;
  /** End-to-end samples kept per channel (the newest). @defaultValue 10_000 */
  maxSamples?: number;
}

export interface ChannelFlow {
  /** SENT per second over the last minute. */
  sentPerSecond: number;
  /** FAILED and DEAD_LETTERED per second over the last minute. */
  failedPerSecond: number;
  /** Nearest-rank percentiles of the last five minutes' samples, in milliseconds (0 without samples). */
  e2eP50Ms: number;
  e2eP99Ms: number;
  /** How many samples the percentiles come from. */
  e2eSamples: number;
}

export interface FlowStats {
  /** Notifications remembered between their first QUEUED and their outcome. */
  inFlight: number;
  /** Notifications forgotten to keep `inFlight` within its bound. */
  dropped: number;
  /** SENT events with no QUEUED remembered for them (so no sample). */
  unmatched: number;
}

export interface FlowWindow {
  /** Takes one status event (any tenant, in feed order). Cheap; never throws. */
  observe(event: StatusEvent): void;
  /** The channel's figures now. */
  channel(channel: Channel): ChannelFlow;
  stats(): FlowStats;
}

const RATE_SECONDS = RATE_WINDOW_MS / 1000;

/** Events per second over the last RATE_WINDOW_MS, in one-second buckets (a ring, reused). */
class RateCounter {
  private readonly counts = new Float64Array(RATE_SECONDS);
  private readonly seconds = new Float64Array(RATE_SECONDS).fill(-1);

  add(nowMs: number): void {
    const second = Math.floor(nowMs / 1000);
    const i = second % RATE_SECONDS;
    if (this.seconds[i] !== second) {
      this.seconds[i] = second;
      this.counts[i] = 0;
    }
    this.counts[i]!++;
  }

  /** The current (partial) second and the 59 before it, over the whole minute. */
  perSecond(nowMs: number): number {
    const second = Math.floor(nowMs / 1000);
    let sum = 0;
    for (let i = 0; i < RATE_SECONDS; i++) {
      const s = this.seconds[i]!;
      if (s > second - RATE_SECONDS && s <= second) sum += this.counts[i]!;
    }
    return sum / RATE_SECONDS;
  }
}

/** The newest `size` end-to-end samples, each with its arrival time. */
class SampleRing {
  private readonly at: Float64Array;
  private readonly ms: Float64Array;
  private next = 0;
  private filled = 0;

  constructor(size: number) {
    this.at = new Float64Array(size);
    this.ms = new Float64Array(size);
  }

  add(nowMs: number, e2eMs: number): void {
    this.at[this.next] = nowMs;
    this.ms[this.next] = e2eMs;
    this.next = (this.next + 1) % this.at.length;
    this.filled = Math.min(this.filled + 1, this.at.length);
  }

  /** The samples that arrived since `sinceMs`, sorted ascending. */
  since(sinceMs: number): Float64Array {
    const out = new Float64Array(this.filled);
    let n = 0;
    for (let i = 0; i < this.filled; i++) if (this.at[i]! >= sinceMs) out[n++] = this.ms[i]!;
    // A typed array sorts numerically.
    return out.subarray(0, n).sort();
  }
}

/** Nearest rank: the smallest sample with at least p of them at or below it. */
function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)]!;
}

interface Lane {
  sent: RateCounter;
  failed: RateCounter;
  samples: SampleRing;
}

export function createFlowWindow(opts: FlowWindowOptions): FlowWindow {
  const { clock, maxInFlight = 100_000, maxSamples = 10_000 } = opts;
  const lanes = new Map<Channel, Lane>(
    CHANNELS.map((c) => [c, { sent: new RateCounter(), failed: new RateCounter(), samples: new SampleRing(maxSamples) }]),
  );
  // Notification id → its first QUEUED event's time. A Map iterates in insertion order, so the
  // first key is the oldest remembered: evicting it is O(1).
  const queued = new Map<string, number>();
  let dropped = 0;
  let unmatched = 0;

  return {
    observe(event) {
      const lane = lanes.get(event.channel);
      if (!lane) return;
      const id = event.notificationId;
      const now = clock.now();
      switch (event.status) {
        case Status.QUEUED:
          if (queued.has(id)) return; // a retry: the clock runs from the first QUEUED
          if (queued.size >= maxInFlight) {
            queued.delete(queued.keys().next().value!);
            dropped++;
          }
          queued.set(id, eventMs(event, now));
          return;
        case Status.SENT: {
          lane.sent.add(now);
          const from = queued.get(id);
          if (from === undefined) {
            unmatched++;
            return;
          }
          queued.delete(id);
          lane.samples.add(now, Math.max(0, eventMs(event, now) - from));
          return;
        }
        case Status.FAILED:
        case Status.DEAD_LETTERED:
          lane.failed.add(now);
          queued.delete(id);
          return;
        case Status.CANCELED:
          queued.delete(id);
          return;
        default:
          return;
      }
    },
    channel(channel) {
      const lane = lanes.get(channel);
      if (!lane) return { sentPerSecond: 0, failedPerSecond: 0, e2eP50Ms: 0, e2eP99Ms: 0, e2eSamples: 0 };
      const now = clock.now();
      const sorted = lane.samples.since(now - LATENCY_WINDOW_MS);
      return {
        sentPerSecond: lane.sent.perSecond(now),
        failedPerSecond: lane.failed.perSecond(now),
        e2eP50Ms: percentile(sorted, 0.5),
        e2eP99Ms: percentile(sorted, 0.99),
        e2eSamples: sorted.length,
      };
    },
    stats: () => ({ inFlight: queued.size, dropped, unmatched }),
  };
}

/** The event's own time; its arrival when it has none (never the case for events Herald writes). */
function eventMs(event: StatusEvent, arrivalMs: number): number {
  return event.time ? timestampMs(event.time) : arrivalMs;
}
