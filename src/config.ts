import { parseApiKeys, type ApiKeyTable } from "./domain/api-keys.js";
import { parseCidrs } from "./domain/egress.js";
import { loadDeliveryConfig, type DeliveryConfig } from "./config-delivery.js";
import { loadReceiptsConfig, type ReceiptsConfig } from "./config-receipts.js";
import { loadUnsubscribeConfig, type UnsubscribeConfig } from "./config-unsubscribe.js";
import { loadQuotaConfig, type QuotaConfig } from "./config-quotas.js";
import { ConfigError, fileText, hostPort, int, list, type Env, type HostPort, type Mode } from "./config-env.js";

// Configuration is read from the environment once, here, and passed down.
// Nothing below the process entry reads process.env.

export interface Config {
  mode: Mode;
  logLevel: string;
  /** One info line per finished RPC on either listener (HERALD_ACCESS_LOG, on by default). */
  accessLog: boolean;
  grpcAddr: HostPort;
  httpAddr: HostPort;
  databaseUrl: string;
  redisUrl: string;
  kafka: {
    brokers: string[];
    clientId: string;
    /** Prefixed to every topic and consumer group name (isolates test runs). */
    topicPrefix: string;
    partitions: number;
    retentionMs: number;
    /** Replicas of each topic Herald creates; 0: the broker's default.replication.factor. */
    replication: number;
    /** The topics' min.insync.replicas (acks=all then needs this many copies); 0: the broker's default. */
    minInsyncReplicas: number;
    /** Every Herald consumer group (workers, status feed): how soon a dead member's partitions move. */
    group: ConsumerGroupConfig;
  };
  apiKeys: ApiKeyTable;
  /**
   * How often each API instance reloads the keys `herald keys` stores, besides on each change it is
   * notified of (keys/key-table.ts), and writes their last use.
   */
  apiKeyRefreshMs: number;
  corsOrigins: string[];
  /** Address ranges webhooks may reach besides the public internet (domain/egress.ts), e.g. 127.0.0.0/8. */
  webhookAllowCidrs: string[];
  /** Largest request message accepted on either listener, in bytes. */
  maxMessageBytes: number;
  /** HTTP/2 streams one client connection may have open, on either listener (src/server/http2-limits.ts). */
  maxStreamsPerConnection: number;
  /** Timeouts and connection caps of both listeners (README, "Connections and timeouts"). */
  connections: ConnectionsConfig;
  /** Concurrent grpc.health.v1 Health.Watch streams per instance. */
  healthWatchMaxStreams: number;
  /** How far ahead Schedule may go, in ms. */
  scheduleHorizonMs: number;
  /** PutTemplate's compile runs in a worker thread and is refused after this long (templates/compile-pool.ts). */
  templates: { compileTimeoutMs: number };
  /** The PostgreSQL pool of each process (store/db.ts DbOptions). */
  db: { poolMax: number; connectTimeoutMs: number; statementTimeoutMs: number; queryTimeoutMs: number };
  /** How long an idempotency key holds; 0 = for ever. */
  idempotencyTtlMs: number;
  /**
   * Group commit: flush when this many requests wait, or after maxDelayMs; maxInFlight transactions at once;
   * beyond maxQueued requests waiting, Create and Schedule answer RESOURCE_EXHAUSTED.
   */
  commit: { maxBatch: number; maxDelayMs: number; maxInFlight: number; maxQueued: number };
  /**
   * Fair share between tenants at delivery (HERALD_FAIR_DELIVERY, on by default): a worker's
   * in-flight and send slots go round robin between the tenants waiting (src/workers/slots.ts).
   */
  fairDelivery: boolean;
  /**
   * Whether SENDING is published to herald.status (HERALD_STREAM_SENDING, on by default). Off, a
   * claim still stores its SENDING event (history, GetStatus) but puts no record in the outbox:
   * watchers see QUEUED then the outcome, and each delivery costs one outbox row, one relay
   * publish and one Kafka record less (README, "Draining a backlog at full speed, and a lean status
   * stream").
   */
  streamSending: boolean;
  /** Per-tenant accept quotas (config-quotas.ts); off unless HERALD_TENANT_QUOTA(S) is set. */
  quotas: QuotaConfig;
  /** Event-loop lag beyond which Create and Schedule are refused at the door (src/server/admission.ts); 0: off. */
  admissionMaxLagMs: number;
  relay: { batchSize: number; pollMs: number };
  /** Priority lanes and the rate limits' reserve for PRIORITY_HIGH (README, "Priority"). */
  priority: PriorityConfig;
  scheduler: { batchSize: number; pollMs: number };
  /**
   * The retention purge (src/retention/, run by the scheduler role): terminal notifications whose
   * last change is older than retentionMs go with their events, outbox rows, dead letters and
   * receipts, batchSize per transaction, resting at least pauseMs between batches; retentionMs 0 keeps everything.
   */
  retention: { retentionMs: number; batchSize: number; pauseMs: number };
  /** Workers, providers, retries and rate limits. */
  delivery: DeliveryConfig;
  /** Provider callbacks: the public URL and SendGrid's event key (config-receipts.ts). */
  receipts: ReceiptsConfig;
  /** One-click unsubscribe links in emails of a category (config-unsubscribe.ts). */
  unsubscribe: UnsubscribeConfig;
  /** WatchStatus streams and the status feed behind them. */
  watch: WatchConfig;
  /** Where /healthz and /readyz are served for every role of the process (HERALD_HEALTH_PORT); null: nowhere but the API's HTTP listener. */
  healthAddr: HostPort | null;
}

export interface PriorityConfig {
  /** PRIORITY_HIGH Dispatches go to the channel's high lane (herald.<channel>.high); off: the main topic, behind the rest. */
  lanes: boolean;
  /** The share of each channel's rate limit that only PRIORITY_HIGH may use, in [0, 1); 0: none reserved. */
  highShare: number;
  /** How long a new normal or low record waits, at most, while high-priority ones are being handled (workers/high-first.ts); 0: no waiting. */
  yieldMs: number;
}

export interface ConsumerGroupConfig {
  /** The group drops a member it has not heard from for this long; its partitions move then. */
  sessionTimeoutMs: number;
  /** Longest time between two heartbeats; also how soon a live member hears of a rebalance. */
  heartbeatIntervalMs: number;
}

export interface ConnectionsConfig {
  /** An HTTP/1.1 request's headers must have arrived this long after it began. */
  headersTimeoutMs: number;
  /** An HTTP/1.1 request (headers and body) must have arrived this long after it began; 0: no limit. */
  requestTimeoutMs: number;
  /** A connection to the HTTP listener must send its first 4 bytes (which protocol) within this. */
  sniffTimeoutMs: number;
  /** An HTTP/2 connection (either listener) with no open stream for this long is closed with GOAWAY. */
  idleTimeoutMs: number;
  /** Connections open at once, both listeners together, and from one remote address. */
  maxConnections: number;
  maxConnectionsPerAddress: number;
}

export interface WatchConfig {
  /** Idle time before a stream gets a heartbeat. */
  heartbeatMs: number;
  /** Events a subscriber may fall behind before its stream ends RESOURCE_EXHAUSTED. */
  bufferLimit: number;
  /** Concurrent streams per API key, and per server instance. */
  maxStreamsPerKey: number;
  maxStreams: number;
  /** Newest feed events kept in memory for resumes (older cursors read PostgreSQL). */
  ringSize: number;
  /** How often the feed looks in PostgreSQL for positions Kafka has not brought. */
  pollMs: number;
  /** Notifications in a recipient or tenant snapshot, at most, and the default look-back. */
  snapshotLimit: number;
  snapshotWindowMs: number;
}

/** Reads and validates the configuration; throws ConfigError naming the variable on bad input. */
export function loadConfig(env: Env, mode: Mode): Config {
  const keySources: string[] = [];
  if (env.HERALD_API_KEYS) keySources.push(env.HERALD_API_KEYS);
  if (env.HERALD_API_KEYS_FILE) keySources.push(fileText("HERALD_API_KEYS_FILE", env.HERALD_API_KEYS_FILE));
  let apiKeys: ApiKeyTable;
  try {
    apiKeys = parseApiKeys(keySources.join("\n"), { devKey: mode === "dev" });
  } catch (err) {
    throw new ConfigError(`HERALD_API_KEYS: ${(err as Error).message}`);
  }
  return {
    mode,
    logLevel: env.LOG_LEVEL ?? "info",
    accessLog: onOff(env, "HERALD_ACCESS_LOG", true),
    grpcAddr: hostPort(env, "HERALD_GRPC_ADDR", "127.0.0.1:50051"),
    httpAddr: hostPort(env, "HERALD_HTTP_ADDR", "127.0.0.1:8080"),
    databaseUrl: databaseUrl(env),
    redisUrl: env.REDIS_URL ?? "redis://127.0.0.1:6379",
    kafka: {
      brokers: list(env, "KAFKA_BROKERS", ["127.0.0.1:9092"]),
      clientId: env.KAFKA_CLIENT_ID ?? "herald",
      topicPrefix: env.HERALD_TOPIC_PREFIX ?? "",
      partitions: int(env, "HERALD_TOPIC_PARTITIONS", 6, 1, 1000),
      retentionMs: int(env, "HERALD_TOPIC_RETENTION_MS", 7 * 24 * 3600 * 1000, 60_000),
      ...replication(env),
      group: consumerGroup(env),
    },
    apiKeys,
    // A lost notification is repaired within this; a reload reads a table of a few rows.
    apiKeyRefreshMs: int(env, "HERALD_API_KEY_REFRESH_MS", 30_000, 100, 3_600_000),
    corsOrigins: list(env, "HERALD_CORS_ORIGINS", mode === "dev" ? ["*"] : []),
    webhookAllowCidrs: cidrs(env, "HERALD_WEBHOOK_ALLOW_CIDRS", mode === "dev" ? ["127.0.0.0/8", "::1/128"] : []),
    maxMessageBytes: int(env, "HERALD_MAX_MESSAGE_BYTES", 1024 * 1024, 1024, 64 * 1024 * 1024),
    // A memory bound, well above what admission lets pile up (src/server/http2-limits.ts says why not lower).
    maxStreamsPerConnection: int(env, "HERALD_MAX_STREAMS_PER_CONNECTION", 10_000, 1, 1_000_000),
    connections: connectionsConfig(env),
    healthWatchMaxStreams: int(env, "HERALD_HEALTH_WATCH_MAX_STREAMS", 1000, 1, 1_000_000),
    scheduleHorizonMs: int(env, "HERALD_SCHEDULE_HORIZON_DAYS", 366, 1, 3650) * 24 * 3600 * 1000,
    templates: { compileTimeoutMs: int(env, "HERALD_TEMPLATE_COMPILE_TIMEOUT_MS", 2000, 100, 60_000) },
    db: loadDbConfig(env),
    idempotencyTtlMs: int(env, "HERALD_IDEMPOTENCY_TTL_MS", 24 * 3600 * 1000, 0, 366 * 24 * 3600 * 1000),
    commit: commitConfig(env),
    admissionMaxLagMs: int(env, "HERALD_ADMISSION_MAX_LAG_MS", 50, 0, 10_000),
    quotas: loadQuotaConfig(env, new Set(apiKeys.values())),
    fairDelivery: onOff(env, "HERALD_FAIR_DELIVERY", true),
    streamSending: onOff(env, "HERALD_STREAM_SENDING", true),
    relay: {
      batchSize: int(env, "HERALD_RELAY_BATCH", 500, 1, 10_000),
      pollMs: int(env, "HERALD_RELAY_POLL_MS", 500, 10, 60_000),
    },
    priority: {
      lanes: onOff(env, "HERALD_PRIORITY_LANES", true),
      // Off by default: a deployment whose limit is sized for its normal traffic keeps all of it.
      highShare: share(env, "HERALD_RATE_LIMIT_HIGH_SHARE", 0),
      yieldMs: int(env, "HERALD_PRIORITY_YIELD_MS", 100, 0, 10_000),
    },
    scheduler: {
      batchSize: int(env, "HERALD_SCHEDULER_BATCH", 1000, 1, 100_000),
      pollMs: int(env, "HERALD_SCHEDULER_POLL_MS", 200, 10, 60_000),
    },
    retention: {
      // 30 days: longer than any provider's receipt arrives, and than an operator takes to redrive.
      retentionMs: int(env, "HERALD_RETENTION_DAYS", 30, 0, 3650) * 24 * 3600 * 1000,
      batchSize: int(env, "HERALD_RETENTION_BATCH", 500, 1, 10_000),
      pauseMs: int(env, "HERALD_RETENTION_PAUSE_MS", 100, 0, 60_000),
    },
    delivery: loadDeliveryConfig(env, mode),
    receipts: loadReceiptsConfig(env),
    unsubscribe: loadUnsubscribeConfig(env),
    watch: {
      heartbeatMs: int(env, "HERALD_WATCH_HEARTBEAT_MS", 15_000, 100, 300_000),
      bufferLimit: int(env, "HERALD_WATCH_BUFFER", 1000, 1, 1_000_000),
      maxStreamsPerKey: int(env, "HERALD_WATCH_MAX_STREAMS_PER_KEY", 2000, 1, 1_000_000),
      maxStreams: int(env, "HERALD_WATCH_MAX_STREAMS", 20_000, 1, 1_000_000),
      ringSize: int(env, "HERALD_WATCH_RING", 10_000, 0, 10_000_000),
      pollMs: int(env, "HERALD_WATCH_POLL_MS", 1000, 10, 60_000),
      snapshotLimit: int(env, "HERALD_WATCH_SNAPSHOT_LIMIT", 1000, 1, 100_000),
      snapshotWindowMs: int(env, "HERALD_WATCH_SNAPSHOT_HOURS", 24, 1, 24 * 366) * 3600 * 1000,
    },
    healthAddr: healthAddr(env),
  };
}

// Defaults: a partition (packets dropped, not refused) must turn every API call into UNAVAILABLE
// within 2 s. A query the server does not answer fails after the query timeout (1.5 s); a
// checkout, connecting or waiting for a busy pool, after the connect timeout (1 s). The server's
// statement timeout is shorter than the query timeout, so a database that is there but slow
// cancels the statement itself and the connection is kept. Pools: five roles x 10 is half of
// PostgreSQL's default max_connections (100), leaving room for a second API instance and psql.
function loadDbConfig(env: Env): Config["db"] {
  const db = {
    poolMax: int(env, "HERALD_DB_POOL_MAX", 10, 1, 1000),
    connectTimeoutMs: int(env, "HERALD_DB_CONNECT_TIMEOUT_MS", 1000, 1, 600_000),
    statementTimeoutMs: int(env, "HERALD_DB_STATEMENT_TIMEOUT_MS", 1000, 0, 3_600_000),
    queryTimeoutMs: int(env, "HERALD_DB_QUERY_TIMEOUT_MS", 1500, 0, 3_600_000),
  };
  if (db.queryTimeoutMs > 0 && db.statementTimeoutMs >= db.queryTimeoutMs) {
    throw new ConfigError(
      "HERALD_DB_STATEMENT_TIMEOUT_MS must be shorter than HERALD_DB_QUERY_TIMEOUT_MS (or the query timeout 0), so a slow database answers before its connection is given up",
    );
  }
  return db;
}

/**
 * DATABASE_URL, checked here because a role waits while PostgreSQL is unreachable: a URL it
 * could never connect with (ensureDatabase needs a URL naming the database) must stop it now.
 */
export function databaseUrl(env: Env): string {
  const raw = env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/herald";
  let named = false;
  try {
    const u = new URL(raw);
    named = (u.protocol === "postgres:" || u.protocol === "postgresql:") && u.pathname.length > 1;
  } catch {
    // not a URL: reported below, without echoing it (it may hold a password)
  }
  if (!named) throw new ConfigError("DATABASE_URL: expected postgres://user@host:port/database");
  return raw;
}

/**
 * HERALD_HEALTH_PORT: a port, on every interface (a supervisor's probes come from outside the
 * container), or host:port; 0 takes any free port. Unset or empty: no health port.
 */
function healthAddr(env: Env): HostPort | null {
  const raw = env.HERALD_HEALTH_PORT;
  if (raw === undefined || raw === "") return null;
  if (/^\d+$/.test(raw)) return { host: "0.0.0.0", port: int(env, "HERALD_HEALTH_PORT", 0, 0, 65535) };
  return hostPort(env, "HERALD_HEALTH_PORT", raw);
}

// Fast takeover (README, "Operating Herald: faults and overload"). kafkajs' 30 s session kept a
// crashed worker's partitions, and after a broker restart the whole group (whose old members the
// coordinator reloads), frozen for 30 s. 6 s is the lowest session a stock broker accepts
// (group.min.session.timeout.ms); scripts/kafka.sh lowers that floor for tests and the soak.
// A heartbeat beyond a third of the session would let two lost heartbeats drop a live member.
function consumerGroup(env: Env): ConsumerGroupConfig {
  const sessionTimeoutMs = int(env, "HERALD_KAFKA_SESSION_TIMEOUT_MS", 6000, 1000, 1_800_000);
  const third = Math.floor(sessionTimeoutMs / 3);
  return { sessionTimeoutMs, heartbeatIntervalMs: int(env, "HERALD_KAFKA_HEARTBEAT_MS", Math.min(1000, third), 100, third) };
}

// Connection hygiene (README, "Connections and timeouts"). Headers 10 s: a real client sends a
// request's headers in one packet, so 10 s is slack for a lossy mobile link, while a slow-loris
// socket is freed within it. Request 30 s: bodies are at most HERALD_MAX_MESSAGE_BYTES (1 MB).
// Sniff 5 s: a client sends its first bytes as soon as it connects. Idle 5 min: longer than any
// client's own keep-alive habits (grpc-js keeps a channel 30 min, browsers far less), so an idle
// HTTP/2 connection is freed without making busy clients reconnect. Caps: 10,000 connections
// (both listeners) stays well under the usual 65,536 descriptors and leaves room for PostgreSQL,
// Kafka and Redis sockets; 256 from one address serves a NAT gateway or a busy service mesh
// sidecar, while one host alone cannot take the whole budget.
function connectionsConfig(env: Env): ConnectionsConfig {
  const headersTimeoutMs = int(env, "HERALD_HEADERS_TIMEOUT_MS", 10_000, 100, 600_000);
  const requestTimeoutMs = int(env, "HERALD_REQUEST_TIMEOUT_MS", 30_000, 0, 3_600_000);
  if (requestTimeoutMs > 0 && requestTimeoutMs < headersTimeoutMs) {
    throw new ConfigError("HERALD_REQUEST_TIMEOUT_MS must be at least HERALD_HEADERS_TIMEOUT_MS (or 0): a request's headers are part of it");
  }
  const maxConnections = int(env, "HERALD_MAX_CONNECTIONS", 10_000, 1, 1_000_000);
  return {
    headersTimeoutMs,
    requestTimeoutMs,
    sniffTimeoutMs: int(env, "HERALD_SNIFF_TIMEOUT_MS", 5000, 100, 600_000),
    idleTimeoutMs: int(env, "HERALD_IDLE_TIMEOUT_MS", 300_000, 100, 86_400_000),
    maxConnections,
    maxConnectionsPerAddress: Math.min(maxConnections, int(env, "HERALD_MAX_CONNECTIONS_PER_ADDRESS", 256, 1, 1_000_000)),
  };
}

function commitConfig(env: Env): Config["commit"] {
  const maxBatch = int(env, "HERALD_COMMIT_MAX_BATCH", 256, 1, 10_000);
  const maxInFlight = int(env, "HERALD_COMMIT_MAX_IN_FLIGHT", 2, 1, 16);
  return {
    maxBatch,
    maxDelayMs: int(env, "HERALD_COMMIT_MAX_DELAY_MS", 2, 0, 1000),
    maxInFlight,
    // Admission control. Default: two rounds of full flushes waiting behind the ones running,
    // so the last in line waits about three commits (tens of ms, under a second even when
    // PostgreSQL is slow), far below any client's deadline: a longer queue only turns
    // overload into timeouts (README, "Operating Herald: faults and overload").
    maxQueued: int(env, "HERALD_ACCEPT_QUEUE_MAX", 2 * maxBatch * maxInFlight, 1, 1_000_000),
  };
}

/** `on` or `off` (any case); unset: `fallback`. */
function onOff(env: Env, name: string, fallback: boolean): boolean {
  const value = env[name]?.trim().toLowerCase();
  if (value === undefined || value === "") return fallback;
  if (value === "on") return true;
  if (value === "off") return false;
  throw new ConfigError(`${name}: expected "on" or "off", got "${env[name]}"`);
}

/** A fraction in [0, 1): a share that may be none, never all. */
function share(env: Env, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === "") return fallback;
  const n = Number(raw);
  if (!(n >= 0 && n < 1)) throw new ConfigError(`${name}: expected a number in [0, 1), got "${raw}"`);
  return n;
}

/** A list of CIDR ranges; `dev` lets webhooks reach this machine, as local development needs. */
function cidrs(env: Env, name: string, fallback: string[]): string[] {
  const entries = list(env, name, fallback);
  try {
    parseCidrs(entries);
  } catch (err) {
    throw new ConfigError(`${name}: ${(err as Error).message}`);
  }
  return entries;
}

// A topic whose min.insync.replicas exceeds its replicas accepts no acks=all write at all: every
// publish would fail with NOT_ENOUGH_REPLICAS, so the pair is refused here rather than there.
function replication(env: Env): { replication: number; minInsyncReplicas: number } {
  const replication = int(env, "HERALD_TOPIC_REPLICATION", 0, 0, 32);
  const minInsyncReplicas = int(env, "HERALD_TOPIC_MIN_INSYNC_REPLICAS", 0, 0, 32);
  if (replication > 0 && minInsyncReplicas > replication) {
    throw new ConfigError(
      `HERALD_TOPIC_MIN_INSYNC_REPLICAS: ${minInsyncReplicas} exceeds HERALD_TOPIC_REPLICATION (${replication}); no write could ever be acknowledged`,
    );
  }
  return { replication, minInsyncReplicas };
}
