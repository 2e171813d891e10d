import { randomBytes } from "node:crypto";
import { Kafka, Partitioners, logLevel } from "kafkajs";
import type pg from "pg";
import { uuidv7 } from "uuidv7";
import { dispatchBytes } from "./bodies.js";
import { INSERT_NOTIFICATION_ROWS, notificationRowParams } from "./notification-rows.js";

// The least any durable bulk accept-and-publish must do, with nothing of Herald around it: per
// notification one row INSERTed (in 1000-row unnest statements, each its own transaction and
// fsync) and one Dispatch-sized record produced to Kafka with acks=all, from two loops that each
// insert a chunk and then produce it. No gRPC, no validation, no status event, no outbox, no
// relay. A write path that keeps Herald's guarantees does at least this much, so this rate bounds
// what CreateBatch can reach on the machine it is measured on.

const KAFKA_BROKERS = (process.env.KAFKA_BROKERS ?? "127.0.0.1:9092").split(",");

export interface SkeletonResult {
  /** Rows inserted and records acknowledged, per second. */
  perSecond: number;
  /** What each half alone reaches (same statement, same producer), per second. */
  insertOnly: number;
  produceOnly: number;
}

/** Runs the three cases (insert only, produce only, both) for `seconds` each, against `pool`'s notifications table. */
export async function insertAndProduceSkeleton(pool: pg.Pool, opts: { seconds: number; rows?: number; topicPrefix: string }): Promise<SkeletonResult> {
  const rows = opts.rows ?? 1000;
  const kafka = new Kafka({ brokers: KAFKA_BROKERS, clientId: "herald-bench-skeleton", logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  const topic = `${opts.topicPrefix}skeleton.${randomBytes(3).toString("hex")}`;
  // One producer per loop: kafkajs' idempotent producer must not overlap its sends.
  const producers = [0, 1].map(() =>
    kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false, createPartitioner: Partitioners.DefaultPartitioner }),
  );
  await admin.connect();
  try {
    await admin.createTopics({ topics: [{ topic, numPartitions: 6, replicationFactor: 1 }], waitForLeaders: true });
    for (const p of producers) await p.connect();
    const value = Buffer.from(dispatchBytes());
    const insert = (ids: string[], i: number) => pool.query(INSERT_NOTIFICATION_ROWS, notificationRowParams("skeleton", ids, i));
    const produce = (p: (typeof producers)[number], ids: string[]) =>
      p.sendBatch({ acks: -1, timeout: 10_000, topicMessages: [{ topic, messages: ids.map((id) => ({ key: id, value })) }] });
    const measure = async (doInsert: boolean, doProduce: boolean, seconds = opts.seconds): Promise<number> => {
      let done = 0;
      const t0 = performance.now();
      const end = t0 + seconds * 1000;
      await Promise.all(
        producers.map(async (p, w) => {
          let i = w * rows;
          while (performance.now() < end) {
            const ids = Array.from({ length: rows }, () => uuidv7());
            if (doInsert) await insert(ids, i);
            if (doProduce) await produce(p, ids);
            i += 2 * rows;
            done += rows;
          }
        }),
      );
      return Math.round(done / ((performance.now() - t0) / 1000));
    };
    // Warm-up: connections, metadata, producer ids, the statement's plan.
    await measure(true, true, 1);
    const insertOnly = await measure(true, false);
    const produceOnly = await measure(false, true);
    const perSecond = await measure(true, true);
    return { perSecond, insertOnly, produceOnly };
  } finally {
    for (const p of producers) await p.disconnect().catch(() => {});
    await admin.deleteTopics({ topics: [topic] }).catch(() => {});
    await admin.disconnect();
  }
}
