import { afterEach, describe, expect, it } from "vitest";
import { Channel, Status } from "../gen/herald/v1/notification_pb.js";
import type { Provider } from "../src/workers/providers/provider.js";
import { KEY_A, KEY_B, startTestHerald, type TestHerald } from "./support/herald.js";
import { waitFor } from "./support/wait.js";

// Fair share between tenants at delivery (real PostgreSQL, Kafka, Redis). One send slot, and a
// provider that holds the first send until the test opens it: meanwhile tenant-a's backlog is
// claimed and waits for the slot, then tenant-b's few notifications join it. The provider sees
// the order in which sends got the slot; the test asserts that order, never a time.

const A_RECIPIENTS = 30;
const ANN = 5;
const B_COUNT = 5;

function gatedProvider() {
  const order: string[] = [];
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  const provider: Provider = {
    name: "gated",
    async send(message) {
      order.push(message.notificationId);
      await gate;
      return { providerMessageId: `g-${message.notificationId}` };
    },
    close: async () => {},
  };
  return { provider, order, open: () => open() };
}

const heralds: TestHerald[] = [];
afterEach(async () => {
  for (const h of heralds.splice(0)) await h.stop();
});

/**
 * Creates one notification per user id, in order, in one CreateBatch: one outbox batch, so each
 * partition's share arrives in one fetch. (A worker holds two fetched batches per partition; a
 * backlog trickling in over many fetches would stay in Kafka behind the held one.)
 */
async function createAll(herald: TestHerald, key: string, userIds: readonly string[]): Promise<string[]> {
  const res = await herald.client(key).createBatch({
    items: userIds.map((userId, i) => ({
      item: {
        case: "create" as const,
        value: {
          notification: {
            channel: Channel.EMAIL,
            recipient: { userId, address: { case: "email" as const, value: `${userId}@example.com` } },
            body: { case: "content" as const, value: { subject: `${userId} ${i}`, text: "Hello" } },
          },
        },
      },
    })),
  });
  return res.results.map((r) => {
    if (r.result.case !== "notification") throw new Error(`item refused: ${JSON.stringify(r.result.value)}`);
    return r.result.value.id;
  });
}

async function countIn(herald: TestHerald, ids: readonly string[], status: Status): Promise<number> {
  const { rows } = await herald.db.pool.query<{ n: number }>("SELECT count(*)::int AS n FROM notifications WHERE id = ANY($1::uuid[]) AND status = $2", [ids, status]);
  return rows[0]!.n;
}

/** One Create per user id, one after another: the worker fetches them in many small batches. */
async function createEach(herald: TestHerald, key: string, userIds: readonly string[]): Promise<string[]> {
  const ids: string[] = [];
  for (const [i, userId] of userIds.entries()) {
    const { notification } = await herald.client(key).create({
      notification: {
        channel: Channel.EMAIL,
        recipient: { userId, address: { case: "email", value: `${userId}@example.com` } },
        body: { case: "content", value: { subject: `${userId} ${i}`, text: "Hello" } },
      },
    });
    ids.push(notification!.id);
  }
  return ids;
}

/**
 * Runs the scene; returns the send order of every notification, tenant-b's ids and ann's in
 * creation order. `trickle`: tenant-a's backlog arrives one Create at a time (many fetches per
 * partition), which only reading ahead brings within the worker's reach.
 */
async function scene(fair: boolean, trickle = false) {
  const gated = gatedProvider();
  const herald = await startTestHerald({
    roles: ["server", "relay", "scheduler", "worker"],
    providers: { email: gated.provider },
    env: { HERALD_WORKER_CONCURRENCY: "1", HERALD_WORKER_IN_FLIGHT: "100", HERALD_RELAY_POLL_MS: "100", HERALD_FAIR_DELIVERY: fair ? "on" : "off" },
  });
  heralds.push(herald);
  // tenant-a: one notification each for 30 people, and five for ann (her lane holds four back).
  const created = await (trickle ? createEach : createAll)(herald, KEY_A, [...Array.from({ length: ANN }, () => "ann"), ...Array.from({ length: A_RECIPIENTS }, (_, i) => `a-${i}`)]);
  const ann = created.slice(0, ANN);
  const a = created.slice(ANN);
  // Every head of a lane is claimed: one at the provider, the rest waiting for the send slot.
  await waitFor("tenant-a's backlog claimed", async () => (await countIn(herald, [...a, ...ann], Status.SENDING)) === A_RECIPIENTS + 1);
  const b = await createAll(herald, KEY_B, Array.from({ length: B_COUNT }, (_, i) => `b-${i}`));
  await waitFor("tenant-b's notifications claimed", async () => (await countIn(herald, b, Status.SENDING)) === B_COUNT);
  gated.open();
  const all = [...ann, ...a, ...b];
  await waitFor("every notification SENT", async () => (await countIn(herald, all, Status.SENT)) === all.length, { timeoutMs: 60_000 });
  return { order: gated.order, b, ann, all };
}

describe("fair delivery between tenants", () => {
  it("tenant-b's notifications take turns with tenant-a's backlog instead of waiting behind it; a person's order holds", async () => {
    const { order, b, ann, all } = await scene(true);
    expect(order).toHaveLength(all.length);
    expect(new Set(order)).toEqual(new Set(all));
    // Round robin from the moment the slot frees: a, b, a, b, ... so tenant-b's five are among
    // the first eleven sends (the one held at the provider, then five turns each), not the last five.
    const positions = b.map((id) => order.indexOf(id));
    expect(Math.max(...positions)).toBeLessThanOrEqual(2 * B_COUNT + 1);
    // ann's messages went out in the order they were created, whatever their turns.
    expect(order.filter((id) => ann.includes(id))).toEqual(ann);
  });

  it("reads ahead past a backlog that came in many fetches, so tenant-b's notifications are still in reach", async () => {
    const { order, b, ann } = await scene(true, true);
    const positions = b.map((id) => order.indexOf(id));
    expect(Math.max(...positions)).toBeLessThanOrEqual(2 * B_COUNT + 1);
    expect(order.filter((id) => ann.includes(id))).toEqual(ann);
  });

  it("with HERALD_FAIR_DELIVERY=off the same scene serves first come, first served: tenant-b waits behind the backlog", async () => {
    const { order, b, ann } = await scene(false);
    const positions = b.map((id) => order.indexOf(id));
    // Behind the 30 heads of tenant-a's lanes that were waiting before them.
    expect(Math.min(...positions)).toBeGreaterThanOrEqual(A_RECIPIENTS);
    expect(order.filter((id) => ann.includes(id))).toEqual(ann);
  });
});
