import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { registerBacklogGauges, type BacklogValues } from "../../src/metrics/backlog-gauges.js";
import { createDeliveryMetrics, NO_PROVIDER } from "../../src/metrics/delivery.js";
import { createKafkaMetrics } from "../../src/metrics/kafka.js";
import { createMetricsRegistry } from "../../src/metrics/registry.js";
import { createRelayMetrics } from "../../src/metrics/relay.js";
import { createSchedulerMetrics } from "../../src/metrics/scheduler.js";
import { createLogger } from "../../src/log.js";
import type { Outcome } from "../../src/store/deliveries.js";
import { newCounters } from "../../src/workers/delivery-counters.js";
import { reportOutcome } from "../../src/workers/outcome.js";
import { metricValue } from "../support/metric-values.js";

// The backlog gauges' collection, with the read passed in: one read per scrape for every gauge
// of both roles, reuse within maxAgeMs, a bounded wait, the last values kept (and one log line)
// while the database fails. And the factories' safety on one shared registry (`herald dev`).

const values = (n: number): BacklogValues => ({ outboxPending: n, outboxOldestAgeSeconds: n + 0.5, dueUnreleased: 2 * n, dueOldestAgeSeconds: 3 * n, deadLettersOpen: 4 * n });

function capture() {
  const lines: Array<{ level: number; msg: string }> = [];
  return { log: pino({ level: "info" }, { write: (s: string) => void lines.push(JSON.parse(s) as never) }), lines };
}

describe("backlog gauges", () => {
  it("serve both roles' gauges in one registry from one read per scrape, registered once", async () => {
    const registry = createMetricsRegistry({ processMetrics: false });
    let reads = 0;
    let clock = 0;
    const deps = { read: async () => values(++reads), log: capture().log, clock: { now: () => clock } };
    registerBacklogGauges(registry, "outbox", deps);
    registerBacklogGauges(registry, "scheduler", deps);
    registerBacklogGauges(registry, "outbox", deps); // a second relay role in the process: nothing new
    const text = await registry.metrics();
    expect(reads).toBe(1);
    expect(text).toMatch(/^herald_outbox_pending 1$/m);
    expect(text).toMatch(/^herald_outbox_oldest_age_seconds 1.5$/m);
    expect(text).toMatch(/^herald_scheduler_due 2$/m);
    expect(text).toMatch(/^herald_scheduler_due_oldest_age_seconds 3$/m);
    expect(text).toMatch(/^herald_dead_letters 4$/m);
    expect(text.match(/^# TYPE herald_outbox_pending gauge$/gm)).toHaveLength(1);

    clock = 999; // within maxAgeMs: the same answer
    await registry.metrics();
    expect(reads).toBe(1);
    clock = 1000;
    expect(await metricValue(registry, "herald_outbox_pending")).toBe(2);
    expect(reads).toBe(2);
  });

  it("keep their last values when the read fails or does not answer in time, logging once per outage", async () => {
    const registry = createMetricsRegistry({ processMetrics: false });
    const { log, lines } = capture();
    let clock = 0;
    let mode: "ok" | "fail" | "hang" = "ok";
    let n = 0;
    const read = () => {
      n++;
      if (mode === "fail") return Promise.reject(new Error("connection refused"));
      if (mode === "hang") return new Promise<BacklogValues>(() => {});
      return Promise.resolve(values(n));
    };
    registerBacklogGauges(registry, "outbox", { read, log, clock: { now: () => clock }, maxAgeMs: 0, timeoutMs: 50 });
    expect(await metricValue(registry, "herald_outbox_pending")).toBe(1);

    mode = "fail";
    clock = 10;
    expect(await metricValue(registry, "herald_outbox_pending")).toBe(1);
    clock = 20;
    expect(await metricValue(registry, "herald_outbox_pending")).toBe(1);
    mode = "hang";
    clock = 30;
    expect(await metricValue(registry, "herald_outbox_pending")).toBe(1);
    const down = lines.filter((l) => l.msg === "backlog gauges cannot read the database; they keep their last values");
    expect(down).toHaveLength(1);
    expect(down[0]!.level).toBe(40);
  });

  it("log the recovery once, and read again", async () => {
    const registry = createMetricsRegistry({ processMetrics: false });
    const { log, lines } = capture();
    let fail = true;
    registerBacklogGauges(registry, "scheduler", { read: async () => (fail ? Promise.reject(new Error("down")) : values(5)), log, maxAgeMs: 0 });
    expect(await metricValue(registry, "herald_dead_letters")).toBe(0); // nothing read yet
    fail = false;
    expect(await metricValue(registry, "herald_dead_letters")).toBe(20);
    expect(lines.map((l) => l.msg)).toEqual(["backlog gauges cannot read the database; they keep their last values", "backlog gauges read the database again"]);
  });
});

describe("metric factories on one registry", () => {
  it("can be called twice (two roles in one process) and record into the same instruments", async () => {
    const registry = createMetricsRegistry({ processMetrics: false });
    for (let i = 0; i < 2; i++) {
      createRelayMetrics(registry);
      createSchedulerMetrics(registry).released("scheduled", 0.2);
      createKafkaMetrics(registry).groupJoins("herald-worker-email")();
      createDeliveryMetrics(registry).channel("email", ["smtp"]).outcome("sent", "smtp");
    }
    expect(await metricValue(registry, "herald_scheduler_released_total", { kind: "scheduled" })).toBe(2);
    expect(await metricValue(registry, "herald_kafka_rebalances_total", { group: "herald-worker-email" })).toBe(2);
    expect(await metricValue(registry, "herald_deliveries_total", { channel: "email", provider: "smtp", outcome: "sent" })).toBe(2);
  });
});

describe("series present before the first event", () => {
  it("read 0, not no data, for every outcome, kind and bound group", async () => {
    const registry = createMetricsRegistry({ processMetrics: false });
    // SMS with failover: each provider of the list has its series, the list itself none.
    createDeliveryMetrics(registry).channel("sms", ["twilio", "vonage"]);
    createSchedulerMetrics(registry);
    createKafkaMetrics(registry).groupJoins("herald-worker-sms");
    const text = await registry.metrics();
    for (const provider of ["twilio", "vonage"]) {
      for (const outcome of ["sent", "retry", "failed", "dead_lettered"]) {
        expect(text).toContain(`herald_deliveries_total{channel="sms",provider="${provider}",outcome="${outcome}"} 0`);
      }
      expect(text).toContain(`herald_provider_request_duration_seconds_count{channel="sms",provider="${provider}"} 0`);
    }
    expect(text).not.toContain("twilio,vonage");
    for (const line of [
      'herald_worker_records_total{channel="sms"} 0',
      'herald_sends_in_flight{channel="sms"} 0',
      'herald_provider_request_duration_seconds_count{channel="sms",provider="twilio"} 0',
      'herald_delivery_e2e_seconds_count{channel="sms"} 0',
      'herald_delivery_high_e2e_seconds_count{channel="sms"} 0',
      'herald_rate_limit_waits_total{channel="sms"} 0',
      'herald_rate_limit_wait_seconds_count{channel="sms"} 0',
      'herald_lease_takeovers_total{channel="sms"} 0',
      'herald_scheduler_released_total{kind="scheduled"} 0',
      'herald_scheduler_released_total{kind="retry"} 0',
      'herald_scheduler_release_lag_seconds_count{kind="retry"} 0',
      'herald_kafka_rebalances_total{group="herald-worker-sms"} 0',
    ]) {
      expect(text).toContain(line);
    }
  });
});

describe("delivery counters backed by the registry", () => {
  it("record each outcome (under the provider called) and takeover into the registry, and still read and log as plain numbers", async () => {
    const registry = createMetricsRegistry({ processMetrics: false });
    const metrics = createDeliveryMetrics(registry).channel("push", ["fcm"]);
    const counters = newCounters(metrics);
    const log = createLogger({ level: "silent", role: "test" });
    const report = (outcome: Outcome, provider = "fcm") => reportOutcome(outcome, provider, counters, log, metrics);
    report({ kind: "sent", providerMessageId: "m1", detail: "", provider: "fcm" });
    report({ kind: "sent", providerMessageId: "m2", detail: "", provider: "fcm" });
    report({ kind: "retry", error: "503", nextAttemptAt: new Date() });
    report({ kind: "failed", error: "bad token" });
    report({ kind: "dead", error: "503" });
    report({ kind: "failed", error: "could not render" }, NO_PROVIDER);
    counters.resentAfterLostOutcome++;
    counters.skipped++; // no metric: the counter alone
    const outcome = (o: string) => metricValue(registry, "herald_deliveries_total", { channel: "push", provider: "fcm", outcome: o });
    expect([await outcome("sent"), await outcome("retry"), await outcome("failed"), await outcome("dead_lettered")]).toEqual([2, 1, 1, 1]);
    expect(await metricValue(registry, "herald_deliveries_total", { channel: "push", provider: "none", outcome: "failed" })).toBe(1);
    expect(await metricValue(registry, "herald_lease_takeovers_total", { channel: "push" })).toBe(1);
    expect(counters).toMatchObject({ sent: 2, retried: 1, failed: 2, deadLettered: 1, resentAfterLostOutcome: 1, skipped: 1 });
    expect(JSON.parse(JSON.stringify(counters))).toMatchObject({ sent: 2, resentAfterLostOutcome: 1, skipped: 1 });
  });
});

describe("relay metrics' sink", () => {
  it("counts published records per topic and times each batch; a failed batch counts one error per topic in it", async () => {
    const registry = createMetricsRegistry({ processMetrics: false });
    const metrics = createRelayMetrics(registry);
    let fail = false;
    const sink = metrics.measured({ sendBatch: async () => (fail ? Promise.reject(new Error("broker down")) : undefined) });
    const rec = (topic: string) => ({ topic });
    await sink.sendBatch([rec("herald.email"), rec("herald.status"), rec("herald.email")]);
    await sink.sendBatch([rec("herald.sms")]);
    fail = true;
    await expect(sink.sendBatch([rec("herald.email"), rec("herald.email"), rec("herald.status")])).rejects.toThrow("broker down");

    expect(await metricValue(registry, "herald_relay_published_total", { topic: "herald.email" })).toBe(2);
    expect(await metricValue(registry, "herald_relay_published_total", { topic: "herald.status" })).toBe(1);
    expect(await metricValue(registry, "herald_relay_published_total", { topic: "herald.sms" })).toBe(1);
    expect(await metricValue(registry, "herald_relay_publish_seconds_count")).toBe(2);
    expect(await metricValue(registry, "herald_kafka_produce_errors_total", { topic: "herald.email" })).toBe(1);
    expect(await metricValue(registry, "herald_kafka_produce_errors_total", { topic: "herald.status" })).toBe(1);
    expect(await metricValue(registry, "herald_kafka_produce_errors_total")).toBe(2);
  });
});
