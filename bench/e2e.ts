import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import pg from "pg";
import { create } from "@bufbuild/protobuf";
import { NotificationSpecSchema, Channel, Status } from "../gen/herald/v1/notification_pb.js";
import { createHeraldClient } from "../src/client/index.js";
import { ensureDatabase } from "../src/store/db.js";
import { startChild, type Child } from "./processes.js";

// End to end with the local sink: Create → SENT latency at a fixed offered
// rate, and sustained deliveries/s with two worker processes draining a
// backlog. Usage: node dist/bench/e2e.js [--rate 200] [--seconds 10] [--backlog 5000]

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const rate = arg("rate", 200);
const seconds = arg("seconds", 10);
const backlog = arg("backlog", 5000);
const cli = new URL("../src/cli.js", import.meta.url).pathname;

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}

async function main(): Promise<void> {
  const apiKey = randomBytes(16).toString("hex");
  const dbName = `herald_bench_e2e_${Date.now().toString(36)}`;
  const databaseUrl = `${process.env.BENCH_PG_URL ?? "postgres://postgres@127.0.0.1:5432"}/${dbName}`;
  const sinkDir = await mkdtemp(join(tmpdir(), "herald-bench-sink-"));
  const env = {
    DATABASE_URL: databaseUrl,
    HERALD_API_KEYS: `bench:${apiKey}`,
    HERALD_TOPIC_PREFIX: `benche2e${Date.now().toString(36)}.`,
    HERALD_GRPC_ADDR: "127.0.0.1:50251",
    HERALD_HTTP_ADDR: "127.0.0.1:50280",
    HERALD_EMAIL_PROVIDER: "sink",
    HERALD_SINK_DIR: sinkDir,
    LOG_LEVEL: "info",
  };
  await ensureDatabase(databaseUrl);
  const children: Child[] = [];
  const start = async (role: string[], ready: RegExp) => {
    const c = await startChild([cli, ...role], env, ready);
    children.push(c);
    return c;
  };
  const pool = new pg.Pool({ connectionString: databaseUrl });
  const client = createHeraldClient({ address: env.HERALD_GRPC_ADDR, apiKey });
  const spec = (i: number) =>
    create(NotificationSpecSchema, {
      channel: Channel.EMAIL,
      recipient: { userId: `user-${i % 1000}`, address: { case: "email", value: `user${i}@example.com` } },
      body: { case: "content", value: { subject: "Your receipt", text: "Thanks for your order." } },
    });
  try {
    await start(["server"], /herald server listening/);
    await start(["relay"], /herald relay started/);
    await start(["scheduler"], /herald scheduler started/);
    const worker1 = await start(["worker", "--channel", "email"], /herald worker started/);

    // 1. Fixed offered rate (open loop): a Create every 1/rate s, whatever the answers do.
    const ids: string[] = [];
    let errors = 0;
    const inFlight: Promise<void>[] = [];
    const t0 = performance.now();
    for (let i = 0; i < rate * seconds; i++) {
      const due = t0 + (i * 1000) / rate;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      inFlight.push(
        client.create({ notification: spec(i) }).then(
          (res) => void ids.push(res.notification!.id),
          () => void errors++,
        ),
      );
    }
    await Promise.all(inFlight);
    const offered = (rate * seconds) / ((performance.now() - t0) / 1000);
    await waitAllSent(pool, ids.length, 120_000);
    const lat = await pool.query<{ ms: number }>(
      `SELECT extract(epoch FROM (e.created_at - n.created_at)) * 1000 AS ms
       FROM notifications n JOIN status_events e ON e.notification_id = n.id AND e.status = $1`,
      [Status.SENT],
    );
    const sorted = lat.rows.map((r) => Number(r.ms)).sort((a, b) => a - b);
    console.log(
      `Create→SENT at ${Math.round(offered)}/s offered for ${seconds}s (sink, 1 worker): n=${sorted.length} errors=${errors} ` +
        `p50=${quantile(sorted, 0.5).toFixed(1)}ms p99=${quantile(sorted, 0.99).toFixed(1)}ms max=${sorted.at(-1)?.toFixed(1)}ms`,
    );

    // 2. Backlog drained by two worker processes.
    await worker1.stop();
    children.splice(children.indexOf(worker1), 1);
    const before = Number((await pool.query<{ n: string }>("SELECT count(*) AS n FROM notifications")).rows[0]!.n);
    const batch: Promise<unknown>[] = [];
    for (let i = 0; i < backlog; i++) {
      batch.push(client.create({ notification: spec(1_000_000 + i) }));
      if (batch.length >= 200) await Promise.all(batch.splice(0));
    }
    await Promise.all(batch);
    const tStart = performance.now();
    await Promise.all([start(["worker", "--channel", "email"], /herald worker started/), start(["worker", "--channel", "email"], /herald worker started/)]);
    await waitAllSent(pool, before + backlog, 300_000);
    const secs = (performance.now() - tStart) / 1000;
    console.log(`two workers drained ${backlog} notifications in ${secs.toFixed(1)}s: ${Math.round(backlog / secs)} deliveries/s (incl. worker start and group join)`);
  } finally {
    client.close();
    for (const c of children.reverse()) await c.stop();
    await pool.end();
    const admin = new pg.Client({ connectionString: databaseUrl.replace(`/${dbName}`, "/postgres") });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    await admin.end();
    await rm(sinkDir, { recursive: true, force: true });
  }
}

async function waitAllSent(pool: pg.Pool, expected: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const n = Number((await pool.query<{ n: string }>("SELECT count(*) AS n FROM notifications WHERE status = $1", [Status.SENT])).rows[0]!.n);
    if (n >= expected) return;
    if (Date.now() > deadline) throw new Error(`only ${n} of ${expected} SENT after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
