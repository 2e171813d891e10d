import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { Channel } from "../../gen/herald/v1/notification_pb.js";
import { CircuitState, GetOverviewResponseSchema } from "../../gen/herald/v1/operations_pb.js";
import { formatValue, maxOf, niceMax, pathData, scale, ticks } from "../../web/src/chart-geometry.js";
import { durationText } from "../../web/src/operations.js";
import { figures, recordFigures } from "../../web/src/overview.js";
import { startPolling } from "../../web/src/poll.js";
import { seriesSet } from "../../web/src/series.js";

// The operations view's pure parts, without a browser or a server: the series
// kept in the page, the chart arithmetic, a GetOverview answer turned into
// figures and points, and the polling loop.

describe("seriesSet", () => {
  it("keeps each line's points of the window before the newest time, oldest first", () => {
    const s = seriesSet(10_000);
    for (let t = 0; t <= 20_000; t += 2_000) s.record("a", t, t / 1000);
    s.record("b", 20_000, 7);
    expect(s.points("a").map((p) => p.t)).toEqual([10_000, 12_000, 14_000, 16_000, 18_000, 20_000]);
    expect(s.points("b")).toEqual([{ t: 20_000, v: 7 }]);
    expect(s.span()).toEqual({ from: 10_000, to: 20_000 });
    expect(s.last("a")).toEqual({ t: 20_000, v: 20 });
    expect(s.points("never")).toEqual([]);
  });

  it("trims every line when any line moves the window on", () => {
    const s = seriesSet(5_000);
    s.record("old", 0, 1);
    s.record("old", 4_000, 2);
    s.record("new", 9_000, 3);
    expect(s.points("old")).toEqual([{ t: 4_000, v: 2 }]);
  });

  it("drops a point older than the line's newest (an answer overtaken by a later one)", () => {
    const s = seriesSet(60_000);
    s.record("a", 2_000, 1);
    s.record("a", 1_000, 99);
    s.record("a", 2_000, 98);
    expect(s.points("a")).toEqual([{ t: 2_000, v: 1 }]);
  });

  it("spans from the oldest point kept while the page is younger than the window", () => {
    const s = seriesSet(300_000);
    expect(s.span()).toBeUndefined();
    s.record("a", 4_000, 1);
    s.record("b", 2_000, 1);
    s.record("a", 10_000, 1);
    expect(s.span()).toEqual({ from: 2_000, to: 10_000 });
  });
});

describe("chart geometry", () => {
  it("rounds the axis up to 1, 2 or 5 × 10^k", () => {
    expect([0, -3, NaN, Infinity, 0.3, 1, 1.01, 3, 7, 10, 11, 250, 999, 5000].map(niceMax)).toEqual([1, 1, 1, 1, 0.5, 1, 2, 5, 10, 10, 20, 500, 1000, 5000]);
  });

  it("finds the largest finite value of all lines, gaps ignored", () => {
    expect(maxOf([[{ t: 0, v: 3 }, { t: 1, v: NaN }], [{ t: 0, v: 8 }], []])).toBe(8);
    expect(maxOf([])).toBe(0);
  });

  it("ticks from 0 to the maximum", () => {
    expect(ticks(20)).toEqual([0, 5, 10, 15, 20]);
  });

  it("maps the window onto the plot and values from the bottom up, clamping above the maximum", () => {
    const s = scale({ width: 110, height: 70, left: 10, pad: 10 }, { from: 1000, to: 2000 }, 10);
    expect([s.x(1000), s.x(1500), s.x(2000)]).toEqual([10, 55, 100]);
    expect([s.y(0), s.y(5), s.y(10), s.y(50)]).toEqual([60, 35, 10, 10]);
  });

  it("draws a path that breaks at a gap and starts again after it", () => {
    const s = scale({ width: 110, height: 70, left: 10, pad: 10 }, { from: 0, to: 4 }, 10);
    const points = [
      { t: 0, v: 0 },
      { t: 1, v: 10 },
      { t: 2, v: NaN },
      { t: 3, v: 5 },
      { t: 4, v: 5 },
    ];
    expect(pathData(points, s)).toBe("M10,60 L32.5,10 M77.5,35 L100,35");
    expect(pathData([{ t: 0, v: NaN }], s)).toBe("");
  });

  it("draws a lone point as a dot (a zero-length line)", () => {
    const s = scale({ width: 110, height: 70, left: 10, pad: 10 }, { from: 0, to: 4 }, 10);
    expect(pathData([{ t: 0, v: 10 }, { t: 1, v: NaN }, { t: 4, v: 0 }], s)).toBe("M10,10 l0,0 M100,60 l0,0");
  });

  it("formats values for the axis and the legend", () => {
    expect([0, 5, 0.333, 1.5, 123.4, NaN].map(formatValue)).toEqual(["0", "5", "0.33", "1.5", "123", "–"]);
    expect([0.0425, 3.46, 200, NaN].map(durationText)).toEqual(["43 ms", "3.5 s", "3 m 20 s", "–"]);
  });
});

describe("overview figures", () => {
  const overview = (lagAvailable: boolean) =>
    create(GetOverviewResponseSchema, {
      observeTime: timestampFromMs(1_700_000_000_000),
      lagAvailable,
      outboxPending: 12n,
      outboxOldestAge: { seconds: 3n, nanos: 500_000_000 },
      dueUnreleased: 2n,
      deadLettersOpen: 4n,
      channels: [
        {
          channel: Channel.EMAIL,
          group: "herald-worker-email",
          lag: lagAvailable ? 7n : 0n,
          partitions: lagAvailable
            ? [
                { partition: 0, logEndOffset: 10n, committedOffset: 5n, lag: 5n },
                { partition: 1, logEndOffset: 2n, committedOffset: -1n, lag: 2n, group: "herald-worker-email-high", topic: "herald.email.high" },
              ]
            : [],
          sentPerSecond: 1.5,
          failedPerSecond: 0.25,
          e2eP50: { nanos: 40_000_000 },
          e2eP99: { seconds: 1n, nanos: 250_000_000 },
          e2eSamples: 90n,
        },
        {
          channel: Channel.SMS,
          group: "herald-worker-sms",
          circuits: [
            { provider: "twilio", state: CircuitState.OPEN, retryIn: { seconds: 12n, nanos: 500_000_000 } },
            { provider: "vonage", state: CircuitState.HALF_OPEN },
            { provider: "messagebird", state: CircuitState.UNSPECIFIED },
          ],
        },
      ],
    });

  it("turns one answer into plain numbers, and no samples into no percentile", () => {
    const f = figures(overview(true));
    expect(f).toMatchObject({ at: 1_700_000_000_000, lagAvailable: true, outboxPending: 12, outboxOldestSeconds: 3.5, dueUnreleased: 2, deadLettersOpen: 4 });
    expect(f.channels[0]).toEqual({
      channel: "email",
      group: "herald-worker-email",
      lag: 7,
      sentPerSecond: 1.5,
      failedPerSecond: 0.25,
      p50Seconds: 0.04,
      p99Seconds: 1.25,
      samples: 90,
      circuits: [],
      partitions: [
        { lane: "main", partition: 0, logEndOffset: 10n, committedOffset: 5n, lag: 5 },
        // A partition of the channel's high-priority topic.
        { lane: "high", partition: 1, logEndOffset: 2n, committedOffset: -1n, lag: 2 },
      ],
    });
    expect(f.channels[1]).toMatchObject({ channel: "sms", lag: 0, sentPerSecond: 0 });
    // Each provider's breaker, in failover order; UNSPECIFIED (Redis did not answer) reads unknown.
    expect(f.channels[1]!.circuits).toEqual([
      { provider: "twilio", state: "open", retryInSeconds: 12.5 },
      { provider: "vonage", state: "half-open", retryInSeconds: 0 },
      { provider: "messagebird", state: "unknown", retryInSeconds: 0 },
    ]);
    expect(f.channels[1]!.p99Seconds).toBeNaN();
  });

  it("records each figure as a point at the server's time; lag unavailable is a gap, not a zero", () => {
    const s = seriesSet(300_000);
    recordFigures(s, figures(overview(true)));
    const later = overview(false);
    later.observeTime = timestampFromMs(1_700_000_002_000);
    recordFigures(s, figures(later));
    expect(s.points("lag.email").map((p) => p.v)).toEqual([7, NaN]);
    expect(s.points("sent.email").map((p) => p.v)).toEqual([1.5, 1.5]);
    expect(s.points("failed.email").map((p) => p.v)).toEqual([0.25, 0.25]);
    expect(s.points("p99.email").map((p) => p.v)).toEqual([1.25, 1.25]);
    expect(s.points("outbox.pending")).toEqual([
      { t: 1_700_000_000_000, v: 12 },
      { t: 1_700_000_002_000, v: 12 },
    ]);
    expect(s.points("outbox.oldest").map((p) => p.v)).toEqual([3.5, 3.5]);
    expect(s.points("p99.sms").map((p) => p.v)).toEqual([NaN, NaN]);
  });
});

describe("startPolling", () => {
  it("calls one at a time, hands over answers and errors in order, waits everyMs between, and stops", async () => {
    const seen: string[] = [];
    const waits: number[] = [];
    let n = 0;
    let stopped!: () => void;
    const done = new Promise<void>((r) => (stopped = r));
    let inFlight = 0;
    const poll = startPolling({
      async call() {
        inFlight++;
        expect(inFlight).toBe(1);
        await Promise.resolve();
        inFlight--;
        n++;
        if (n === 2) throw new Error("down");
        return `answer ${n}`;
      },
      onResult: (v) => seen.push(v),
      onError: (e) => seen.push(`error: ${(e as Error).message}`),
      everyMs: 2000,
      sleep: async (ms) => {
        waits.push(ms);
        if (waits.length === 3) {
          poll.stop();
          stopped();
        }
      },
    });
    await done;
    expect(seen).toEqual(["answer 1", "error: down", "answer 3"]);
    expect(waits).toEqual([2000, 2000, 2000]);
  });
});
