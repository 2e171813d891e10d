import { createHeraldClient, type HeraldClient } from "../src/client/index.js";
import { twilioCredentials, twilioEnv } from "../test/e2e/support.js";
import { createTestDatabase, type TestDatabase } from "../test/support/db.js";
import { startPrivateBroker, type PrivateBroker } from "../test/support/private-broker.js";
import { heraldSite, spawnHerald, type HeraldProcess, type HeraldSite, type Role } from "../test/support/processes.js";
import { startPrivateRedis, type PrivateRedis } from "../test/support/redis-server.js";
import { startTwilioStandIn, type TwilioStandIn } from "../test/support/stand-ins/twilio.js";
import { startTcpProxy, type TcpProxy } from "../test/support/tcp-proxy.js";

// Everything the soak runs and breaks: a database of its own reached by every role through a
// TCP proxy that can refuse or blackhole it, a Kafka broker and a redis-server of its own (so
// stopping them disturbs nobody else), the Twilio stand-in as the SMS provider, and each role
// as its own process: server, relay, scheduler and two SMS workers.

/** The soak's processes by name; a worker's name says which of the two it is. */
export type Member = "server" | "relay" | "scheduler" | "worker-1" | "worker-2";
export const MEMBERS: readonly Member[] = ["server", "relay", "scheduler", "worker-1", "worker-2"];

const roleOf = (m: Member): Role => (m.startsWith("worker") ? "worker" : (m as Role));
const argsOf = (m: Member): string[] => (roleOf(m) === "worker" ? ["--channel", "sms"] : []);

export interface Stack {
  site: HeraldSite;
  /** The soak's database, reached directly (not through the proxy): for the proof. */
  db: TestDatabase;
  pgProxy: TcpProxy;
  broker: PrivateBroker;
  redis: PrivateRedis;
  standIn: TwilioStandIn;
  client: HeraldClient;
  /** The process running as `member` now. */
  current(member: Member): HeraldProcess;
  /** Every process started, killed ones included (for their logs). */
  all(): readonly HeraldProcess[];
  /** SIGKILLs `member` and starts a new one in its place; resolves once the kill is done (not the start). */
  kill(member: Member): Promise<HeraldProcess>;
  /** Resolves once `member`'s current process has logged that it started. */
  started(member: Member, timeoutMs?: number): Promise<void>;
  /** Stops everything (SIGTERM, then SIGKILL), drops the database. Idempotent. */
  stop(): Promise<void>;
}

export interface StackOptions {
  /** Environment of every role on top of the site's (fault settings, rate limit...). */
  env: Record<string, string>;
}

export async function startStack(opts: StackOptions): Promise<Stack> {
  const creds = twilioCredentials();
  const parts: Array<() => Promise<unknown>> = [];
  const cleanup = async () => {
    for (const undo of parts.reverse()) await undo().catch(() => {});
  };
  try {
    const [db, broker, redis, standIn] = await Promise.all([
      createTestDatabase("herald_chaos"),
      startPrivateBroker(),
      startPrivateRedis(),
      startTwilioStandIn(creds),
    ]);
    parts.push(() => db.drop(), () => broker.destroy(), () => redis.stop(), () => standIn.close());
    const direct = new URL(db.url);
    const pgProxy = await startTcpProxy({ host: direct.hostname, port: Number(direct.port || 5432) });
    parts.push(() => pgProxy.close());
    const viaProxy = new URL(db.url);
    viaProxy.port = String(pgProxy.port);
    const site = await heraldSite(viaProxy.toString());
    const env = site.env({
      KAFKA_BROKERS: broker.brokers.join(","),
      REDIS_URL: redis.url,
      ...twilioEnv(standIn, creds),
      ...opts.env,
    });

    const processes = new Map<Member, HeraldProcess>();
    const everyone: HeraldProcess[] = [];
    const spawn = (m: Member) => {
      const p = spawnHerald(roleOf(m), env, m, argsOf(m));
      processes.set(m, p);
      everyone.push(p);
      return p;
    };
    parts.push(() => Promise.all(everyone.map((p) => p.stop("SIGTERM", 15_000))));
    MEMBERS.forEach(spawn);
    const started = async (m: Member, timeoutMs = 120_000) => {
      const p = processes.get(m)!;
      await p.waitForLog(`herald ${p.role} started`, timeoutMs);
    };
    await Promise.all(MEMBERS.map((m) => started(m)));
    // A client that reconnects soon after the API comes back: grpc-js's default backoff grows to
    // two minutes, which would measure the client, not Herald.
    const client = createHeraldClient({
      address: site.grpcAddress,
      apiKey: site.apiKey,
      channelOptions: { "grpc.initial_reconnect_backoff_ms": 200, "grpc.max_reconnect_backoff_ms": 1000 },
    });
    parts.push(async () => client.close());

    let stopping: Promise<void> | undefined;
    return {
      site,
      db,
      pgProxy,
      broker,
      redis,
      standIn,
      client,
      current: (m) => processes.get(m)!,
      all: () => everyone,
      async kill(m) {
        await processes.get(m)!.stop("SIGKILL");
        return spawn(m);
      },
      started,
      stop: () => (stopping ??= cleanup()),
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}
