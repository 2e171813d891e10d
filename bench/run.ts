import { mkdir, writeFile } from "node:fs/promises";
import { cpus, hostname, totalmem } from "node:os";
import { randomBytes } from "node:crypto";
import { create, toBinary } from "@bufbuild/protobuf";
import pg from "pg";
import { CreateRequestSchema } from "../gen/herald/v1/notification_service_pb.js";
import { Channel } from "../gen/herald/v1/notification_pb.js";
import { ensureDatabase } from "../src/store/db.js";
import { closedLoop, type LoadResult } from "./load.js";
import { startChild } from "./processes.js";

// `npm run bench [-- --quick]`: Create over grpc-js against the no-op grpc-js
// ceiling, measured in the same run on the same machine. Every Create counted
// is committed in PostgreSQL; the run ends only when the relay has published
// all of them to Kafka.

const quick = process.argv.includes("--quick");
const seconds = quick ? 3 : 10;
const levels = quick ? [1, 50] : [1, 10, 50, 200];
const cli = new URL("../src/cli.js", import.meta.url).pathname;
const noop = new URL("./noop-grpc-server.js", import.meta.url).pathname;

const apiKey = randomBytes(16).toString("hex");
const dbName = `herald_bench_${Date.now().toString(36)}`;
const databaseUrl = `${process.env.BENCH_PG_URL ?? "postgres://postgres@127.0.0.1:5432"}/${dbName}`;
const env = {
  DATABASE_URL: databaseUrl,
  HERALD_API_KEYS: `bench:${apiKey}`,
  HERALD_TOPIC_PREFIX: `bench${Date.now().toString(36)}.`,
  HERALD_GRPC_ADDR: "127.0.0.1:50151",
  HERALD_HTTP_ADDR: "127.0.0.1:50180",
  LOG_LEVEL: "info",
};

function createBody(i: number): Buffer {
  return Buffer.from(
    toBinary(
      CreateRequestSchema,
      create(CreateRequestSchema, {
        notification: {
          channel: Channel.EMAIL,
          recipient: { userId: `user-${i % 5000}`, address: { case: "email", value: `user${i}@example.com` } },
          body: { case: "content", value: { subject: "Your receipt", text: "Thanks for your order." } },
        },
      }),
    ),
  );
}

function row(name: string, r: LoadResult, ceiling?: LoadResult): string {
  const ratio = ceiling ? `${((100 * r.rps) / ceiling.rps).toFixed(1)}%` : "";
  return `| ${name} | ${r.concurrency} | ${r.rps} | ${r.p50} | ${r.p95} | ${r.p99} | ${r.errors} | ${ratio} |`;
}

async function main(): Promise<void> {
  const machine = { cores: cpus().length, cpu: cpus()[0]?.model, memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version };
  console.log(`machine: ${JSON.stringify(machine)}; ${seconds}s per level${quick ? " (quick)" : ""}`);

  const noopServer = await startChild([noop, "50152"], {}, /listening/);
  const ceilings: LoadResult[] = [];
  for (const c of levels) {
    const r = await closedLoop({ address: "127.0.0.1:50152", path: "/bench.Noop/Noop", body: () => Buffer.alloc(0), concurrency: c, seconds });
    ceilings.push(r);
    console.log(`noop grpc-js   c=${c}: ${r.rps} req/s p99 ${r.p99} ms`);
  }
  await noopServer.stop();

  await ensureDatabase(databaseUrl);
  const server = await startChild([cli, "server"], env, /herald server listening/);
  const relay = await startChild([cli, "relay"], env, /herald relay started/);
  const creates: LoadResult[] = [];
  let offset = 0;
  for (const c of levels) {
    const base = offset;
    const r = await closedLoop({
      address: env.HERALD_GRPC_ADDR,
      path: "/herald.v1.NotificationService/Create",
      body: (i) => createBody(base + i),
      metadata: { authorization: `Bearer ${apiKey}` },
      concurrency: c,
      seconds,
    });
    offset += 10_000_000;
    creates.push(r);
    console.log(`herald Create  c=${c}: ${r.rps} req/s p99 ${r.p99} ms (${r.errors} errors)`);
  }

  // Everything answered OK must be committed and, soon after, published.
  const pool = new pg.Pool({ connectionString: databaseUrl });
  const deadline = Date.now() + 120_000;
  let unpublished = -1;
  while (Date.now() < deadline) {
    unpublished = Number((await pool.query<{ n: string }>("SELECT count(*) AS n FROM outbox WHERE published_at IS NULL")).rows[0]!.n);
    if (unpublished === 0) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  const stored = Number((await pool.query<{ n: string }>("SELECT count(*) AS n FROM notifications")).rows[0]!.n);
  await pool.end();
  await relay.stop();
  await server.stop();

  const table = [
    "| scenario | in flight | req/s | p50 ms | p95 ms | p99 ms | errors | of ceiling |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ...levels.map((_, i) => row("no-op grpc-js (ceiling)", ceilings[i]!)),
    ...levels.map((_, i) => row("Create over grpc-js", creates[i]!, ceilings[i])),
  ].join("\n");
  console.log(`\n${table}\n\nstored notifications: ${stored}; unpublished outbox rows at the end: ${unpublished}`);

  const date = new Date().toISOString().slice(0, 10);
  await mkdir("bench/results", { recursive: true });
  await writeFile(
    `bench/results/${date}-${hostname()}.json`,
    JSON.stringify({ date: new Date().toISOString(), machine, quick, seconds, ceilings, creates, stored, unpublished }, null, 2),
  );
  const admin = new pg.Client({ connectionString: databaseUrl.replace(`/${dbName}`, "/postgres") });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  await admin.end();
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
