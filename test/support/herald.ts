import { randomBytes } from "node:crypto";
import { loadConfig, type Config } from "../../src/config.js";
import { createLogger, type Logger } from "../../src/log.js";
import { openRuntime, type Runtime } from "../../src/roles/runtime.js";
import { startServerRole } from "../../src/roles/server.js";
import { startRelayRole } from "../../src/roles/relay.js";
import { startSchedulerRole } from "../../src/roles/scheduler.js";
import { startWorkerRole, type WorkerRole } from "../../src/roles/worker.js";
import { channelNames, type ChannelName } from "../../src/domain/channels.js";
import type { Provider } from "../../src/workers/providers/provider.js";
import { createHeraldClient, type HeraldClient } from "../../src/client/index.js";
import { createTestDatabase, type TestDatabase } from "./db.js";
import type { StatusFeed } from "../../src/feed/feed.js";
import type { Clock } from "../../src/clock.js";

export const KEY_A = "key-tenant-a-" + randomBytes(8).toString("hex");
export const KEY_B = "key-tenant-b-" + randomBytes(8).toString("hex");

/** A whole Herald in this process (server, relay, scheduler, workers) on its own database, topics and ports. */
export interface TestHerald {
  config: Config;
  rt: Runtime;
  db: TestDatabase;
  /** Set when the "worker" role runs. */
  workers?: WorkerRole;
  /** Set when the "server" role runs: this instance's status feed. */
  feed?: StatusFeed;
  /** The topic prefix (HERALD_TOPIC_PREFIX) of this deployment. */
  topicPrefix: string;
  grpcAddress: string;
  httpUrl: string;
  /** `${prefix}herald.email` etc. */
  topic(logical: string): string;
  client(apiKey?: string): HeraldClient;
  stop(): Promise<void>;
}

export async function startTestHerald(opts: {
  /** @defaultValue ["server", "relay", "scheduler"] */
  roles?: Array<"server" | "relay" | "scheduler" | "worker">;
  /** Providers for the worker role, e.g. in-process fakes; other channels use the env's (HERALD_EMAIL_PROVIDER...). */
  providers?: Partial<Record<ChannelName, Provider>>;
  /** Channels the worker role delivers. @defaultValue those in `providers`, or all */
  channels?: ChannelName[];
  env?: Record<string, string>;
  db?: TestDatabase;
  databaseUrl?: string;
  /** Share another Herald's topics (a second instance of the same deployment). */
  topicPrefix?: string;
  /** The API's clock (accept times, quiet hours), for a test that needs a given date. @defaultValue the system's */
  clock?: Clock;
  /** The root logger, for a test that reads what Herald logs. @defaultValue one at TEST_LOG_LEVEL (silent) */
  log?: Logger;
} = {}): Promise<TestHerald> {
  const db = opts.db ?? (await createTestDatabase());
  const prefix = opts.topicPrefix ?? `t${randomBytes(5).toString("hex")}.`;
  const config = loadConfig(
    {
      HERALD_GRPC_ADDR: "127.0.0.1:0",
      HERALD_HTTP_ADDR: "127.0.0.1:0",
      DATABASE_URL: opts.databaseUrl ?? db.url,
      HERALD_TOPIC_PREFIX: prefix,
      HERALD_TOPIC_PARTITIONS: "3",
      HERALD_API_KEYS: `tenant-a:${KEY_A},tenant-b:${KEY_B}`,
      HERALD_SCHEDULER_POLL_MS: "100",
      // Admission by event-loop lag measures this process's loop, which also runs the test's
      // clients and stand-ins: on a busy machine it lags for reasons that are not Herald's and
      // refused unrelated tests' Creates. Tests of that refusal set it (src/server/admission.ts
      // has its own tests); the accept-queue refusals stay on.
      HERALD_ADMISSION_MAX_LAG_MS: "0",
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "silent",
      ...opts.env,
    },
    "production",
  );
  const log = opts.log ?? createLogger({ level: config.logLevel, role: "test" });
  const rt = await openRuntime(config, log);
  const roles = opts.roles ?? ["server", "relay", "scheduler"];
  let grpcAddress = "";
  let httpUrl = "";
  let feed: StatusFeed | undefined;
  if (roles.includes("server")) {
    const ports = await startServerRole(rt, { clock: opts.clock });
    feed = ports.feed;
    grpcAddress = `127.0.0.1:${ports.grpcPort}`;
    httpUrl = `http://127.0.0.1:${ports.httpPort}`;
  }
  if (roles.includes("relay")) await startRelayRole(rt);
  if (roles.includes("scheduler")) startSchedulerRole(rt);
  let workers: WorkerRole | undefined;
  if (roles.includes("worker")) {
    const given = Object.keys(opts.providers ?? {}) as ChannelName[];
    const channels = opts.channels ?? (given.length > 0 ? given : [...channelNames]);
    workers = await startWorkerRole(rt, { channels, providers: opts.providers });
  }
  const clients: HeraldClient[] = [];
  return {
    config,
    rt,
    db,
    workers,
    feed,
    topicPrefix: prefix,
    grpcAddress,
    httpUrl,
    topic: (logical) => prefix + logical,
    client(apiKey = KEY_A) {
      const c = createHeraldClient({ address: grpcAddress, apiKey });
      clients.push(c);
      return c;
    },
    async stop() {
      for (const c of clients) c.close();
      await rt.beginShutdown();
      if (!opts.db) await db.drop();
    },
  };
}
