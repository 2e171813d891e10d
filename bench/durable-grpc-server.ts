import * as grpc from "@grpc/grpc-js";
import { Kafka, Partitioners, logLevel } from "kafkajs";
import pg from "pg";
import { uuidv7 } from "uuidv7";
import { rawUnary } from "./lib/raw-method.js";

// The durable accept ceiling (issue 17): a bare @grpc/grpc-js server whose one unary method does
// the least a durable accept must. It group-commits the call's row into Herald's notifications
// table, one multi-row INSERT (its own transaction and fsync) for all the calls that arrived
// while the previous one committed, answers each call once its row is committed, and produces
// one record per row to Kafka with acks=all, one batch at a time, behind the answers (as
// Herald's relay does). No validation, no decoding, no status event, no outbox row: Herald's
// Create is measured against it in the same run, with the same h2load flags.
// Usage: DATABASE_URL=… KAFKA_BROKERS=… CEILING_TOPIC=… node dist/bench/durable-grpc-server.js [PORT]
// Prints {"listening": port} when ready, and on SIGUSR2 {"calls": n, "unproduced": m}: the
// calls answered, and the committed rows Kafka has not acknowledged yet.

const port = Number(process.argv[2] ?? 0);
const topic = process.env.CEILING_TOPIC ?? "ceiling";
const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 4 });
const kafka = new Kafka({ brokers: (process.env.KAFKA_BROKERS ?? "127.0.0.1:9092").split(","), clientId: "herald-bench-ceiling", logLevel: logLevel.NOTHING });
const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false, createPartitioner: Partitioners.DefaultPartitioner });
/** Rows per INSERT and INSERTs at once at most: Herald's group-commit defaults (HERALD_COMMIT_MAX_BATCH, HERALD_COMMIT_MAX_IN_FLIGHT). */
const MAX_BATCH = 256;
const MAX_IN_FLIGHT = 2;

interface Pending {
  id: string;
  spec: Buffer;
  done: (err: Error | null) => void;
}

let calls = 0;
let committing = 0;
let waiting: Pending[] = [];
let toProduce: Array<{ key: string; value: Buffer }> = [];
let producing = false;

const INSERT = `INSERT INTO notifications (id, tenant, channel, user_id, status, spec, priority, labels, idempotency_key, request_hash,
    correlation_id, local_time, deliver_at, max_attempts, last_sequence, created_at, updated_at)
  SELECT id, 'ceiling', 1, 'user-42', 2, spec, 0, '{}', NULL, NULL, id::text, NULL, now(), 4, 1, now(), now()
  FROM unnest($1::uuid[], $2::bytea[]) AS t(id, spec)`;

async function commitLoop(): Promise<void> {
  if (committing >= MAX_IN_FLIGHT) return;
  committing++;
  while (waiting.length > 0) {
    const batch = waiting.slice(0, MAX_BATCH);
    waiting = waiting.slice(batch.length);
    try {
      await pool.query({ name: "ceiling-accept", text: INSERT, values: [batch.map((p) => p.id), batch.map((p) => p.spec)] });
      for (const p of batch) {
        toProduce.push({ key: p.id, value: p.spec });
        calls++;
        p.done(null);
      }
      void produceLoop();
    } catch (err) {
      for (const p of batch) p.done(err as Error);
    }
  }
  committing--;
}

async function produceLoop(): Promise<void> {
  if (producing) return;
  producing = true;
  while (toProduce.length > 0) {
    const messages = toProduce.slice(0, 1000);
    try {
      await producer.sendBatch({ acks: -1, timeout: 10_000, topicMessages: [{ topic, messages }] });
      toProduce = toProduce.slice(messages.length);
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  producing = false;
}

const server = new grpc.Server();
const empty = Buffer.alloc(0);
server.addService(
  { Create: rawUnary("/herald.v1.NotificationService/Create") },
  {
    Create: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      waiting.push({ id: uuidv7(), spec: call.request, done: (err) => (err ? cb({ code: grpc.status.UNAVAILABLE, details: err.message }) : cb(null, empty)) });
      void commitLoop();
    },
  },
);

await producer.connect();
server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err, bound) => {
  if (err) throw err;
  console.log(JSON.stringify({ listening: bound }));
});
process.on("SIGUSR2", () => console.log(JSON.stringify({ calls, unproduced: toProduce.length })));
process.on("SIGTERM", () => {
  server.forceShutdown();
  void Promise.allSettled([producer.disconnect(), pool.end()]).then(() => process.exit(0));
});
