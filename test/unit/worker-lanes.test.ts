import { create, toBinary } from "@bufbuild/protobuf";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { DispatchSchema } from "../../gen/herald/v1/dispatch_pb.js";
import { Channel } from "../../gen/herald/v1/notification_pb.js";
import type { ConsumedBatch, ConsumerOptions, KafkaConsumer } from "../../src/kafka/consumer.js";
import { newCounters } from "../../src/workers/delivery-counters.js";
import { createChannelWorker, type ChannelWorker } from "../../src/workers/worker.js";
import { waitFor } from "../support/wait.js";

// What each lane's worker asks of Kafka. Both lanes long-poll: a fetch answered as soon as one
// record is there, held half a second otherwise, instead of a hundred empty fetches a second. The
// main lane batches under load by holding the next fetch for batchLingerMs after a small batch;
// the high lane, each record wanted at once, fetches again as soon as its batch is handed over.

interface Started {
  opts: ConsumerOptions;
  worker: ChannelWorker;
  /** The batch handler the worker gave its consumer. */
  eachBatch: (batch: ConsumedBatch) => Promise<void>;
  handled: string[];
}

async function startLane(lane: "main" | "high", batchLingerMs?: number, longPollMs?: number): Promise<Started> {
  let opts: ConsumerOptions | undefined;
  let eachBatch: Started["eachBatch"] | undefined;
  const handled: string[] = [];
  const consumer: KafkaConsumer = {
    run: async (handle) => {
      if (typeof handle !== "function") eachBatch = handle.eachBatch;
    },
    commit: async () => {},
    close: async () => {},
  };
  const worker = createChannelWorker({
    channel: Channel.SMS,
    lane,
    kafka: { consumer: (o) => ((opts = o), consumer) },
    handler: { counters: newCounters(), handle: async (d) => void handled.push(d.notificationId) },
    maxInFlight: 4,
    log: pino({ level: "silent" }),
    ...(batchLingerMs === undefined ? {} : { batchLingerMs }),
    ...(longPollMs === undefined ? {} : { longPollMs }),
  });
  await worker.start();
  return { opts: opts!, worker, eachBatch: eachBatch!, handled };
}

/** A batch of one small Dispatch on partition 0, which this member owns. */
function smallBatch(s: Started): ConsumedBatch {
  const topic = s.opts.topics[0]!;
  s.opts.onAssigned?.([{ topic, partition: 0 }]);
  const value = toBinary(DispatchSchema, create(DispatchSchema, { notificationId: "n-1", tenant: "t", attempt: 1 }));
  return {
    topic,
    partition: 0,
    messages: [{ topic, partition: 0, offset: "0", key: "t/u", value, headers: {}, timestamp: Date.now() }],
    isActive: () => true,
    heartbeat: async () => {},
    resolve: () => {},
  };
}

describe("a lane's consumer", () => {
  it("main: herald.sms in group herald-worker-sms, a long poll answered by the first record", async () => {
    const { opts, worker } = await startLane("main");
    await worker.close();
    expect(opts).toMatchObject({ groupId: "herald-worker-sms", topics: ["herald.sms"], fetchMinBytes: 1, fetchMaxWaitMs: 1000 });
  });

  it("high: herald.sms.high in group herald-worker-sms-high, a long poll answered by the first record", async () => {
    const { opts, worker } = await startLane("high", undefined, 2500);
    await worker.close();
    // The wait is HERALD_WORKER_LONG_POLL_MS's, passed in as longPollMs.
    expect(opts).toMatchObject({ groupId: "herald-worker-sms-high", topics: ["herald.sms.high"], fetchMinBytes: 1, fetchMaxWaitMs: 2500 });
  });

  it("main: after a small batch, holds the next fetch for batchLingerMs, or until close", async () => {
    // A linger far longer than any test: the batch can only end early by close().
    const s = await startLane("main", 600_000);
    let returned = false;
    const batch = s.eachBatch(smallBatch(s)).then(() => void (returned = true));
    await waitFor("the record handled", () => s.handled.includes("n-1"));
    await new Promise((r) => setImmediate(r));
    expect(returned).toBe(false);
    await s.worker.close();
    await batch;
    expect(returned).toBe(true);
  });

  it("high: returns from a batch once its record is handled, to fetch again at once", async () => {
    const s = await startLane("high", 600_000);
    let returned = false;
    const batch = s.eachBatch(smallBatch(s)).then(() => void (returned = true));
    await waitFor("the batch returned", () => returned);
    expect(s.handled).toEqual(["n-1"]);
    await batch;
    await s.worker.close();
  });
});
