import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { Channel } from "../../gen/herald/v1/notification_pb.js";
import type { ConsumerOptions, KafkaConsumer } from "../../src/kafka/consumer.js";
import { newCounters } from "../../src/workers/delivery-counters.js";
import { createChannelWorker } from "../../src/workers/worker.js";

// What each lane's worker asks of Kafka. The main lane batches (the broker holds a fetch until
// 64 KiB are ready or 10 ms passed); the high lane, mostly empty, long-polls: a fetch answered as
// soon as one record is there, held half a second otherwise, instead of a hundred empty fetches a
// second.

async function consumerOptionsOf(lane: "main" | "high"): Promise<ConsumerOptions> {
  let opts: ConsumerOptions | undefined;
  const consumer: KafkaConsumer = {
    run: async () => {},
    commit: async () => {},
    close: async () => {},
  };
  const worker = createChannelWorker({
    channel: Channel.SMS,
    lane,
    kafka: { consumer: (o) => ((opts = o), consumer) },
    handler: { counters: newCounters(), handle: async () => {} },
    maxInFlight: 4,
    log: pino({ level: "silent" }),
  });
  await worker.start();
  await worker.close();
  return opts!;
}

describe("a lane's consumer", () => {
  it("main: herald.sms in group herald-worker-sms, fetches batched (64 KiB or 10 ms)", async () => {
    expect(await consumerOptionsOf("main")).toMatchObject({
      groupId: "herald-worker-sms",
      topics: ["herald.sms"],
      fetchMinBytes: 64 * 1024,
      fetchMaxWaitMs: 10,
    });
  });

  it("high: herald.sms.high in group herald-worker-sms-high, a long poll answered by the first record", async () => {
    expect(await consumerOptionsOf("high")).toMatchObject({
      groupId: "herald-worker-sms-high",
      topics: ["herald.sms.high"],
      fetchMinBytes: 1,
      fetchMaxWaitMs: 500,
    });
  });
});
