import { describe, expect, it } from "vitest";
import { pino } from "pino";
import { Registry } from "prom-client";
import { registerKafkaLagMetrics, workerLagPairs } from "../../src/metrics/kafka-lag.js";
import type { GroupTopic, PartitionLag } from "../../src/kafka/kafka.js";

// The lag collector with a stand-in Kafka and a hand-moved clock: what one scrape shows, how
// reads are shared, and what a failing Kafka leaves behind.

function lagRow(group: string, partition: number, lag: number): PartitionLag {
  return { group, topic: group.replace("herald-worker-", "herald."), partition, logEndOffset: lag, committedOffset: null, lag };
}

/** A Kafka whose answers the test hands out: a row list, an error, or nothing at all (a hang). */
function fakeKafka() {
  const calls: GroupTopic[][] = [];
  let answer: () => Promise<PartitionLag[]> = async () => [];
  return {
    calls,
    answer(next: () => Promise<PartitionLag[]>) {
      answer = next;
    },
    consumerLag(pairs: readonly GroupTopic[]) {
      calls.push([...pairs]);
      return answer();
    },
  };
}

function setup(opts: { timeoutMs?: number } = {}) {
  const registry = new Registry();
  const kafka = fakeKafka();
  const clock = { t: 1_000_000, now() { return this.t; } };
  const lines: Array<{ level: string; msg: string }> = [];
  const log = pino({ level: "info" }, { write: (s: string) => void lines.push(JSON.parse(s) as { level: string; msg: string }) });
  registerKafkaLagMetrics({ registry, kafka, log, clock, cacheMs: 2000, staleMs: 60_000, timeoutMs: opts.timeoutMs ?? 3000 });
  const scrape = async () => {
    const json = await registry.getMetricsAsJSON();
    const lag = json.find((m) => m.name === "herald_kafka_consumer_lag")!;
    const errors = json.find((m) => m.name === "herald_kafka_lag_errors_total")!;
    return {
      lag: Object.fromEntries(lag.values.map((v) => [`${v.labels.group}/${v.labels.topic}/${v.labels.partition}`, v.value])),
      errors: errors.values[0]?.value ?? 0,
    };
  };
  return { registry, kafka, clock, lines, scrape };
}

describe("herald_kafka_consumer_lag", () => {
  it("reads every worker group on its channel topic and shows one series per partition", async () => {
    const { kafka, scrape } = setup();
    kafka.answer(async () => [lagRow("herald-worker-email", 0, 4), lagRow("herald-worker-email", 1, 0), lagRow("herald-worker-sms", 0, 9)]);
    expect(await scrape()).toEqual({
      lag: { "herald-worker-email/herald.email/0": 4, "herald-worker-email/herald.email/1": 0, "herald-worker-sms/herald.sms/0": 9 },
      errors: 0,
    });
    expect(kafka.calls).toEqual([workerLagPairs()]);
    expect(workerLagPairs()).toEqual([
      { group: "herald-worker-email", topic: "herald.email" },
      { group: "herald-worker-email-high", topic: "herald.email.high" },
      { group: "herald-worker-sms", topic: "herald.sms" },
      { group: "herald-worker-sms-high", topic: "herald.sms.high" },
      { group: "herald-worker-push", topic: "herald.push" },
      { group: "herald-worker-push-high", topic: "herald.push.high" },
      { group: "herald-worker-webhook", topic: "herald.webhook" },
      { group: "herald-worker-webhook-high", topic: "herald.webhook.high" },
    ]);
  });

  it("shares one read between concurrent scrapes and those within 2 s of it; reads again after", async () => {
    const { kafka, clock, scrape } = setup();
    let lag = 1;
    kafka.answer(async () => [lagRow("herald-worker-email", 0, lag)]);
    const [a, b] = await Promise.all([scrape(), scrape()]);
    expect(a.lag).toEqual({ "herald-worker-email/herald.email/0": 1 });
    expect(b.lag).toEqual(a.lag);
    lag = 2;
    clock.t += 1999;
    expect((await scrape()).lag).toEqual({ "herald-worker-email/herald.email/0": 1 });
    expect(kafka.calls).toHaveLength(1);
    clock.t += 1;
    expect((await scrape()).lag).toEqual({ "herald-worker-email/herald.email/0": 2 });
    expect(kafka.calls).toHaveLength(2);
  });

  it("drops series of partitions the latest answer no longer has", async () => {
    const { kafka, clock, scrape } = setup();
    kafka.answer(async () => [lagRow("herald-worker-email", 0, 3), lagRow("herald-worker-email", 1, 5)]);
    expect(Object.keys((await scrape()).lag)).toHaveLength(2);
    kafka.answer(async () => [lagRow("herald-worker-email", 1, 6)]);
    clock.t += 2000;
    expect((await scrape()).lag).toEqual({ "herald-worker-email/herald.email/1": 6 });
  });

  it("counts each failed read once, keeps the last answer for a minute, then shows none; logs once per outage", async () => {
    const { kafka, clock, lines, scrape } = setup();
    kafka.answer(async () => [lagRow("herald-worker-email", 0, 7)]);
    await scrape();
    kafka.answer(async () => Promise.reject(new Error("broker gone")));
    for (let i = 1; i <= 3; i++) {
      clock.t += 2000;
      const s = await scrape();
      expect(s.errors).toBe(i);
      expect(s.lag).toEqual({ "herald-worker-email/herald.email/0": 7 }); // answered at t0, still < 60 s old
    }
    // A scrape within 2 s of the failed read reuses it: no new read, no new error.
    clock.t += 500;
    expect((await scrape()).errors).toBe(3);
    expect(kafka.calls).toHaveLength(4);

    clock.t += 60_000 - 6500; // the answer is now exactly 60 s old: still served
    expect((await scrape()).lag).toEqual({ "herald-worker-email/herald.email/0": 7 });
    clock.t += 2000; // 62 s: gone
    expect(await scrape()).toEqual({ lag: {}, errors: 5 });

    kafka.answer(async () => [lagRow("herald-worker-email", 0, 0)]);
    clock.t += 2000;
    expect(await scrape()).toEqual({ lag: { "herald-worker-email/herald.email/0": 0 }, errors: 5 });
    const said = lines.map((l) => l.msg);
    expect(said.filter((m) => m.startsWith("kafka consumer lag unreadable"))).toHaveLength(1);
    expect(said.filter((m) => m === "kafka consumer lag readable again")).toHaveLength(1);
  });

  it("gives up on a read Kafka does not answer, counting it as an error", async () => {
    const { kafka, scrape } = setup({ timeoutMs: 50 });
    kafka.answer(() => new Promise<PartitionLag[]>(() => {})); // never settles
    expect(await scrape()).toEqual({ lag: {}, errors: 1 });
  });

  it("registers once per registry: a second role in the process adds nothing and reads nothing more", async () => {
    const { registry, kafka, scrape } = setup();
    const other = fakeKafka();
    registerKafkaLagMetrics({ registry, kafka: other, log: pino({ level: "silent" }) });
    kafka.answer(async () => [lagRow("herald-worker-push", 2, 1)]);
    expect((await scrape()).lag).toEqual({ "herald-worker-push/herald.push/2": 1 });
    expect(kafka.calls).toHaveLength(1);
    expect(other.calls).toHaveLength(0);
    expect((await registry.getMetricsAsJSON()).filter((m) => m.name.startsWith("herald_kafka_"))).toHaveLength(2);
  });
});
