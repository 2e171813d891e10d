import { EventEmitter } from "node:events";
import { create, toBinary } from "@bufbuild/protobuf";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { DispatchSchema } from "../../gen/herald/v1/dispatch_pb.js";
import { Channel } from "../../gen/herald/v1/notification_pb.js";
import { loadConfig } from "../../src/config.js";
import type { Logger } from "../../src/log.js";
import type { ConsumedBatch, ConsumerOptions, KafkaConsumer } from "../../src/kafka/consumer.js";
import { restartAfterFatalCrash } from "../../src/kafka/crash-restart.js";
import { newCounters } from "../../src/workers/delivery-counters.js";
import type { DeliveryHandler } from "../../src/workers/delivery.js";
import { createChannelWorker } from "../../src/workers/worker.js";
import { waitFor } from "../support/wait.js";

// The parts of fast takeover that need no broker: the settings and their bounds, a worker that
// leaves its group before its sends drain, and a consumer kafkajs gave up on started again.

const silent = pino({ level: "silent" });

describe("takeover settings", () => {
  it("default to a 6 s session, 1 s heartbeats, a 6 s lease and a 30 s sweep grace", () => {
    const config = loadConfig({}, "production");
    expect(config.kafka.group).toEqual({ sessionTimeoutMs: 6000, heartbeatIntervalMs: 1000 });
    expect(config.delivery.leaseMs).toBe(6000);
    expect(config.delivery.claimGraceMs).toBe(30_000);
  });

  it("follow the variables, the heartbeat defaulting to a third of a short session; the lease does not grow with the send timeout", () => {
    const config = loadConfig({ HERALD_KAFKA_SESSION_TIMEOUT_MS: "1500", HERALD_SEND_TIMEOUT_MS: "20000", HERALD_CLAIM_GRACE_MS: "0" }, "production");
    expect(config.kafka.group).toEqual({ sessionTimeoutMs: 1500, heartbeatIntervalMs: 500 });
    expect(config.delivery.leaseMs).toBe(6000);
    expect(config.delivery.claimGraceMs).toBe(0);
    expect(loadConfig({ HERALD_SEND_LEASE_MS: "2500" }, "production").delivery.leaseMs).toBe(2500);
  });

  it("refuse a heartbeat longer than a third of the session, and a session outside what a broker may allow", () => {
    expect(() => loadConfig({ HERALD_KAFKA_SESSION_TIMEOUT_MS: "6000", HERALD_KAFKA_HEARTBEAT_MS: "3000" }, "production")).toThrow(
      'HERALD_KAFKA_HEARTBEAT_MS: expected an integer in [100, 2000], got "3000"',
    );
    expect(() => loadConfig({ HERALD_KAFKA_SESSION_TIMEOUT_MS: "500" }, "production")).toThrow(/^HERALD_KAFKA_SESSION_TIMEOUT_MS: expected an integer in \[1000, 1800000\]/);
    expect(() => loadConfig({ HERALD_SEND_LEASE_MS: "999" }, "production")).toThrow(/^HERALD_SEND_LEASE_MS/);
  });
});

describe("a worker's close", () => {
  it("leaves the group at once, while its sends still run, and hands the group its timings", async () => {
    const steps: string[] = [];
    let consumerOpts: ConsumerOptions | undefined;
    let onBatch: ((b: ConsumedBatch) => Promise<void>) | undefined;
    const consumer: KafkaConsumer = {
      run: async (handle) => {
        if (typeof handle === "function") throw new Error("expected eachBatch");
        onBatch = handle.eachBatch;
      },
      commit: async () => void steps.push("commit"),
      close: async () => void steps.push("left the group"),
    };
    let finishSend: () => void = () => {};
    const handler: DeliveryHandler = {
      counters: newCounters(),
      handle: () =>
        new Promise<void>((resolve) => {
          steps.push("sending");
          finishSend = () => {
            steps.push("send finished");
            resolve();
          };
        }),
    };
    const group = { sessionTimeoutMs: 6000, heartbeatIntervalMs: 1000 };
    const worker = createChannelWorker({
      channel: Channel.SMS,
      kafka: { consumer: (opts) => ((consumerOpts = opts), consumer) },
      handler,
      maxInFlight: 4,
      log: silent,
      group,
    });
    await worker.start();
    expect(consumerOpts).toMatchObject(group);
    const value = toBinary(DispatchSchema, create(DispatchSchema, { notificationId: "0190b1c2-0000-7000-8000-000000000001", attempt: 1 }));
    await onBatch!({
      topic: "herald.sms",
      partition: 0,
      messages: [{ topic: "herald.sms", partition: 0, offset: "0", key: "u", value, headers: {}, timestamp: 0 }],
      isActive: () => true,
      heartbeat: async () => {},
      resolve: () => {},
    });
    await waitFor("the send to start", () => steps.includes("sending"));

    const closed = worker.close();
    await waitFor("the worker to leave the group", () => steps.includes("left the group"));
    // Progress is committed (on the timer or at close) only while still a member.
    const leftAt = steps.indexOf("left the group");
    expect(steps.lastIndexOf("commit")).toBeLessThan(leftAt);
    expect(steps.filter((s) => s !== "commit")).toEqual(["sending", "left the group"]);
    finishSend();
    await closed;
    expect(steps.filter((s) => s !== "commit")).toEqual(["sending", "left the group", "send finished"]);
    expect(steps.lastIndexOf("commit")).toBeLessThan(leftAt);
  });
});

describe("a consumer kafkajs gave up on", () => {
  function fakeConsumer() {
    const emitter = new EventEmitter();
    const events = { CRASH: "consumer.crash", GROUP_JOIN: "consumer.group_join" } as const;
    const consumer = { events, on: (event: string, listener: (e: unknown) => void) => emitter.on(event, listener) };
    const crash = (restart: boolean) => emitter.emit(events.CRASH, { payload: { error: new Error("boom"), groupId: "g", restart } });
    return { consumer: consumer as unknown as Parameters<typeof restartAfterFatalCrash>[0], crash };
  }

  it("is started again after a crash kafkajs does not restart, and not after one it does, nor once stopped", async () => {
    const fake = fakeConsumer();
    // The restart is scheduled (and logged) synchronously in the crash listener, so what was not
    // logged right after a crash was not scheduled.
    const scheduled: unknown[] = [];
    const log = { warn: (fields: unknown) => void scheduled.push(fields), error: () => {} } as unknown as Logger;
    const restart = restartAfterFatalCrash(fake.consumer, { group: "g", log, backoff: { baseMs: 1, capMs: 1 } });
    let starts = 0;
    restart.start = async () => void starts++;

    fake.crash(false);
    expect(scheduled).toHaveLength(1);
    await waitFor("a restart", () => starts === 1);
    fake.crash(true); // kafkajs restarts this one itself
    expect(scheduled).toHaveLength(1);
    fake.crash(false);
    await waitFor("a second restart", () => starts === 2);
    restart.stop();
    fake.crash(false);
    expect(scheduled).toHaveLength(2);
    expect(starts).toBe(2);
  });
});
