import { randomBytes } from "node:crypto";
import { Kafka, Partitioners, logLevel } from "kafkajs";
import pg from "pg";
import { uuidv7 } from "uuidv7";
import { ensureDatabase } from "../../src/store/db.js";
import { migrate } from "../../src/store/migrate.js";
import { dispatchBytes, getRequestBytes, specBytes } from "../lib/bodies.js";
import { INSERT_NOTIFICATION_ROWS, notificationRowParams } from "../lib/notification-rows.js";
import { GRPC_HEADERS, grpcFrame, h2load, spread } from "../lib/h2load.js";
import { grpcCall, startNoop, type NoopKind } from "../lib/noop.js";
import type { Figure, LatencySeries, Scenario, ScenarioContext, TimeSeries } from "../lib/result.js";
import { downsample, perSecond, summarize } from "../lib/stats.js";

// Same-run ceilings: what the parts Herald is built from can do on this machine, alone, with
// nothing of Herald in the way. Herald's own figures (create, e2e) are read against these.

const KAFKA_BROKERS = (process.env.KAFKA_BROKERS ?? "127.0.0.1:9092").split(",");
const PG_URL = process.env.BENCH_PG_URL ?? "postgres://postgres@127.0.0.1:5432";

interface Out {
  figures: Figure[];
  latencies: LatencySeries[];
  timeseries: TimeSeries[];
  notes: string[];
  methods: string[];
}

export const run: Scenario = async (ctx) => {
  const out: Out = { figures: [], latencies: [], timeseries: [], notes: [], methods: [] };
  for (const kind of ["grpc-js", "connect-node"] as const) await noopCeiling(ctx, kind, out);
  await kafkaCeiling(ctx, out);
  await postgresCeiling(ctx, out);
  return {
    id: "ceilings",
    title: "Ceilings: no-op RPC servers, raw Kafka produce, raw PostgreSQL INSERT",
    command: `npm run bench -- --only ceilings${ctx.quick ? " --quick" : ""}`,
    method: out.methods.join(" "),
    figures: out.figures,
    latencies: out.latencies,
    timeseries: out.timeseries,
    notes: out.notes,
  };
};

/** A no-op unary method, loaded by h2load at each concurrency; success counted by the server. */
async function noopCeiling(ctx: ScenarioContext, kind: NoopKind, out: Out): Promise<void> {
  const levels = ctx.quick ? [50] : [1, 10, 50, 200];
  const seconds = ctx.quick ? 3 : 10;
  ctx.progress.step(`no-op ${kind}: starting`);
  const server = await startNoop(kind);
  try {
    const message = getRequestBytes();
    const url = `http://${server.address}${server.path}`;
    const check = async (when: string) => {
      const code = await grpcCall(server.address, server.path, message);
      if (code !== 0) throw new Error(`no-op ${kind}: a grpc-js call ${when} the load got status ${code}`);
    };
    await check("before");
    for (const inFlight of levels) {
      const { connections, streams } = spread(inFlight);
      const opts = { url, body: grpcFrame(message), headers: GRPC_HEADERS, connections, streams };
      ctx.progress.step(`no-op ${kind} ${inFlight} in flight: warm-up`);
      await h2load({ ...opts, seconds: 1 });
      const before = await server.calls();
      ctx.progress.step(`no-op ${kind} ${inFlight} in flight: ${seconds}s`);
      const r = await h2load({ ...opts, seconds });
      const answered = (await server.calls()) - before;
      // The handler cannot fail, so a call that did not reach it failed (h2load still saw HTTP 200).
      const errors = r.failed + Math.max(0, r.status2xx - answered);
      const name = `no-op ${kind}, ${inFlight} in flight`;
      out.figures.push({
        name,
        throughput: { value: r.rps, unit: "req/s" },
        latency: r.latency,
        errors,
        extra: { connections, "streams/conn": streams, "answered by handler": answered },
      });
      out.latencies.push({ name, samplesMs: downsample(r.samplesMs) });
      out.timeseries.push({ name, unit: "req/s", points: r.perSecond });
      if (inFlight === levels.at(-1)) out.methods.push(`No-op ${kind}: ${r.command} (one run per concurrency, after a 1 s warm-up run).`);
    }
    await check("after");
  } finally {
    await server.stop();
  }
  if (kind === "grpc-js") {
    out.notes.push(
      "No-op servers: success is checked twice, since h2load cannot see grpc-status: one call with a real grpc-js client before and after the load must return OK, and the number of calls the server's handler answered during each run must reach h2load's 2xx count (a shortfall counts as errors).",
      "h2load, the server and (in the Kafka and PostgreSQL rows) the broker or database share this machine's cores: these are ceilings of the machine, not of the libraries alone.",
    );
  }
}

/** kafkajs produce rate with the relay's producer settings, to a fresh topic. */
async function kafkaCeiling(ctx: ScenarioContext, out: Out): Promise<void> {
  const total = ctx.quick ? 20_000 : 200_000;
  const batch = 500;
  const partitions = 6;
  const topic = `bench${ctx.runId}.ceiling.${randomBytes(3).toString("hex")}`;
  const kafka = new Kafka({ brokers: KAFKA_BROKERS, clientId: "herald-bench", logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  ctx.progress.step(`kafkajs: creating topic ${topic}`);
  await admin.connect();
  // Exactly what src/kafka/producer.ts builds for the relay.
  const producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
    createPartitioner: Partitioners.DefaultPartitioner,
    retry: { retries: 3, initialRetryTime: 100, maxRetryTime: 1000 },
  });
  try {
    await admin.createTopics({ topics: [{ topic, numPartitions: partitions, replicationFactor: 1 }], waitForLeaders: true });
    await producer.connect();
    const value = Buffer.from(dispatchBytes());
    const headers = { tenant: "bench", "correlation-id": uuidv7(), attempt: "1" };
    const messages = (n: number) =>
      Array.from({ length: batch }, (_, i) => ({ key: `user-${(n * batch + i) % 5000}`, value, headers }));
    // Warm-up: connections, metadata, producer id.
    await producer.sendBatch({ acks: -1, timeout: 10_000, topicMessages: [{ topic, messages: messages(0) }] });
    const batchMs: number[] = [];
    const acked: number[] = [];
    const t0 = performance.now();
    // One sendBatch at a time, like the relay (kafkajs' idempotent producer must not overlap sends).
    for (let n = 0; n < total / batch; n++) {
      const start = performance.now();
      await producer.sendBatch({ acks: -1, timeout: 10_000, topicMessages: [{ topic, messages: messages(n) }] });
      const end = performance.now();
      batchMs.push(end - start);
      for (let i = 0; i < batch; i++) acked.push(end);
      if (n % 10 === 0) ctx.progress.step(`kafkajs produce: ${(n + 1) * batch}/${total} records`);
    }
    const seconds = (performance.now() - t0) / 1000;
    const name = `kafkajs produce, ${batch}-record batches`;
    out.figures.push({
      name,
      throughput: { value: Math.round(total / seconds), unit: "records/s" },
      latency: summarize(batchMs),
      errors: 0,
      extra: { records: total, "value bytes": value.length, partitions, "latency is": "per batch" },
    });
    out.latencies.push({ name: `${name} (per batch)`, samplesMs: downsample(batchMs) });
    // Whole seconds only: the last one is partial.
    out.timeseries.push({ name, unit: "records/s", points: perSecond(acked, t0).filter(([s]) => s < Math.floor(seconds)) });
    out.methods.push(
      `Kafka: ${total.toLocaleString("en")} records of ${value.length} bytes (a herald.v1.Dispatch) in sendBatch calls of ${batch}, one at a time, to a new ${partitions}-partition topic; kafkajs producer as the relay's: idempotent, acks=-1, maxInFlightRequests 1, murmur2 partitioner.`,
    );
  } finally {
    await producer.disconnect().catch(() => {});
    await admin.deleteTopics({ topics: [topic] }).catch(() => {});
    await admin.disconnect();
  }
}

const COLUMNS = `id, tenant, channel, user_id, status, spec, priority, labels, idempotency_key, request_hash,
  correlation_id, local_time, deliver_at, max_attempts, last_sequence, created_at, updated_at`;

/** Single-row INSERTs (one transaction each) and 256-row INSERTs via unnest into Herald's own schema. */
async function postgresCeiling(ctx: ScenarioContext, out: Out): Promise<void> {
  const seconds = ctx.quick ? 2 : 10;
  const singleLevels = ctx.quick ? [1, 16] : [1, 4, 16, 64];
  const batchLevels = ctx.quick ? [1] : [1, 4];
  const rows = 256;
  const url = `${PG_URL}/herald_bench_ceil_${ctx.runId}`.toLowerCase();
  ctx.progress.step("PostgreSQL: scratch database");
  await ensureDatabase(url);
  const pool = new pg.Pool({ connectionString: url, max: Math.max(...singleLevels, ...batchLevels) });
  try {
    await migrate(pool);
    const spec = specBytes();
    const hash = randomBytes(32);
    const single = `INSERT INTO notifications (${COLUMNS})
      VALUES ($1, 'bench', 1, $2, 2, $3, 0, '{}', NULL, $4, $5, NULL, now(), 4, 1, now(), now())`;
    const oneRow = (i: number): unknown[] => [uuidv7(), `user-${i % 5000}`, spec, hash, uuidv7()];
    const manyRows = (i: number): unknown[] => notificationRowParams("bench", rows, i);

    const cases = [
      ...singleLevels.map((c) => ({ c, perStatement: 1, sql: single, params: oneRow, label: `PostgreSQL single-row INSERT, ${c} in flight` })),
      ...batchLevels.map((c) => ({ c, perStatement: rows, sql: INSERT_NOTIFICATION_ROWS, params: manyRows, label: `PostgreSQL ${rows}-row INSERT (unnest), ${c} in flight` })),
    ];
    for (const { c, perStatement, sql, params, label } of cases) {
      ctx.progress.step(`${label}: ${seconds}s`);
      const statementMs: number[] = [];
      const done: number[] = [];
      let i = 0;
      const t0 = performance.now();
      const end = t0 + seconds * 1000;
      await Promise.all(
        Array.from({ length: c }, async () => {
          while (performance.now() < end) {
            const start = performance.now();
            await pool.query(sql, params(i++));
            const t = performance.now();
            statementMs.push(t - start);
            for (let k = 0; k < perStatement; k++) done.push(t);
          }
        }),
      );
      const elapsed = (performance.now() - t0) / 1000;
      out.figures.push({
        name: label,
        throughput: { value: Math.round(done.length / elapsed), unit: "rows/s" },
        latency: summarize(statementMs),
        errors: 0,
        extra: { statements: statementMs.length, "rows/statement": perStatement, "latency is": "per statement" },
      });
      out.latencies.push({ name: `${label} (per statement)`, samplesMs: downsample(statementMs) });
      out.timeseries.push({ name: label, unit: "rows/s", points: perSecond(done, t0).filter(([s]) => s < Math.floor(elapsed)) });
    }
    const settings = await pool.query<{ name: string; setting: string }>(
      "SELECT name, setting FROM pg_settings WHERE name IN ('synchronous_commit', 'fsync', 'wal_sync_method', 'shared_buffers')",
    );
    const shown = settings.rows.map((r) => `${r.name}=${r.setting}`).join(", ");
    out.methods.push(
      `PostgreSQL: INSERTs into Herald's notifications table (same schema and indexes, migrations applied) in a scratch database, from node-postgres, ${seconds} s per case; autocommit, so every statement is its own transaction and fsync.`,
    );
    out.notes.push(
      `PostgreSQL ${shown}. The ceiling counts notification rows only; Herald's Create also writes a status event and an outbox row in the same transaction.`,
    );
  } finally {
    await pool.end();
    const admin = new pg.Client({ connectionString: `${PG_URL}/postgres` });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(new URL(url).pathname.slice(1))} WITH (FORCE)`);
    await admin.end();
  }
}
