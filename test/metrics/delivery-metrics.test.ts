import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Channel, Status } from "../../gen/herald/v1/notification_pb.js";
import { PermanentError, TransientError } from "../../src/errors.js";
import type { Provider, RenderedMessage } from "../../src/workers/providers/provider.js";
import { startTestHerald, type TestHerald } from "../support/herald.js";
import { metricValue } from "../support/metric-values.js";
import { waitFor } from "../support/wait.js";

// The workers' metrics after a known workload, on a whole Herald in this process (API, relay,
// scheduler, email worker; real PostgreSQL, Kafka, Redis) with a stand-in provider whose answer
// depends on the subject. Each test reads the registry before and after its own workload; the
// tests of this file run one after the other.

/** "ok…" sends; "flaky…" fails its first attempt transiently; "perm…" fails permanently; "down…" always fails transiently. */
function standIn(): Provider & { calls: RenderedMessage[] } {
  const calls: RenderedMessage[] = [];
  return {
    name: "stand-in",
    calls,
    async send(message) {
      calls.push(message);
      if (message.subject.startsWith("flaky") && message.attempt === 1) throw new TransientError("503 service unavailable");
      if (message.subject.startsWith("perm")) throw new PermanentError("550 mailbox does not exist");
      if (message.subject.startsWith("down")) throw new TransientError("503 service unavailable");
      return { providerMessageId: `si-${message.notificationId}-${message.attempt}` };
    },
    close: async () => {},
  };
}

let herald: TestHerald;
const provider = standIn();

beforeAll(async () => {
  herald = await startTestHerald({
    roles: ["server", "relay", "scheduler", "worker"],
    providers: { email: provider },
    env: {
      HERALD_BACKOFF_BASE_MS: "50",
      HERALD_BACKOFF_CAP_MS: "100",
      // Two attempts: "flaky" succeeds on its second, "down" is dead-lettered after it.
      HERALD_MAX_ATTEMPTS_EMAIL: "2",
      HERALD_RELAY_POLL_MS: "100",
    },
  });
});
afterAll(async () => {
  await herald?.stop();
});

const value = (name: string, labels: Record<string, string> = {}) => metricValue(herald.rt.metrics, name, labels);
const outcome = (o: string) => value("herald_deliveries_total", { channel: "email", provider: "stand-in", outcome: o });

/** The values of `names` now, to compare with after a workload. */
async function snapshot(names: Record<string, () => Promise<number>>): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const [k, read] of Object.entries(names)) out[k] = await read();
  return out;
}

async function create(subject: string, userId = `u-${subject}`): Promise<string> {
  const { notification } = await herald.client().create({
    notification: {
      channel: Channel.EMAIL,
      recipient: { userId, address: { case: "email", value: `${userId}@example.com` } },
      body: { case: "content", value: { subject, text: "Hello" } },
    },
  });
  return notification!.id;
}

async function waitForStatus(ids: readonly string[], status: Status): Promise<void> {
  await waitFor(`${ids.length} notifications ${Status[status]}`, async () => {
    const r = await herald.rt.pool.query<{ n: number }>("SELECT count(*)::int AS n FROM notifications WHERE id = ANY($1::uuid[]) AND status = $2", [ids, status]);
    return r.rows[0]!.n === ids.length;
  });
}

describe("delivery metrics", () => {
  it("counts the email workers' (both lanes) and the status feed's group joins under their logical groups", async () => {
    await waitFor("the email worker's first join", async () => (await value("herald_kafka_rebalances_total", { group: "herald-worker-email" })) >= 1);
    await waitFor("the email high lane's first join", async () => (await value("herald_kafka_rebalances_total", { group: "herald-worker-email-high" })) >= 1);
    await waitFor("the status feed's first join", async () => (await value("herald_kafka_rebalances_total", { group: "herald-watch" })) >= 1);
    // Per-instance feed groups (herald-watch-<uuid>) and prefixed names never become labels.
    const { values } = await herald.rt.metrics.getSingleMetric("herald_kafka_rebalances_total")!.get();
    expect(values.map((v) => v.labels.group).sort()).toEqual(["herald-watch", "herald-worker-email", "herald-worker-email-high"]);
  });

  it("10 sent: outcome sent +10, e2e and provider calls observed 10 times, 10 records taken, nothing in flight", async () => {
    const before = await snapshot({
      sent: () => outcome("sent"),
      e2eCount: () => value("herald_delivery_e2e_seconds_count", { channel: "email" }),
      e2eSum: () => value("herald_delivery_e2e_seconds_sum", { channel: "email" }),
      calls: () => value("herald_provider_request_duration_seconds_count", { channel: "email", provider: "stand-in" }),
      records: () => value("herald_worker_records_total", { channel: "email" }),
    });
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) ids.push(await create(`ok-${i}`));
    await waitForStatus(ids, Status.SENT);
    // SENT is stored before the outcome is counted: wait for the count, then every figure is exact.
    await waitFor("10 sent outcomes counted", async () => (await outcome("sent")) - before.sent! >= 10);

    expect((await outcome("sent")) - before.sent!).toBe(10);
    expect((await value("herald_delivery_e2e_seconds_count", { channel: "email" })) - before.e2eCount!).toBe(10);
    expect((await value("herald_delivery_e2e_seconds_sum", { channel: "email" })) - before.e2eSum!).toBeGreaterThan(0);
    expect((await value("herald_provider_request_duration_seconds_count", { channel: "email", provider: "stand-in" })) - before.calls!).toBe(10);
    expect((await value("herald_worker_records_total", { channel: "email" })) - before.records!).toBeGreaterThanOrEqual(10);
    expect(await value("herald_sends_in_flight", { channel: "email" })).toBe(0);
    expect(await outcome("retry")).toBe(0);
  });

  it("a transient failure, then success: retry +1 then sent +1, and the scheduler released one retry", async () => {
    const before = await snapshot({
      sent: () => outcome("sent"),
      retry: () => outcome("retry"),
      released: () => value("herald_scheduler_released_total", { kind: "retry" }),
      e2e: () => value("herald_delivery_e2e_seconds_count", { channel: "email" }),
    });
    const id = await create("flaky-1");
    await waitForStatus([id], Status.SENT);
    await waitFor("the sent outcome counted", async () => (await outcome("sent")) - before.sent! >= 1);
    expect((await outcome("retry")) - before.retry!).toBe(1);
    expect((await outcome("sent")) - before.sent!).toBe(1);
    expect((await value("herald_scheduler_released_total", { kind: "retry" })) - before.released!).toBe(1);
    // One notification delivered, once: e2e counts SENT, not attempts.
    expect((await value("herald_delivery_e2e_seconds_count", { channel: "email" })) - before.e2e!).toBe(1);
  });

  it("a permanent failure: failed +1, and herald_dead_letters +1", async () => {
    const failedBefore = await outcome("failed");
    const lettersBefore = await value("herald_dead_letters");
    const id = await create("perm-1");
    await waitForStatus([id], Status.FAILED);
    await waitFor("the failed outcome counted", async () => (await outcome("failed")) - failedBefore >= 1);
    expect((await outcome("failed")) - failedBefore).toBe(1);
    // The gauge is read on scrape and cached for a second: wait for a read after the dead letter.
    await waitFor("herald_dead_letters to show it", async () => (await value("herald_dead_letters")) === lettersBefore + 1);
    expect(await outcome("dead_lettered")).toBe(0);
  });

  it("attempts exhausted: one retry, then dead_lettered +1", async () => {
    const before = await snapshot({ retry: () => outcome("retry"), dead: () => outcome("dead_lettered"), sent: () => outcome("sent") });
    const id = await create("down-1");
    await waitForStatus([id], Status.DEAD_LETTERED);
    await waitFor("the dead_lettered outcome counted", async () => (await outcome("dead_lettered")) - before.dead! >= 1);
    expect((await outcome("dead_lettered")) - before.dead!).toBe(1);
    expect((await outcome("retry")) - before.retry!).toBe(1);
    expect((await outcome("sent")) - before.sent!).toBe(0);
  });

  it("serves every delivery metric at /metrics on the API's HTTP listener", async () => {
    const text = await (await fetch(`${herald.httpUrl}/metrics`)).text();
    for (const name of [
      "herald_worker_records_total",
      "herald_deliveries_total",
      "herald_provider_request_duration_seconds_bucket",
      "herald_delivery_e2e_seconds_bucket",
      "herald_sends_in_flight",
      "herald_rate_limit_waits_total",
      "herald_rate_limit_wait_seconds_bucket",
      "herald_lease_takeovers_total",
      "herald_relay_published_total",
      "herald_relay_leader",
      "herald_outbox_pending",
      "herald_outbox_oldest_age_seconds",
      "herald_scheduler_due",
      "herald_scheduler_due_oldest_age_seconds",
      "herald_dead_letters",
      "herald_scheduler_released_total",
      "herald_scheduler_release_lag_seconds_bucket",
      "herald_relay_publish_seconds_bucket",
      "herald_kafka_rebalances_total",
      "herald_kafka_fetches_total",
    ]) {
      expect(text, name).toMatch(new RegExp(`^${name}[{ ]`, "m"));
    }
    // The catalogue's e2e buckets, exactly.
    const les = [...text.matchAll(/^herald_delivery_e2e_seconds_bucket\{le="([^"]+)",channel="email"\}/gm)].map((m) => m[1]);
    expect(les).toEqual(["0.005", "0.01", "0.025", "0.05", "0.075", "0.1", "0.15", "0.2", "0.3", "0.5", "0.75", "1", "1.5", "2", "3", "5", "7.5", "10", "15", "30", "60", "120", "300", "+Inf"]);
    expect(text).toMatch(/^herald_relay_leader 1$/m);
  });
});
