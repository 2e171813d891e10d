import { createServer } from "node:net";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import pg from "pg";
import { ensureDatabase } from "../../src/store/db.js";
import { startChild, type Child } from "../processes.js";

// Herald as real processes for a benchmark, on its own database, topic prefix and ports, so
// scenarios never see each other's data. Every role is `node dist/src/cli.js <role>`, exactly
// what an operator runs. stop() ends the processes and drops the database.

const cli = new URL("../../src/cli.js", import.meta.url).pathname;

/** A role process; `dev` is every role in one process (`herald dev`). */
export type Role = "server" | "relay" | "scheduler" | "dev" | `worker:${string}`;

export interface Stack {
  /** host:port of the gRPC listener (when a server runs). */
  grpcAddress: string;
  /** http://host:port of the HTTP (Connect) listener. */
  httpUrl: string;
  apiKey: string;
  databaseUrl: string;
  /** The environment every role got (add to it for more roles). */
  env: Record<string, string>;
  pool: pg.Pool;
  /** Starts one more role process (e.g. a second worker); returns it. */
  start(role: Role, extraEnv?: Record<string, string>): Promise<Child>;
  /** The pid of the first process of a role, for /proc readings. */
  pid(role: Role): number | undefined;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const address = server.address();
  await new Promise((r) => server.close(r));
  if (typeof address !== "object" || !address) throw new Error("no port");
  return address.port;
}

const READY: Record<string, RegExp> = {
  server: /herald server listening/,
  relay: /herald relay started/,
  scheduler: /herald scheduler started/,
  worker: /herald worker started/,
  dev: /herald dev started/,
};

/**
 * Starts the given roles in order (`worker:sms` is `herald worker --channel sms`).
 * Channels default to the local sink provider, writing into a temporary folder.
 */
export async function startStack(opts: { name: string; roles: Role[]; env?: Record<string, string> }): Promise<Stack> {
  const tag = `${opts.name}${Date.now().toString(36)}${randomBytes(2).toString("hex")}`.toLowerCase().replace(/[^a-z0-9]/g, "");
  const apiKey = randomBytes(16).toString("hex");
  const databaseUrl = `${process.env.BENCH_PG_URL ?? "postgres://postgres@127.0.0.1:5432"}/herald_bench_${tag}`;
  const sinkDir = await mkdtemp(join(tmpdir(), "herald-bench-sink-"));
  const [grpcPort, httpPort] = [await freePort(), await freePort()];
  const env: Record<string, string> = {
    DATABASE_URL: databaseUrl,
    HERALD_API_KEYS: `bench:${apiKey}`,
    HERALD_TOPIC_PREFIX: `bench${tag}.`,
    HERALD_GRPC_ADDR: `127.0.0.1:${grpcPort}`,
    HERALD_HTTP_ADDR: `127.0.0.1:${httpPort}`,
    HERALD_EMAIL_PROVIDER: "sink",
    HERALD_SMS_PROVIDER: "sink",
    HERALD_PUSH_PROVIDER: "sink",
    HERALD_WEBHOOK_PROVIDER: "sink",
    HERALD_SINK_DIR: sinkDir,
    LOG_LEVEL: "info",
    // A line per RPC would make the scenarios measure the log pipe as much as Herald; the access
    // log's own cost is measured by running the bench with HERALD_ACCESS_LOG=on (README, Metrics).
    HERALD_ACCESS_LOG: process.env.HERALD_ACCESS_LOG ?? "off",
    ...opts.env,
  };
  await ensureDatabase(databaseUrl);
  const children: Array<{ role: Role; child: Child }> = [];
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 4 });
  const stack: Stack = {
    grpcAddress: env.HERALD_GRPC_ADDR!,
    httpUrl: `http://${env.HERALD_HTTP_ADDR!}`,
    apiKey,
    databaseUrl,
    env,
    pool,
    async start(role, extraEnv = {}) {
      const [kind, channel] = role.split(":") as [string, string | undefined];
      const args = kind === "worker" ? [cli, "worker", "--channel", channel ?? "all"] : [cli, kind];
      const child = await startChild(args, { ...env, ...extraEnv }, READY[kind]!);
      children.push({ role, child });
      return child;
    },
    pid: (role) => children.find((c) => c.role === role)?.child.proc.pid,
    async stop() {
      for (const { child } of children.reverse()) await child.stop();
      await pool.end();
      const admin = new pg.Client({ connectionString: databaseUrl.replace(/\/[^/]+$/, "/postgres") });
      await admin.connect();
      await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(new URL(databaseUrl).pathname.slice(1))} WITH (FORCE)`);
      await admin.end();
      await rm(sinkDir, { recursive: true, force: true });
    },
  };
  try {
    for (const role of opts.roles) await stack.start(role);
  } catch (err) {
    await stack.stop().catch(() => {});
    throw err;
  }
  return stack;
}

/** Resident memory of a process in MiB (Linux /proc). */
/** Outbox rows the relay has not published yet (0: Kafka has acknowledged everything committed). */
export async function unpublished(stack: Pick<Stack, "pool">): Promise<number> {
  const { rows } = await stack.pool.query<{ n: number }>("SELECT count(*)::int AS n FROM outbox WHERE published_at IS NULL");
  return rows[0]!.n;
}

export async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN) / 1024;
}
