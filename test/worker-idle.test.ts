import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Channel } from "../gen/herald/v1/notification_pb.js";
import type { Provider } from "../src/workers/providers/provider.js";
import { KEY_A, startTestHerald, type TestHerald } from "./support/herald.js";
import { metricValue } from "./support/metric-values.js";
import { waitFor } from "./support/wait.js";

// An idle worker long-polls: the broker holds each fetch of an empty topic for the fetch wait
// (HERALD_WORKER_LONG_POLL_MS, 1000 ms by default) and answers it as soon as a record arrives. So, with nothing to deliver, a lane's
// consumer makes at most one fetch per wait that passed (a 10 ms wait made fifty times as many),
// and a notification sent to an idle worker is still delivered.

/** The broker holds an empty fetch this long (HERALD_WORKER_LONG_POLL_MS's default). */
const LONG_POLL_MS = 1000;

const sent: string[] = [];
const provider: Provider = {
  name: "recording",
  async send(message) {
    sent.push(message.notificationId);
    return { providerMessageId: `rec-${message.notificationId}` };
  },
  close: async () => {},
};

let h: TestHerald;
beforeAll(async () => {
  h = await startTestHerald({ roles: ["server", "relay", "worker"], providers: { sms: provider } });
});
afterAll(async () => {
  await h?.stop();
});

const fetches = (group: string) => metricValue(h.rt.metrics, "herald_kafka_fetches_total", { group });

describe("idle worker", () => {
  it.each(["herald-worker-sms", "herald-worker-sms-high"])("%s makes at most one fetch per fetch wait with nothing to consume", async (group) => {
    // Joined and fetching: every fetch from now on finds an empty topic.
    await waitFor(`${group} fetching`, async () => (await fetches(group)) >= 2);
    const before = await fetches(group);
    const since = Date.now();
    const after = await waitFor(`${group}: 4 more fetches`, async () => {
      const n = await fetches(group);
      return n >= before + 4 && n;
    });
    // Each fetch counted here began after the one before it ended, and was held LONG_POLL_MS by
    // the broker; only the first may have begun before `since`. A slow machine lengthens the
    // time, never shortens the holds: the bound only loosens.
    const elapsed = Date.now() - since;
    expect(after - before).toBeLessThanOrEqual(Math.floor(elapsed / LONG_POLL_MS) + 1);
  });

  it("delivers a notification sent while its worker long-polls", async () => {
    const { notification } = await h.client(KEY_A).create({
      notification: {
        channel: Channel.SMS,
        recipient: { userId: "idle-user", address: { case: "phone", value: "+14155550100" } },
        body: { case: "content", value: { text: "hello after a quiet spell" } },
      },
    });
    await waitFor("the send", () => sent.includes(notification!.id));
  });
});
