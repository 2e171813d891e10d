import pg from "pg";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { ensureDatabase } from "../../src/store/db.js";
import { startChild, type Child } from "../processes.js";
import type { ProviderSettings } from "../lib/slow-provider.js";

// The two alternatives as real processes, each on names unique to the run (a database; a BullMQ
// queue and key prefix), removed again by stop().

const entry = (name: string) => new URL(`./${name}.js`, import.meta.url).pathname;

const providerEnv = (p: ProviderSettings) => ({ TWILIO_BASE_URL: p.baseUrl, TWILIO_ACCOUNT_SID: p.accountSid, TWILIO_AUTH_TOKEN: p.authToken, SMS_FROM: p.from });

export interface SyncSystem {
  /** http://127.0.0.1:<port>/notify */
  url: string;
  /** Its process id by role, for CPU readings. */
  processes(): Record<string, number>;
  stop(): Promise<void>;
}

/** The synchronous endpoint (sync-server.ts) on its own database. */
export async function startSync(runId: string, provider: ProviderSettings): Promise<SyncSystem> {
  const name = `herald_bench_sync_${runId}`.toLowerCase().replace(/[^a-z0-9_]/g, "");
  const databaseUrl = `${process.env.BENCH_PG_URL ?? "postgres://postgres@127.0.0.1:5432"}/${name}`;
  await ensureDatabase(databaseUrl);
  const dropDatabase = async () => {
    const admin = new pg.Client({ connectionString: databaseUrl.replace(/\/[^/]+$/, "/postgres") });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
    await admin.end();
  };
  let server: Child & { line: string };
  try {
    server = await startChild([entry("sync-server")], { PORT: "0", DATABASE_URL: databaseUrl, ...providerEnv(provider) }, /^listening \d+/);
  } catch (err) {
    await dropDatabase();
    throw err;
  }
  return {
    url: `http://127.0.0.1:${server.line.split(" ")[1]}/notify`,
    processes: () => ({ server: server.proc.pid! }),
    async stop() {
      await server.stop();
      await dropDatabase();
    },
  };
}

export interface BullmqSystem {
  /** http://127.0.0.1:<port>/notify of the producer API. */
  url: string;
  /** Starts one worker process with `concurrency` jobs in flight. */
  startWorker(concurrency: number): Promise<Child>;
  /** Removes every waiting job (after an enqueue-only measurement). */
  drain(): Promise<void>;
  /** Process ids of the producer and the workers by role, for CPU readings. */
  processes(): Record<string, number>;
  /** Jobs waiting, active or delayed. */
  pending(): Promise<number>;
  /** Stops the processes and obliterates the queue. */
  stop(): Promise<void>;
}

/** BullMQ's producer API (bullmq-producer.ts) on a queue and prefix unique to the run; workers on demand. */
export async function startBullmq(runId: string, provider: ProviderSettings): Promise<BullmqSystem> {
  const redisUrl = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
  const env = { REDIS_URL: redisUrl, BULLMQ_QUEUE: `sms-${runId}`, BULLMQ_PREFIX: `herald-bench-bull-${runId}`, ...providerEnv(provider) };
  const connection = new Redis(redisUrl);
  const queue = new Queue(env.BULLMQ_QUEUE, { connection, prefix: env.BULLMQ_PREFIX });
  const children: Child[] = [];
  const stop = async () => {
    for (const c of children.reverse()) await c.stop();
    await queue.obliterate({ force: true });
    await queue.close();
    await connection.quit();
  };
  try {
    const producer = await startChild([entry("bullmq-producer")], { PORT: "0", ...env }, /^listening \d+/);
    children.push(producer);
    return {
      url: `http://127.0.0.1:${producer.line.split(" ")[1]}/notify`,
      async startWorker(concurrency) {
        const worker = await startChild([entry("bullmq-worker")], { ...env, BULLMQ_CONCURRENCY: String(concurrency) }, /^bullmq worker started/);
        children.push(worker);
        return worker;
      },
      drain: () => queue.drain(true),
      processes: () => Object.fromEntries(children.map((c, i) => [i === 0 ? "producer" : `worker${i > 1 ? i : ""}`, c.proc.pid!])),
      async pending() {
        const c = await queue.getJobCounts("waiting", "active", "delayed", "prioritized");
        return Object.values(c).reduce((s, n) => s + n, 0);
      },
      stop,
    };
  } catch (err) {
    await stop().catch(() => {});
    throw err;
  }
}
