import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { DurationSchema, timestampFromMs, type Duration } from "@bufbuild/protobuf/wkt";
import { CircuitState, type GetOverviewResponseSchema } from "../../../../gen/herald/v1/operations_pb.js";
import type { Clock } from "../../../clock.js";
import type { FlowWindow } from "../../../feed/flow-window.js";
import { CHANNELS, channelName, LANES, workerGroup } from "../../../kafka/topics.js";
import type { Backlog } from "../../../store/backlog.js";
import type { CircuitReader, CircuitReading } from "./circuits.js";
import type { LagReader } from "./lag.js";

export interface OverviewDeps {
  /** The outbox, due rows and dead letters (src/store/backlog.ts); UnavailableError when PostgreSQL is down. */
  backlog(): Promise<Backlog>;
  lag: LagReader;
  /** The breakers of the channels with failover. @defaultValue none */
  circuits?: CircuitReader;
  /** This instance's view of the status feed's flow. */
  flow: Pick<FlowWindow, "channel">;
  clock: Clock;
}

type Overview = MessageInitShape<typeof GetOverviewResponseSchema>;

const stateOf: Record<CircuitReading["state"], CircuitState> = {
  closed: CircuitState.CLOSED,
  half_open: CircuitState.HALF_OPEN,
  open: CircuitState.OPEN,
};

/**
 * GetOverview: one snapshot of the pipeline. Deployment-wide counts, no tenant data, so any valid
 * key may read it. PostgreSQL is required (its figures are the core of the answer); Kafka is not:
 * without it the lag is reported unavailable and everything else is still answered.
 */
export function getOverviewHandler(deps: OverviewDeps) {
  return async (): Promise<Overview> => {
    const observed = deps.clock.now();
    const [backlog, lag, circuits] = await Promise.all([deps.backlog(), deps.lag.read(), deps.circuits?.read()]);
    const channels = CHANNELS.map((channel) => {
      const group = workerGroup(channel);
      // Both lanes: the high lane's group and topic are named on each of its partitions.
      const groups = new Set(LANES.map((lane) => workerGroup(channel, lane)));
      const partitions = (lag ?? [])
        .filter((p) => groups.has(p.group))
        .map((p) => ({
          group: p.group,
          topic: p.topic,
          partition: p.partition,
          logEndOffset: BigInt(p.logEndOffset),
          committedOffset: BigInt(p.committedOffset ?? -1),
          lag: BigInt(p.lag),
        }));
      const flow = deps.flow.channel(channel);
      return {
        channel,
        group,
        partitions,
        lag: partitions.reduce((sum, p) => sum + p.lag, 0n),
        sentPerSecond: flow.sentPerSecond,
        failedPerSecond: flow.failedPerSecond,
        e2eP50: duration(flow.e2eP50Ms / 1000),
        e2eP99: duration(flow.e2eP99Ms / 1000),
        e2eSamples: BigInt(flow.e2eSamples),
        circuits: (circuits?.get(channelName(channel)) ?? []).map(({ provider, reading }) => ({
          provider,
          state: reading ? stateOf[reading.state] : CircuitState.UNSPECIFIED,
          retryIn: duration((reading?.retryInMs ?? 0) / 1000),
        })),
      };
    });
    return {
      observeTime: timestampFromMs(observed),
      channels,
      outboxPending: BigInt(backlog.outboxPending),
      outboxOldestAge: duration(backlog.outboxOldestAgeSeconds),
      dueUnreleased: BigInt(backlog.dueUnreleased),
      dueOldestAge: duration(backlog.dueOldestAgeSeconds),
      deadLettersOpen: BigInt(backlog.deadLettersOpen),
      lagAvailable: lag !== undefined,
    };
  };
}

/**
 * Non-negative seconds as a Duration, nanos rounded to whole numbers: PostgreSQL's ages and the
 * percentiles are fractional milliseconds, which protobuf-es's durationFromMs would carry into
 * nanos as a fraction (not an int32).
 */
function duration(seconds: number): Duration {
  const s = Math.max(0, seconds);
  let whole = Math.floor(s);
  let nanos = Math.round((s - whole) * 1e9);
  if (nanos >= 1e9) {
    whole += 1;
    nanos -= 1e9;
  }
  return create(DurationSchema, { seconds: BigInt(whole), nanos });
}
