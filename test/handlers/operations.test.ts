import { describe, expect, it } from "vitest";
import { Channel } from "../../gen/herald/v1/notification_pb.js";
import { OperationsService } from "../../gen/herald/v1/operations_pb.js";
import { UnavailableError } from "../../src/errors.js";
import type { ChannelFlow } from "../../src/feed/flow-window.js";
import type { PartitionLag } from "../../src/kafka/kafka.js";
import type { Backlog } from "../../src/store/backlog.js";
import { failure, NOW, startRouterHerald } from "../support/router.js";

// GetOverview in-process (test/support/router.ts): what the backlog, the lag reader and the flow
// window say, turned into the response field by field; and what a caller gets when a part fails.

const backlog: Backlog = { outboxPending: 12, outboxOldestAgeSeconds: 1.2345678901, dueUnreleased: 3, dueOldestAgeSeconds: 0, deadLettersOpen: 2 };
const lagRows: PartitionLag[] = [
  { group: "herald-worker-email", topic: "herald.email", partition: 0, logEndOffset: 10, committedOffset: 7, lag: 3 },
  { group: "herald-worker-email", topic: "herald.email", partition: 1, logEndOffset: 4, committedOffset: null, lag: 4 },
  { group: "herald-worker-sms", topic: "herald.sms", partition: 0, logEndOffset: 2, committedOffset: 2, lag: 0 },
];
const idle: ChannelFlow = { sentPerSecond: 0, failedPerSecond: 0, e2eP50Ms: 0, e2eP99Ms: 0, e2eSamples: 0 };
const flow = {
  channel: (c: Channel): ChannelFlow => (c === Channel.EMAIL ? { sentPerSecond: 2.5, failedPerSecond: 0.25, e2eP50Ms: 182.4, e2eP99Ms: 2750, e2eSamples: 40 } : idle),
};

describe("GetOverview", () => {
  it("answers every channel in enum order with its group, partitions, summed lag and flow, and the backlog", async () => {
    const client = startRouterHerald({ operations: { backlog: async () => backlog, lag: { read: async () => lagRows }, flow } }).client(OperationsService);
    const o = await client.getOverview({});
    expect(Number(o.observeTime!.seconds) * 1000).toBe(NOW);
    expect(o.channels.map((c) => [Channel[c.channel], c.group, c.lag])).toEqual([
      ["EMAIL", "herald-worker-email", 7n],
      ["SMS", "herald-worker-sms", 0n],
      ["PUSH", "herald-worker-push", 0n],
      ["WEBHOOK", "herald-worker-webhook", 0n],
    ]);
    expect(o.channels[0]!.partitions.map((p) => [p.partition, p.logEndOffset, p.committedOffset, p.lag])).toEqual([
      [0, 10n, 7n, 3n],
      [1, 4n, -1n, 4n],
    ]);
    expect(o.channels[1]!.partitions.map((p) => [p.partition, p.lag])).toEqual([[0, 0n]]);
    const email = o.channels[0]!;
    expect([email.sentPerSecond, email.failedPerSecond, email.e2eSamples]).toEqual([2.5, 0.25, 40n]);
    expect([email.e2eP50?.seconds, email.e2eP50?.nanos, email.e2eP99?.seconds, email.e2eP99?.nanos]).toEqual([0n, 182_400_000, 2n, 750_000_000]);
    expect([o.outboxPending, o.outboxOldestAge?.seconds, o.outboxOldestAge?.nanos]).toEqual([12n, 1n, 234_567_890]);
    expect([o.dueUnreleased, o.dueOldestAge?.seconds, o.dueOldestAge?.nanos, o.deadLettersOpen, o.lagAvailable]).toEqual([3n, 0n, 0, 2n, true]);
  });

  it("without Kafka's answer: lag_available false, no partitions, the rest answered", async () => {
    const client = startRouterHerald({ operations: { backlog: async () => backlog, lag: { read: async () => undefined }, flow } }).client(OperationsService);
    const o = await client.getOverview({});
    expect(o.lagAvailable).toBe(false);
    expect(o.channels.map((c) => [c.partitions.length, c.lag])).toEqual([
      [0, 0n],
      [0, 0n],
      [0, 0n],
      [0, 0n],
    ]);
    expect([o.outboxPending, o.deadLettersOpen, o.channels[0]!.e2eSamples]).toEqual([12n, 2n, 40n]);
  });

  it("is UNAVAILABLE when PostgreSQL is down, and UNAUTHENTICATED without a valid key", async () => {
    const down = startRouterHerald({
      operations: { backlog: () => Promise.reject(new UnavailableError("database", "connect ECONNREFUSED")), lag: { read: async () => lagRows }, flow },
    });
    expect(await failure(down.client(OperationsService).getOverview({}))).toEqual({ code: "Unavailable", message: "database unavailable, retry later" });
    expect(await failure(down.client(OperationsService, null).getOverview({}))).toEqual({
      code: "Unauthenticated",
      message: "missing API key: send 'authorization: Bearer <api key>'",
    });
    expect(await failure(down.client(OperationsService, "wrong").getOverview({}))).toEqual({ code: "Unauthenticated", message: "unknown API key" });
  });
});
