import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { CircuitState, GetOverviewResponseSchema, type GetOverviewResponse } from "../../gen/herald/v1/operations_pb.js";
import { Channel } from "../../gen/herald/v1/notification_pb.js";
import { formatOverview, formatSeconds } from "../../src/cli/status-output.js";
import { parseStatusArgs, statusLoop } from "../../src/cli/status-command.js";
import { UsageError } from "../../src/cli/usage-error.js";

// `herald status`'s screen and loop, with no server: a response in, the text out; the loop with a
// fake overview, output and sleep.

const d = (s: number) => ({ seconds: BigInt(Math.floor(s)), nanos: Math.round((s % 1) * 1e9) });
const busy = create(GetOverviewResponseSchema, {
  observeTime: timestampFromMs(Date.UTC(2026, 11, 3, 22, 50, 0)),
  lagAvailable: true,
  outboxPending: 12n, outboxOldestAge: d(0.84), dueUnreleased: 3n, dueOldestAge: d(1.2), deadLettersOpen: 2n,
  channels: [
    { channel: Channel.EMAIL, group: "herald-worker-email", lag: 1204n, partitions: [
      { partition: 0, logEndOffset: 52310n, committedOffset: 51900n, lag: 410n },
      { partition: 1, logEndOffset: 51877n, committedOffset: 51470n, lag: 407n },
      { partition: 2, logEndOffset: 52002n, committedOffset: 51615n, lag: 387n }],
      sentPerSecond: 412.35, failedPerSecond: 0.4, e2eP50: d(0.182), e2eP99: d(2.75), e2eSamples: 10000n },
    { channel: Channel.SMS, group: "herald-worker-sms", lag: 0n, partitions: [
      { partition: 0, logEndOffset: 880n, committedOffset: 880n, lag: 0n },
      { partition: 1, logEndOffset: 901n, committedOffset: 901n, lag: 0n },
      { partition: 2, logEndOffset: 874n, committedOffset: 874n, lag: 0n }],
      sentPerSecond: 3.02, failedPerSecond: 0, e2eP50: d(0.095), e2eP99: d(0.31), e2eSamples: 905n,
      circuits: [{ provider: "twilio", state: CircuitState.OPEN, retryIn: d(42.5) }, { provider: "vonage", state: CircuitState.CLOSED }] },
    { channel: Channel.PUSH, group: "herald-worker-push", lag: 0n, partitions: [
      { partition: 0, logEndOffset: 0n, committedOffset: -1n, lag: 0n },
      { partition: 1, logEndOffset: 0n, committedOffset: -1n, lag: 0n },
      { partition: 2, logEndOffset: 0n, committedOffset: -1n, lag: 0n }] },
    { channel: Channel.WEBHOOK, group: "herald-worker-webhook", lag: 0n, partitions: [] },
  ],
});

const SCREEN = `herald status at 2026-12-03T22:50:00.000Z

email: lag 1204
GROUP                TOPIC         PARTITION  LOG-END-OFFSET  COMMITTED-OFFSET  LAG
herald-worker-email  herald.email  0          52310           51900             410
herald-worker-email  herald.email  1          51877           51470             407
herald-worker-email  herald.email  2          52002           51615             387

sms: lag 0
GROUP              TOPIC       PARTITION  LOG-END-OFFSET  COMMITTED-OFFSET  LAG
herald-worker-sms  herald.sms  0          880             880               0
herald-worker-sms  herald.sms  1          901             901               0
herald-worker-sms  herald.sms  2          874             874               0

push: lag 0
GROUP               TOPIC        PARTITION  LOG-END-OFFSET  COMMITTED-OFFSET  LAG
herald-worker-push  herald.push  0          0               -                 0
herald-worker-push  herald.push  1          0               -                 0
herald-worker-push  herald.push  2          0               -                 0

webhook: lag 0
herald-worker-webhook  herald.webhook: no partitions (topic not created yet)

outbox pending     12  oldest 840ms
due, not released  3   oldest 1.2s
dead letters open  2

CHANNEL  SENT/s  FAILED/s  E2E-P50  E2E-P99  SAMPLES
email    412.35  0.40      182ms    2.75s    10000
sms      3.02    0.00      95ms     310ms    905
push     0.00    0.00      -        -        0
webhook  0.00    0.00      -        -        0
(rates over the last minute, end to end over the last five, as this API instance saw them)

CHANNEL  PROVIDER  CIRCUIT  PROBE-IN
sms      twilio    open     42.5s
sms      vonage    closed   -
(circuit breakers of the channels with failover, in order; unknown: Redis did not answer)
`;

describe("herald status screen", () => {
  it("prints a kafka-consumer-groups table per channel, the backlog, and the rates", () => {
    expect(formatOverview(busy)).toBe(SCREEN);
  });

  it("says the lag is unavailable instead of printing empty tables, and still prints the rest", () => {
    const text = formatOverview(create(GetOverviewResponseSchema, { ...busy, lagAvailable: false, channels: busy.channels.map((c) => ({ ...c, partitions: [], lag: 0n })) }));
    expect(text).toContain("\nconsumer lag: unavailable (Kafka did not answer in time)\n\noutbox pending     12  oldest 840ms\n");
    expect(text).not.toContain("GROUP");
    expect(text).toContain("email    412.35  0.40      182ms    2.75s    10000\n");
  });

  it("formats ages and latencies to the unit an operator reads", () => {
    expect([0, 0.0004, 0.75, 1, 9.999, 12.46, 59.9, 60, 125, 3599, 3725, 90_000].map(formatSeconds)).toEqual([
      "0ms", "0ms", "750ms", "1s", "10s", "12.5s", "59.9s", "1m00s", "2m05s", "59m59s", "1h02m", "25h00m",
    ]);
  });
});

describe("herald status flags", () => {
  it("--watch takes optional seconds (2 without), --json a boolean", () => {
    const once = parseStatusArgs([]);
    expect([once.json, once.watchMs]).toEqual([false, undefined]);
    expect(parseStatusArgs(["--watch"])).toMatchObject({ watchMs: 2000 });
    expect(parseStatusArgs(["--watch", "--json"])).toMatchObject({ watchMs: 2000, json: true });
    expect(parseStatusArgs(["--watch", "5", "--addr", "h:1"])).toMatchObject({ watchMs: 5000, values: { addr: "h:1" } });
    expect(parseStatusArgs(["--watch=0.5"])).toMatchObject({ watchMs: 500 });
  });

  it("refuses a bad interval or an unknown flag as a usage error", () => {
    expect(() => parseStatusArgs(["--watch", "0"])).toThrow(new UsageError('--watch expects seconds from 0.5 to 3600, got "0"'));
    expect(() => parseStatusArgs(["--watch", "soon"])).toThrow(UsageError);
    expect(() => parseStatusArgs(["--verbose"])).toThrow(UsageError);
  });
});

describe("herald status loop", () => {
  function io(isTTY = false) {
    const out: string[] = [];
    const err: string[] = [];
    return { out, err, sinks: { out: { isTTY, write: (s: string) => out.push(s) }, err: { write: (s: string) => err.push(s) } } };
  }

  it("once: prints one screen; a failure is the caller's to report", async () => {
    const { out, sinks } = io();
    await statusLoop({ ...sinks, overview: async () => busy, sleep: async () => true, signal: new AbortController().signal }, { json: false });
    expect(out).toEqual([SCREEN]);
    const refused = new ConnectError("unknown API key", Code.Unauthenticated);
    await expect(statusLoop({ ...sinks, overview: () => Promise.reject(refused), sleep: async () => true, signal: new AbortController().signal }, { json: false })).rejects.toBe(refused);
  });

  it("--watch: redraws (clearing a terminal) every interval, prints a failed snapshot and goes on, stops on the signal", async () => {
    const { out, err, sinks } = io(true);
    const stop = new AbortController();
    const answers: Array<GetOverviewResponse | Error> = [busy, new ConnectError("database unavailable, retry later", Code.Unavailable), busy];
    const slept: number[] = [];
    await statusLoop(
      {
        ...sinks,
        overview: async () => {
          const a = answers.shift()!;
          if (a instanceof Error) throw a;
          return a;
        },
        sleep: async (ms) => {
          slept.push(ms);
          if (answers.length === 0) stop.abort();
          return true;
        },
        signal: stop.signal,
      },
      { json: false, watchMs: 1500 },
    );
    expect(out).toEqual([`\x1b[H\x1b[2J${SCREEN}`, `\x1b[H\x1b[2J${SCREEN}`]);
    expect(err).toEqual(["herald: [unavailable] database unavailable, retry later\n"]);
    expect(slept).toEqual([1500, 1500, 1500]);
  });

  it("--watch --json: one compact JSON line per snapshot, never a terminal escape", async () => {
    const { out, sinks } = io(true);
    const stop = new AbortController();
    let calls = 0;
    await statusLoop(
      { ...sinks, overview: async () => busy, sleep: async () => (++calls === 2 && stop.abort(), true), signal: stop.signal },
      { json: true, watchMs: 1000 },
    );
    expect(out.length).toBe(2);
    for (const line of out) {
      expect(line.endsWith("\n") && !line.slice(0, -1).includes("\n")).toBe(true);
      expect(JSON.parse(line)).toMatchObject({ outboxPending: "12", channels: [{ channel: "CHANNEL_EMAIL", lag: "1204" }, {}, {}, {}] });
    }
  });
});
