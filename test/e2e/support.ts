import { randomBytes } from "node:crypto";
import { Kafka, logLevel } from "kafkajs";
import type pg from "pg";
import { Channel, Status, createHeraldClient, type HeraldClient } from "../../src/client/index.js";
import { createTestDatabase } from "../support/db.js";
import { KEY_A, startTestHerald, type TestHerald } from "../support/herald.js";
import { heraldSite, outputTail, spawnHerald, type HeraldProcess } from "../support/processes.js";
import type { FcmStandIn } from "../support/stand-ins/fcm.js";
import type { SmtpStandIn } from "../support/stand-ins/smtp.js";
import type { TwilioStandIn } from "../support/stand-ins/twilio.js";
import { waitFor } from "../support/wait.js";

// The delivery path as deployed: every channel worker is a real `herald worker --channel …`
// process from dist/, and every provider is a local stand-in that speaks its protocol. API
// server, relay and scheduler run in the test process (startTestHerald: the real roles on a
// fresh database and topic prefix), or as processes too where timing at a stand-in matters.
// What the tests assert is what a user would see: rows and events in PostgreSQL, records on
// Kafka, requests at the provider.

export const TENANT = "tenant-a";
export const SMS_FROM = "+15005550006";
export const EMAIL_FROM = "Herald <noreply@herald.test>";

/** Small delays so retries, the scheduler and the relay turn over in well under a second. */
export const FAST = {
  HERALD_BACKOFF_BASE_MS: "200",
  HERALD_BACKOFF_CAP_MS: "2000",
  HERALD_SCHEDULER_POLL_MS: "100",
  HERALD_RELAY_POLL_MS: "100",
} as const;

const hex = (bytes: number) => randomBytes(bytes).toString("hex");

export const twilioCredentials = () => ({ accountSid: `AC${hex(16)}`, authToken: hex(16) });
export const fcmCredentials = () => ({ projectId: `herald-e2e-${hex(3)}`, accessToken: `ya29.${hex(24)}` });
/** A Standard Webhooks signing secret: whsec_ and base64 of 24 random bytes. */
export const webhookSecret = () => `whsec_${randomBytes(24).toString("base64")}`;

export function twilioEnv(standIn: TwilioStandIn, creds: { accountSid: string; authToken: string }): Record<string, string> {
  return {
    HERALD_SMS_PROVIDER: "twilio",
    TWILIO_BASE_URL: standIn.url,
    TWILIO_ACCOUNT_SID: creds.accountSid,
    TWILIO_AUTH_TOKEN: creds.authToken,
    HERALD_SMS_FROM: SMS_FROM,
  };
}

export function smtpEnv(standIn: SmtpStandIn): Record<string, string> {
  return { HERALD_EMAIL_PROVIDER: "smtp", SMTP_HOST: standIn.host, SMTP_PORT: String(standIn.port), HERALD_EMAIL_FROM: EMAIL_FROM };
}

export function fcmEnv(standIn: FcmStandIn, creds: { projectId: string; accessToken: string }): Record<string, string> {
  return { HERALD_PUSH_PROVIDER: "fcm", FCM_BASE_URL: standIn.url, FCM_PROJECT_ID: creds.projectId, FCM_ACCESS_TOKEN: creds.accessToken };
}

export function webhookEnv(secret: string): Record<string, string> {
  // The receivers listen on loopback, which webhooks may reach only when the operator allows it.
  return { HERALD_WEBHOOK_PROVIDER: "http", HERALD_WEBHOOK_SECRETS: `${TENANT}:${secret}`, HERALD_WEBHOOK_ALLOW_CIDRS: "127.0.0.0/8" };
}

export interface E2e {
  /** The API's gRPC listener, host:port. */
  grpcAddress: string;
  /** An API key of TENANT. */
  apiKey: string;
  /** The run's own database (a pool in this process, for assertions). */
  pool: pg.Pool;
  client: HeraldClient;
  /** The topic prefix of this run, e.g. "t0a1b2c3d4e.". */
  prefix: string;
  /** The environment of a worker process: this run's database and prefix, plus the shared `env`. */
  workerEnv(extra?: Record<string, string>): Record<string, string>;
  /** `herald worker --channel <channels>`; resolves once it logged "herald worker started". */
  startWorker(channels: string, opts?: { env?: Record<string, string>; name?: string }): Promise<HeraldProcess>;
  /** Stops the workers (SIGTERM, then SIGKILL), then the other roles, and drops the database. */
  stop(): Promise<void>;
}

export interface E2eOptions {
  /**
   * Run server, relay and scheduler as processes too, instead of in this process: for tests
   * that time what arrives at a stand-in, whose clock must not stall while this process
   * publishes or releases a burst. @defaultValue false
   */
  separateRoles?: boolean;
}

/**
 * Server, relay and scheduler with `env` (delivery settings must match the workers': max
 * attempts are fixed at accept, the scheduler's stale-claim grace is the lease), and a way to
 * start worker processes on the same database and topic prefix.
 */
export async function startE2e(env: Record<string, string>, opts: E2eOptions = {}): Promise<E2e> {
  const shared = { ...FAST, ...env };
  const roles = opts.separateRoles ? await startRoleProcesses(shared) : await startRolesInProcess(shared);
  const workers: HeraldProcess[] = [];
  const workerEnv = (extra: Record<string, string> = {}) => ({ ...roles.env, ...extra });
  return {
    grpcAddress: roles.grpcAddress,
    apiKey: roles.apiKey,
    pool: roles.pool,
    client: roles.client,
    prefix: roles.prefix,
    workerEnv,
    async startWorker(channels, startOpts = {}) {
      const name = startOpts.name ?? `worker-${channels}`;
      const worker = spawnHerald("worker", workerEnv(startOpts.env), name, ["--channel", channels]);
      workers.push(worker);
      await worker.waitForLog("herald worker started", 60_000);
      return worker;
    },
    async stop() {
      await Promise.all(workers.map((w) => w.stop("SIGTERM", 15_000)));
      await roles.stop();
    },
  };
}

interface Roles {
  grpcAddress: string;
  apiKey: string;
  pool: pg.Pool;
  client: HeraldClient;
  prefix: string;
  /** What a worker process of this run needs. */
  env: Record<string, string>;
  stop(): Promise<void>;
}

async function startRolesInProcess(shared: Record<string, string>): Promise<Roles> {
  const herald: TestHerald = await startTestHerald({ roles: ["server", "relay", "scheduler"], env: shared });
  return {
    grpcAddress: herald.grpcAddress,
    apiKey: KEY_A,
    pool: herald.db.pool,
    client: herald.client(KEY_A),
    prefix: herald.topic(""),
    env: { DATABASE_URL: herald.db.url, HERALD_TOPIC_PREFIX: herald.topic(""), HERALD_TOPIC_PARTITIONS: "3", LOG_LEVEL: "info", ...shared },
    stop: () => herald.stop(),
  };
}

async function startRoleProcesses(shared: Record<string, string>): Promise<Roles> {
  const db = await createTestDatabase("herald_e2e");
  const site = await heraldSite(db.url);
  const env = site.env(shared);
  const roles = (["server", "relay", "scheduler"] as const).map((role) => spawnHerald(role, env));
  const client = createHeraldClient({ address: site.grpcAddress, apiKey: site.apiKey });
  const stop = async () => {
    client.close();
    await Promise.all(roles.map((p) => p.stop("SIGTERM", 15_000)));
    await db.drop();
  };
  try {
    await Promise.all(roles.map((p) => p.waitForLog(`herald ${p.role} started`, 60_000)));
  } catch (err) {
    await stop();
    throw err;
  }
  return { grpcAddress: site.grpcAddress, apiKey: site.apiKey, pool: db.pool, client, prefix: site.prefix, env, stop };
}

export type Address =
  | { case: "email"; value: string }
  | { case: "phone"; value: string }
  | { case: "deviceToken"; value: string }
  | { case: "webhookUrl"; value: string };

const channelOf: Record<Address["case"], Channel> = {
  email: Channel.EMAIL,
  phone: Channel.SMS,
  deviceToken: Channel.PUSH,
  webhookUrl: Channel.WEBHOOK,
};

/** Create through the API; returns the id. */
export async function createNotification(
  client: HeraldClient,
  userId: string,
  address: Address,
  content: { subject?: string; text?: string; html?: string; data?: Record<string, string> },
): Promise<string> {
  const { notification } = await client.create({
    notification: { channel: channelOf[address.case], recipient: { userId, address }, body: { case: "content", value: content } },
  });
  if (!notification?.id) throw new Error("Create returned no notification");
  return notification.id;
}

export const sms = (client: HeraldClient, userId: string, text: string, phone = "+14155550100") =>
  createNotification(client, userId, { case: "phone", value: phone }, { text });

/** Waits until every id has one of `statuses`; fails naming how many are where, and the worker's output. */
export async function waitForStatus(
  pool: pg.Pool,
  ids: readonly string[],
  statuses: Status | readonly Status[],
  opts: { timeoutMs?: number; workers?: readonly HeraldProcess[] } = {},
): Promise<void> {
  const wanted: readonly Status[] = typeof statuses === "number" ? [statuses] : statuses;
  let where = "";
  try {
    await waitFor(
      `${ids.length} notifications to reach ${wanted.map((s) => Status[s]).join("/")}`,
      async () => {
        const r = await pool.query<{ status: Status; n: number }>(
          "SELECT status, count(*)::int AS n FROM notifications WHERE id = ANY($1::uuid[]) GROUP BY status",
          [ids],
        );
        where = r.rows.map((row) => `${Status[row.status]}: ${row.n}`).join(", ");
        return r.rows.filter((row) => wanted.includes(row.status)).reduce((sum, row) => sum + row.n, 0) === ids.length;
      },
      { timeoutMs: opts.timeoutMs ?? 30_000, everyMs: 50 },
    );
  } catch (err) {
    const tails = (opts.workers ?? []).map((w) => `${w.name}:\n${outputTail(w, 2000)}`).join("\n");
    throw new Error(`${(err as Error).message} (${where})\n${tails}`, { cause: err });
  }
}

export interface EventRow {
  sequence: number;
  status: Status;
  attempt: number;
  detail: string;
  at: Date;
}

/** The notification's status_events in sequence order. */
export async function eventsOf(pool: pg.Pool, id: string): Promise<EventRow[]> {
  const r = await pool.query<EventRow>(
    "SELECT sequence, status, attempt, detail, created_at AS at FROM status_events WHERE notification_id = $1 ORDER BY sequence",
    [id],
  );
  return r.rows;
}

/** status_events of many notifications, grouped by id. */
export async function eventsByNotification(pool: pg.Pool, ids: readonly string[]): Promise<Map<string, EventRow[]>> {
  const r = await pool.query<EventRow & { id: string }>(
    `SELECT notification_id AS id, sequence, status, attempt, detail, created_at AS at
     FROM status_events WHERE notification_id = ANY($1::uuid[]) ORDER BY notification_id, sequence`,
    [ids],
  );
  const byId = new Map<string, EventRow[]>(ids.map((id) => [id, []]));
  for (const { id, ...e } of r.rows) byId.get(id)!.push(e);
  return byId;
}

export interface NotificationRowView {
  status: Status;
  attempts: number;
  max_attempts: number;
  last_error: string;
  provider_message_id: string;
  next_attempt_at: Date | null;
}

export async function rowOf(pool: pg.Pool, id: string): Promise<NotificationRowView> {
  const r = await pool.query<NotificationRowView>(
    "SELECT status, attempts, max_attempts, last_error, provider_message_id, next_attempt_at FROM notifications WHERE id = $1",
    [id],
  );
  if (!r.rows[0]) throw new Error(`no notification ${id}`);
  return r.rows[0];
}

const BROKERS = (process.env.KAFKA_BROKERS ?? "127.0.0.1:9092").split(",");

/** A kafkajs client for what a test does to Kafka by hand (test-only: Herald reaches kafkajs through src/kafka). */
export function testKafka(): Kafka {
  return new Kafka({ brokers: BROKERS, clientId: "herald-e2e", logLevel: logLevel.NOTHING });
}

/** The committed offset of `group` on each partition of `topic` (-1: nothing committed). */
export async function committedOffsets(group: string, topic: string): Promise<Map<number, bigint>> {
  const admin = testKafka().admin();
  await admin.connect();
  try {
    const [offsets] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
    return new Map((offsets?.partitions ?? []).map((p) => [p.partition, BigInt(p.offset)]));
  } finally {
    await admin.disconnect();
  }
}

/** Waits until consumer group `group` is Stable with exactly `members` members (each with an assignment). */
export async function waitForGroup(group: string, members: number, timeoutMs = 60_000): Promise<void> {
  const admin = testKafka().admin();
  await admin.connect();
  try {
    await waitFor(
      `group ${group} stable with ${members} members`,
      async () => {
        const { groups } = await admin.describeGroups([group]);
        const g = groups[0];
        return g?.state === "Stable" && g.members.length === members && g.members.every((m) => m.memberAssignment.length > 0);
      },
      { timeoutMs, everyMs: 200 },
    );
  } finally {
    await admin.disconnect();
  }
}

/** The most of `times` (ms) that fall in any window [t, t + windowMs), over every t. */
export function maxInSlidingWindow(times: readonly number[], windowMs: number): { count: number; start: number } {
  const sorted = [...times].sort((a, b) => a - b);
  let best = { count: 0, start: sorted[0] ?? 0 };
  // The densest window can always be slid right until it starts on an event.
  for (let i = 0, j = 0; i < sorted.length; i++) {
    while (j < sorted.length && sorted[j]! < sorted[i]! + windowMs) j++;
    if (j - i > best.count) best = { count: j - i, start: sorted[i]! };
  }
  return best;
}
