import { pino } from "pino";
import { describe, expect, it } from "vitest";
import type { GroupTopic, PartitionLag } from "../../src/kafka/kafka.js";
import { createLagReader } from "../../src/server/handlers/operations/lag.js";

// The operations view's lag read: every worker group, bounded in time, one read at a time.

const row = (group: string, partition: number, lag: number): PartitionLag => ({ group, topic: group.replace("herald-worker-", "herald."), partition, logEndOffset: lag, committedOffset: null, lag });

function fakeKafka() {
  const asked: GroupTopic[][] = [];
  const pending: Array<{ resolve: (rows: PartitionLag[]) => void; reject: (err: unknown) => void }> = [];
  return {
    asked,
    pending,
    kafka: {
      consumerLag(pairs: readonly GroupTopic[]) {
        asked.push([...pairs]);
        return new Promise<PartitionLag[]>((resolve, reject) => pending.push({ resolve, reject }));
      },
    },
  };
}

describe("overview lag reader", () => {
  it("asks for every channel's worker groups on their topics, both lanes", async () => {
    const f = fakeKafka();
    const reader = createLagReader({ kafka: f.kafka, log: pino({ level: "silent" }) });
    const read = reader.read();
    f.pending[0]!.resolve([row("herald-worker-email", 0, 3)]);
    expect(await read).toEqual([row("herald-worker-email", 0, 3)]);
    expect(f.asked).toEqual([
      [
        { group: "herald-worker-email", topic: "herald.email" },
        { group: "herald-worker-email-high", topic: "herald.email.high" },
        { group: "herald-worker-sms", topic: "herald.sms" },
        { group: "herald-worker-sms-high", topic: "herald.sms.high" },
        { group: "herald-worker-push", topic: "herald.push" },
        { group: "herald-worker-push-high", topic: "herald.push.high" },
        { group: "herald-worker-webhook", topic: "herald.webhook" },
        { group: "herald-worker-webhook-high", topic: "herald.webhook.high" },
      ],
    ]);
  });

  it("gives up after the timeout with undefined, and callers share the read in flight instead of opening more", async () => {
    const f = fakeKafka();
    const reader = createLagReader({ kafka: f.kafka, log: pino({ level: "silent" }), timeoutMs: 20 });
    expect(await Promise.all([reader.read(), reader.read()])).toEqual([undefined, undefined]);
    // Kafka still has not answered: a third caller waits on the same read.
    expect(await reader.read()).toBeUndefined();
    expect(f.asked.length).toBe(1);
    // Once it settles, the next caller starts a fresh one, and gets its answer.
    f.pending[0]!.reject(new Error("broker gone"));
    expect(await reader.read()).toBeUndefined();
    const next = reader.read();
    f.pending.at(-1)!.resolve([row("herald-worker-sms", 1, 2)]);
    expect(await next).toEqual([row("herald-worker-sms", 1, 2)]);
    expect(f.asked.length).toBe(2);
  });

  it("answers undefined when Kafka fails outright", async () => {
    const f = fakeKafka();
    const reader = createLagReader({ kafka: f.kafka, log: pino({ level: "silent" }) });
    const read = reader.read();
    f.pending[0]!.reject(new Error("KafkaJSConnectionError"));
    expect(await read).toBeUndefined();
  });
});
