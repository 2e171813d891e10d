import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Channel } from "../../gen/herald/v1/notification_pb.js";
import { RELAY_LOCK_KEY } from "../../src/relay/leadership.js";
import { startTestHerald, type TestHerald } from "../support/herald.js";
import { metricValue } from "../support/metric-values.js";
import { waitFor } from "../support/wait.js";

// The relay role's metrics: an API instance accepts, a relay instance of the same deployment
// (same database and topics, its own registry) publishes. The test holds the relay's advisory
// lock first, so the relay stands by while the outbox fills: its backlog gauges show the rows,
// its leader gauge 0; once the lock is let go the relay leads, publishes, and they change.

const N = 6;
let api: TestHerald;
let relay: TestHerald | undefined;
let lockHolder: pg.PoolClient;
let lockHeld = false;

beforeAll(async () => {
  api = await startTestHerald({ roles: ["server"] });
  lockHolder = await api.db.pool.connect();
  const { rows } = await lockHolder.query<{ locked: boolean }>("SELECT pg_try_advisory_lock($1) AS locked", [RELAY_LOCK_KEY]);
  lockHeld = rows[0]?.locked === true;
  if (!lockHeld) throw new Error("could not take the relay lock");
  relay = await startTestHerald({ roles: ["relay"], db: api.db, topicPrefix: api.topicPrefix });
});
afterAll(async () => {
  if (lockHeld) lockHolder.release(true);
  await relay?.stop();
  await api?.stop();
});

const value = (name: string, labels: Record<string, string> = {}) => metricValue(relay!.rt.metrics, name, labels);

describe("relay metrics", () => {
  it("a standby relay: leader 0; the outbox gauges show what waits, then the leader publishes it all and they fall to 0", async () => {
    expect(await value("herald_relay_leader")).toBe(0);
    expect(await value("herald_outbox_pending")).toBe(0);
    for (let i = 0; i < N; i++) {
      await api.client().create({
        notification: {
          channel: Channel.EMAIL,
          recipient: { userId: `u-${i}`, address: { case: "email", value: `u-${i}@example.com` } },
          body: { case: "content", value: { subject: "Hi", text: "Hello" } },
        },
      });
    }
    // Each Create writes two outbox rows: its Dispatch (herald.email) and its status event (herald.status).
    // The gauges are cached for a second: wait for a read after the last Create.
    await waitFor(`herald_outbox_pending to read ${2 * N}`, async () => (await value("herald_outbox_pending")) === 2 * N);
    expect(await value("herald_outbox_oldest_age_seconds")).toBeGreaterThan(0);
    expect(await value("herald_relay_published_total")).toBe(0);
    expect(await value("herald_relay_leader")).toBe(0);

    lockHolder.release(true); // ends the session: the lock is free, and the relay takes it
    lockHeld = false;
    await waitFor("the relay to lead", async () => (await value("herald_relay_leader")) === 1);
    await waitFor(`${N} Dispatches published`, async () => (await value("herald_relay_published_total", { topic: "herald.email" })) === N);
    await waitFor(`${N} status events published`, async () => (await value("herald_relay_published_total", { topic: "herald.status" })) === N);
    expect(await value("herald_relay_published_total")).toBe(2 * N);
    expect(await value("herald_relay_publish_seconds_count")).toBeGreaterThanOrEqual(1);
    expect(await value("herald_kafka_produce_errors_total")).toBe(0);
    await waitFor("herald_outbox_pending to read 0", async () => (await value("herald_outbox_pending")) === 0);
    expect(await value("herald_outbox_oldest_age_seconds")).toBe(0);

    // Stopping gives the lead up: the gauge follows.
    const stopping = relay!;
    relay = undefined;
    await stopping.stop();
    expect(await metricValue(stopping.rt.metrics, "herald_relay_leader")).toBe(0);
  });
});
