import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Channel } from "../../gen/herald/v1/notification_pb.js";
import { startHealthPort, type HealthPort } from "../../src/health/port.js";
import { metricsRoute } from "../../src/metrics/route.js";
import { startTestHerald, type TestHerald } from "../support/herald.js";
import { startPrometheus, type TestPrometheus } from "../support/prometheus.js";
import { instantProvider } from "../support/watch.js";
import { waitFor } from "../support/wait.js";
import { FAST } from "../e2e/support.js";

// A real Prometheus scrapes a running Herald's relay at /metrics on its health port, as a
// deployment would, and is asked (its HTTP API, as Grafana asks it) for the email workers'
// consumer lag: 0 while they keep up, N after N Creates with the workers stopped, 0 again once
// workers are back. The workers run as their own Herald instance on the same database and
// topics, so stopping them is stopping a deployment's worker processes.

const N = 25;
const LAG = `sum(herald_kafka_consumer_lag{group="herald-worker-email", topic="herald.email"})`;
const DEADLINE = { timeoutMs: 90_000, everyMs: 250 };

let herald: TestHerald;
let healthPort: HealthPort;
let prometheus: TestPrometheus;
const workerInstances: TestHerald[] = [];
const provider = instantProvider("email-stand-in");

const startWorkers = async () => {
  const w = await startTestHerald({ roles: ["worker"], db: herald.db, topicPrefix: herald.topicPrefix, providers: { email: provider }, env: { ...FAST } });
  workerInstances.push(w);
  return w;
};

async function createEmails(n: number): Promise<void> {
  const client = herald.client();
  for (let i = 0; i < n; i++) {
    await client.create({
      notification: {
        channel: Channel.EMAIL,
        recipient: { userId: `u-${randomBytes(4).toString("hex")}`, address: { case: "email", value: "ada@example.com" } },
        body: { case: "content", value: { subject: "Hi", text: "Hello" } },
      },
    });
  }
}

beforeAll(async () => {
  herald = await startTestHerald({ roles: ["server", "relay"], env: { ...FAST } });
  // What `herald relay` serves with HERALD_HEALTH_PORT set (src/cli/run-roles.ts).
  healthPort = await startHealthPort({ host: "127.0.0.1", port: 0, routes: [metricsRoute(herald.rt.metrics, herald.rt.log)], log: herald.rt.log });
  prometheus = await startPrometheus([`127.0.0.1:${healthPort.port}`]);
}, 120_000);

afterAll(async () => {
  await prometheus?.stop();
  await healthPort?.close();
  for (const w of workerInstances) await w.stop();
  await herald?.stop();
}, 120_000);

describe("Prometheus scraping Herald", () => {
  it("reports the email workers' lag: 0 while they keep up, N while they are stopped, 0 once they are back", async () => {
    const probe = (expr: string, want: number) => async () => {
      const v = await prometheus.value(expr);
      return v === want ? v : false;
    };
    const first = await startWorkers();
    await waitFor(`Prometheus scraping the relay: up == 1`, probe(`up{job="${prometheus.job}"}`, 1), DEADLINE);
    // A first batch the running workers deliver and commit: the group has offsets from here on.
    await createEmails(5);
    await waitFor("5 sends", () => provider.sends === 5, DEADLINE);
    await waitFor(`lag 0 with the workers running`, probe(LAG, 0), DEADLINE);

    await first.stop();
    workerInstances.splice(workerInstances.indexOf(first), 1);
    await createEmails(N);
    await waitFor(`lag ${N} with the workers stopped`, probe(LAG, N), DEADLINE);
    expect(provider.sends).toBe(5);

    await startWorkers();
    await waitFor(`lag back to 0 with the workers restarted`, probe(LAG, 0), DEADLINE);
    expect(provider.sends).toBe(5 + N);
    // Every partition of herald.email is reported (HERALD_TOPIC_PARTITIONS=3 in the harness), and
    // every lag read of the run answered.
    expect(await prometheus.value(`count(herald_kafka_consumer_lag{group="herald-worker-email", topic="herald.email"})`)).toBe(3);
    expect(await prometheus.value(`max_over_time(herald_kafka_lag_errors_total[10m])`)).toBe(0);
  }, 300_000);
});
