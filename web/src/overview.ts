import type { Duration } from "@bufbuild/protobuf/wkt";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { CircuitState, type GetOverviewResponse } from "../../gen/herald/v1/operations_pb.js";
import { channelName } from "./notification-table.js";
import type { SeriesSet } from "./series.js";

// One GetOverview answer as the operations view uses it: per-channel figures
// in plain numbers (seconds, counts), and the points it adds to the charts'
// series. Every series is named "<figure>.<channel>" or "<figure>".

export const seconds = (d: Duration | undefined): number => (d ? Number(d.seconds) + d.nanos / 1e9 : 0);

export interface ChannelFigures {
  channel: string;
  group: string;
  /** NaN when Kafka did not answer. */
  lag: number;
  sentPerSecond: number;
  failedPerSecond: number;
  /** NaN when no SENT in the window to compute it from. */
  p50Seconds: number;
  p99Seconds: number;
  samples: number;
  /** Each provider's circuit breaker, in failover order; empty with one provider. */
  circuits: Array<{ provider: string; state: CircuitText; retryInSeconds: number }>;
  /** Lane "high": the channel's high-priority topic (herald.<channel>.high). */
  partitions: Array<{ lane: "main" | "high"; partition: number; logEndOffset: bigint; committedOffset: bigint; lag: number }>;
}

export type CircuitText = "closed" | "half-open" | "open" | "unknown";

const circuitText: Record<CircuitState, CircuitText> = {
  [CircuitState.UNSPECIFIED]: "unknown",
  [CircuitState.CLOSED]: "closed",
  [CircuitState.HALF_OPEN]: "half-open",
  [CircuitState.OPEN]: "open",
};

export interface OverviewFigures {
  /** The server's clock, ms since the epoch. */
  at: number;
  lagAvailable: boolean;
  channels: ChannelFigures[];
  outboxPending: number;
  outboxOldestSeconds: number;
  dueUnreleased: number;
  dueOldestSeconds: number;
  deadLettersOpen: number;
}

export function figures(o: GetOverviewResponse, now: () => number = Date.now): OverviewFigures {
  return {
    at: o.observeTime ? timestampMs(o.observeTime) : now(),
    lagAvailable: o.lagAvailable,
    channels: o.channels.map((c) => ({
      channel: channelName(c.channel),
      group: c.group,
      lag: o.lagAvailable ? Number(c.lag) : NaN,
      sentPerSecond: c.sentPerSecond,
      failedPerSecond: c.failedPerSecond,
      p50Seconds: c.e2eSamples > 0n ? seconds(c.e2eP50) : NaN,
      p99Seconds: c.e2eSamples > 0n ? seconds(c.e2eP99) : NaN,
      samples: Number(c.e2eSamples),
      circuits: c.circuits.map((k) => ({ provider: k.provider, state: circuitText[k.state] ?? "unknown", retryInSeconds: seconds(k.retryIn) })),
      partitions: c.partitions.map((p) => ({
        lane: p.topic.endsWith(".high") ? ("high" as const) : ("main" as const),
        partition: p.partition, logEndOffset: p.logEndOffset, committedOffset: p.committedOffset, lag: Number(p.lag) })),
    })),
    outboxPending: Number(o.outboxPending),
    outboxOldestSeconds: seconds(o.outboxOldestAge),
    dueUnreleased: Number(o.dueUnreleased),
    dueOldestSeconds: seconds(o.dueOldestAge),
    deadLettersOpen: Number(o.deadLettersOpen),
  };
}

/** Adds one snapshot's points: deliveries/s, failures/s, lag and p99 per channel; outbox pending and oldest age. */
export function recordFigures(set: SeriesSet, f: OverviewFigures): void {
  for (const c of f.channels) {
    set.record(`sent.${c.channel}`, f.at, c.sentPerSecond);
    set.record(`failed.${c.channel}`, f.at, c.failedPerSecond);
    set.record(`lag.${c.channel}`, f.at, c.lag);
    set.record(`p99.${c.channel}`, f.at, c.p99Seconds);
  }
  set.record("outbox.pending", f.at, f.outboxPending);
  set.record("outbox.oldest", f.at, f.outboxOldestSeconds);
}
