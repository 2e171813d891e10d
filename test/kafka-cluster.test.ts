import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fromBinary } from "@bufbuild/protobuf";
import { Kafka, logLevel, ConfigResourceTypes } from "kafkajs";
import { StatusEventSchema } from "../gen/herald/v1/notification_pb.js";
import { Status } from "../src/client/index.js";
import { startTestHerald, type TestHerald } from "./support/herald.js";
import { readTopic } from "./support/kafka-reader.js";
import { startKafkaCluster, type KafkaCluster } from "./support/kafka-cluster.js";
import { waitFor } from "./support/wait.js";
import { createSms } from "./support/watch.js";

// Herald on a replicated cluster (3 KRaft brokers, replication 3, min.insync.replicas 2, acks=all)
// loses the broker leading its SMS topic while Creates keep coming: every notification accepted
// before, during and after the loss is delivered, every status event stored reaches herald.status,
// and its topics were made as configured.

const BEFORE = 80;
const AFTER = 80;

let cluster: KafkaCluster;
let herald: TestHerald;
const delivered = new Map<string, number>();

beforeAll(async () => {
  cluster = await startKafkaCluster();
  herald = await startTestHerald({
    roles: ["server", "relay", "scheduler", "worker"],
    providers: {
      sms: {
        name: "recording",
        async send(m: { notificationId: string }) {
          delivered.set(m.notificationId, (delivered.get(m.notificationId) ?? 0) + 1);
          return { providerMessageId: `rec-${m.notificationId}` };
        },
        close: async () => {},
      },
    },
    env: {
      KAFKA_BROKERS: cluster.brokers.join(","),
      HERALD_TOPIC_REPLICATION: "3",
      HERALD_TOPIC_MIN_INSYNC_REPLICAS: "2",
      // A killed member's partitions (if the coordinator moves, the group rejoins) move soon.
      HERALD_KAFKA_SESSION_TIMEOUT_MS: "6000",
    },
  });
}, 300_000);

afterAll(async () => {
  await herald?.stop();
  await cluster?.destroy();
}, 120_000);

describe("a 3-broker Kafka cluster", () => {
  it("gets topics with replication 3 and min.insync.replicas 2", async () => {
    const shapes = await herald.rt.kafka.describeTopics(["herald.sms", "herald.email.high", "herald.status"]);
    expect([...shapes.values()].map((s) => s.replicas)).toEqual([3, 3, 3]);
    const admin = new Kafka({ brokers: cluster.brokers, logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    try {
      const { resources } = await admin.describeConfigs({
        includeSynonyms: false,
        resources: [{ type: ConfigResourceTypes.TOPIC, name: herald.topic("herald.sms"), configNames: ["min.insync.replicas"] }],
      });
      expect(resources[0]!.configEntries.find((e) => e.configName === "min.insync.replicas")?.configValue).toBe("2");
    } finally {
      await admin.disconnect();
    }
  });

  it("loses the leader of the SMS topic under load: nothing accepted is lost, delivery continues", { timeout: 400_000 }, async () => {
    const client = herald.client();
    const ids: string[] = [];
    let errors = 0;
    let stop = false;
    // Four callers back to back, 20 people, for as long as the test needs them.
    const load = Promise.all(
      Array.from({ length: 4 }, async (_, w) => {
        for (let i = w; !stop; i += 4) {
          try {
            ids.push(await createSms(client, `cluster-${i % 20}`, `cluster #${i}`));
          } catch {
            errors++;
          }
        }
      }),
    );
    await waitFor("notifications accepted and some delivered before the loss", () => ids.length >= BEFORE && delivered.size > 0, { timeoutMs: 120_000 });

    // The broker that leads partition 0 of the SMS topic, so the relay and the worker both lose a leader.
    const admin = new Kafka({ brokers: cluster.brokers, logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    const { topics } = await admin.fetchTopicMetadata({ topics: [herald.topic("herald.sms")] });
    const { brokers } = await admin.describeCluster();
    await admin.disconnect();
    const leaderId = topics[0]!.partitions.find((p) => p.partitionId === 0)!.leader;
    const leaderPort = brokers.find((b) => b.nodeId === leaderId)!.port;
    const acceptedAtKill = ids.length;
    await cluster.kill(cluster.nodeOf(leaderPort));

    await waitFor("notifications accepted after the loss", () => ids.length >= acceptedAtKill + AFTER, { timeoutMs: 120_000 });
    stop = true;
    await load;
    expect(errors).toBe(0);

    // Every one reaches SENT and the provider saw every one.
    let where = "";
    await waitFor(
      "every accepted notification SENT",
      async () => {
        const { rows } = await herald.db.pool.query<{ status: Status; n: number }>(
          "SELECT status, count(*)::int AS n FROM notifications WHERE id = ANY($1::uuid[]) GROUP BY status ORDER BY status",
          [ids],
        );
        where = rows.map((r) => `${Status[r.status]}: ${r.n}`).join(", ");
        return (rows.length === 1 && rows[0]!.status === Status.SENT && rows[0]!.n === ids.length) || (false as const);
      },
      { timeoutMs: 240_000, everyMs: 250 },
    ).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}; by status: ${where}`, { cause: err });
    });
    const missing = ids.filter((id) => !delivered.has(id));
    expect(missing).toEqual([]);

    // The relay's batches span topics, so a lost partition of a send could as well be a status
    // event's: every event stored for these notifications is on herald.status (repeats allowed).
    const { rows: stored } = await herald.db.pool.query<{ notification_id: string; sequence: number }>(
      "SELECT notification_id, sequence FROM status_events WHERE notification_id = ANY($1::uuid[])",
      [ids],
    );
    const wanted = new Set(stored.map((e) => `${e.notification_id}|${e.sequence}`));
    expect(wanted.size).toBeGreaterThanOrEqual(ids.length * 3); // QUEUED, SENDING, SENT at least
    const seen = new Set<string>();
    let decoded = 0;
    await readTopic(herald.topic("herald.status"), {
      brokers: cluster.brokers,
      timeoutMs: 120_000,
      until: (records) => {
        for (; decoded < records.length; decoded++) {
          const e = fromBinary(StatusEventSchema, records[decoded]!.value);
          seen.add(`${e.notificationId}|${e.sequence}`);
        }
        return [...wanted].every((k) => seen.has(k));
      },
    }).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}; not on herald.status: ${[...wanted].filter((k) => !seen.has(k)).slice(0, 10).join(", ")}`, { cause: err });
    });
  });
});
