import { randomBytes } from "node:crypto";
import { createInterface } from "node:readline";
import { Kafka, logLevel } from "kafkajs";
import pg from "pg";
import { ensureDatabase } from "../../src/store/db.js";
import { migrate } from "../../src/store/migrate.js";
import { startChild } from "../processes.js";

// bench/durable-grpc-server.ts as a child process on a scratch database (Herald's schema) and a
// fresh topic, with the count h2load cannot make: calls answered, and rows not yet acknowledged
// by Kafka, so a level ends only once everything it committed is published.

const PG_URL = process.env.BENCH_PG_URL ?? "postgres://postgres@127.0.0.1:5432";
const KAFKA_BROKERS = process.env.KAFKA_BROKERS ?? "127.0.0.1:9092";

export interface DurableCeiling {
  /** 127.0.0.1:port */
  address: string;
  /** The method h2load calls: Herald's Create path, so the same request bytes apply. */
  path: string;
  pid: number | undefined;
  counts(): Promise<{ calls: number; unproduced: number }>;
  /** Resolves once every committed row is acknowledged by Kafka (bounded by `timeoutMs`). */
  published(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startDurableCeiling(runId: string): Promise<DurableCeiling> {
  const url = `${PG_URL}/herald_bench_durable_${runId}`.toLowerCase();
  await ensureDatabase(url);
  const pool = new pg.Pool({ connectionString: url, max: 1 });
  await migrate(pool);
  await pool.end();
  const topic = `bench${runId}.durable.${randomBytes(3).toString("hex")}`;
  const admin = new Kafka({ brokers: KAFKA_BROKERS.split(","), clientId: "herald-bench", logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 6, replicationFactor: 1 }], waitForLeaders: true });
  const child = await startChild([new URL("../durable-grpc-server.js", import.meta.url).pathname, "0"], { DATABASE_URL: url, KAFKA_BROKERS, CEILING_TOPIC: topic }, /"listening"/);
  const port = (JSON.parse(child.line) as { listening: number }).listening;
  const waiters: Array<(c: { calls: number; unproduced: number }) => void> = [];
  createInterface({ input: child.proc.stdout! }).on("line", (line) => {
    if (line.startsWith('{"calls"')) waiters.shift()?.(JSON.parse(line) as { calls: number; unproduced: number });
  });
  const counts = () =>
    new Promise<{ calls: number; unproduced: number }>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("the durable ceiling server did not report its counts")), 5000);
      waiters.push((c) => {
        clearTimeout(timer);
        resolve(c);
      });
      child.proc.kill("SIGUSR2");
    });
  return {
    address: `127.0.0.1:${port}`,
    path: "/herald.v1.NotificationService/Create",
    pid: child.proc.pid,
    counts,
    async published(timeoutMs = 120_000) {
      const deadline = performance.now() + timeoutMs;
      while ((await counts()).unproduced > 0) {
        if (performance.now() > deadline) throw new Error(`durable ceiling: rows still unpublished after ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    async stop() {
      await child.stop();
      await admin.deleteTopics({ topics: [topic] }).catch(() => {});
      await admin.disconnect();
      const db = new pg.Client({ connectionString: `${PG_URL}/postgres` });
      await db.connect();
      await db.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(new URL(url).pathname.slice(1))} WITH (FORCE)`);
      await db.end();
    },
  };
}
