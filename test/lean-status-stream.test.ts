import { fromBinary } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StatusEventSchema } from "../gen/herald/v1/notification_pb.js";
import { Status } from "../src/client/index.js";
import { startTestHerald, type TestHerald } from "./support/herald.js";
import { readTopic } from "./support/kafka-reader.js";
import { waitFor } from "./support/wait.js";
import { createSms } from "./support/watch.js";

// HERALD_STREAM_SENDING=off: a claim stores its SENDING event but publishes nothing, so
// herald.status carries QUEUED and the outcome only, and the history keeps all three.

let herald: TestHerald;

beforeAll(async () => {
  herald = await startTestHerald({
    roles: ["server", "relay", "worker"],
    providers: {
      sms: { name: "recording", send: async (m: { notificationId: string }) => ({ providerMessageId: `rec-${m.notificationId}` }), close: async () => {} },
    },
    env: { HERALD_STREAM_SENDING: "off" },
  });
});

afterAll(async () => {
  await herald?.stop();
});

describe("a lean status stream (HERALD_STREAM_SENDING=off)", () => {
  it("keeps SENDING in the history and off herald.status", async () => {
    const id = await createSms(herald.client(), "lean-1");
    await waitFor("SENT", async () => {
      const { rows } = await herald.db.pool.query<{ status: Status }>("SELECT status FROM notifications WHERE id = $1", [id]);
      return rows[0]?.status === Status.SENT;
    });

    const { rows: history } = await herald.db.pool.query<{ sequence: number; status: Status }>(
      "SELECT sequence, status FROM status_events WHERE notification_id = $1 ORDER BY sequence",
      [id],
    );
    expect(history).toEqual([
      { sequence: 1, status: Status.QUEUED },
      { sequence: 2, status: Status.SENDING },
      { sequence: 3, status: Status.SENT },
    ]);

    const records = await readTopic(herald.topic("herald.status"), {
      until: (rs) => rs.some((r) => r.key === id && fromBinary(StatusEventSchema, r.value).status === Status.SENT),
    });
    const streamed = records.filter((r) => r.key === id).map((r) => fromBinary(StatusEventSchema, r.value));
    expect(streamed.map((e) => [e.sequence, e.status])).toEqual([
      [1, Status.QUEUED],
      [3, Status.SENT],
    ]);

    // Nothing of the claim went through the outbox.
    const { rows: outbox } = await herald.db.pool.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM outbox WHERE notification_id = $1 AND topic = 'herald.status'",
      [id],
    );
    expect(outbox[0]!.n).toBe(2);
  });
});
