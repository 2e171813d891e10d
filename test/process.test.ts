import { fromBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { DispatchSchema } from "../gen/herald/v1/dispatch_pb.js";
import { Channel, Code, ConnectError, Status, createHeraldClient, type HeraldClient } from "../src/client/index.js";
import { createTestDatabase, type TestDatabase } from "./support/db.js";
import { readTopic } from "./support/kafka-reader.js";
import {
  BUF,
  outputTail,
  runCli,
  runCommand,
  spawnHerald,
  stopAll,
  heraldSite,
  type HeraldProcess,
  type HeraldSite,
  type RunResult,
} from "./support/processes.js";
import { waitFor } from "./support/wait.js";

// Herald as it is deployed: `herald server|relay|scheduler|dev` as separate processes from
// dist/, driven by the CLI, buf curl and the grpc-js client, and stopped by signals. Each
// describe has its own database, topic prefix, ports and API key.

/** Proto JSON of a Notification as the CLI and buf curl print it (the fields asserted here). */
interface JsonNotification {
  id: string;
  status: string;
  channel: string;
  recipient: { userId: string; email?: string; phone?: string };
  deliverTime: string;
  idempotencyKey?: string;
}
interface JsonEvent {
  notificationId: string;
  sequence: number;
  status: string;
  detail: string;
  time: string;
}
interface JsonResponse {
  notification: JsonNotification;
  history?: JsonEvent[];
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

const NOTIFICATION_METHODS = [
  "herald.v1.NotificationService/Cancel",
  "herald.v1.NotificationService/Create",
  "herald.v1.NotificationService/CreateBatch",
  "herald.v1.NotificationService/Get",
  "herald.v1.NotificationService/Notify",
  "herald.v1.NotificationService/Schedule",
  "herald.v1.NotificationService/WatchStatus",
];

const README_CREATE =
  '{"notification":{"channel":"CHANNEL_EMAIL","recipient":{"userId":"u-1","email":"ada@example.com"},"content":{"subject":"Hi","text":"Hello"}},"idempotencyKey":"k-1"}';

function email(userId: string) {
  return {
    channel: Channel.EMAIL,
    recipient: { userId, address: { case: "email" as const, value: "ada@example.com" } },
    body: { case: "content" as const, value: { subject: "Hi", text: "Hello" } },
  };
}

/** The CLI succeeded and printed one JSON response. */
function printed(r: RunResult): JsonResponse {
  expect(r, `herald exited ${r.code}\n${r.stderr}`).toMatchObject({ code: 0, timedOut: false });
  return JSON.parse(r.stdout) as JsonResponse;
}

// Whatever a failed test left running goes before the file ends.
afterAll(() => stopAll("SIGKILL", 5_000));

describe("server, relay and scheduler as three processes on one database and prefix", { timeout: 120_000 }, () => {
  let db: TestDatabase;
  let site: HeraldSite;
  let server: HeraldProcess;
  let relay: HeraldProcess;
  let scheduler: HeraldProcess;
  let cli: (...args: string[]) => Promise<RunResult>;

  beforeAll(async () => {
    db = await createTestDatabase("herald_proc");
    site = await heraldSite(db.url);
    // Started together, as a deployment would: they race to create the topics. The misspelt
    // variable is for the start-up report, which must name it and not stop the role.
    const env = site.env({ HERALD_SCHEDULER_POLL_MS: "100", HERALD_RELAY_POLL_MSS: "50" });
    server = spawnHerald("server", env);
    relay = spawnHerald("relay", env);
    scheduler = spawnHerald("scheduler", env);
    await Promise.all([server.waitForLog("herald server listening"), relay.waitForLog("relay is the leader")]);
    cli = (command, ...args) => runCli([command, "--addr", site.grpcAddress, "--api-key", site.apiKey, ...args]);
  });

  afterAll(async () => {
    await Promise.all([server, relay, scheduler].map((p) => p?.stop("SIGTERM", 20_000)));
    await db?.drop();
  });

  it("each role reports an unknown HERALD_* variable at start, naming the one it likely meant", async () => {
    const message = "unknown environment variable HERALD_RELAY_POLL_MSS (did you mean HERALD_RELAY_POLL_MS?)";
    for (const role of [server, relay, scheduler]) {
      const line = await role.waitForLog(message);
      expect(line).toMatchObject({ level: 40, variable: "HERALD_RELAY_POLL_MSS", suggestion: "HERALD_RELAY_POLL_MS" });
    }
  });

  describe("the CLI", () => {
    it("send prints the QUEUED notification, get shows its history, and its Dispatch reaches the prefixed herald.email", async () => {
      const sent = printed(await cli("send", "--channel", "email", "--to", "ada@example.com", "--user", "u-cli", "--subject", "Hi", "--text", "Hello"));
      const id = sent.notification.id;
      expect(id).toMatch(UUID);
      expect(sent.notification).toMatchObject({
        status: "STATUS_QUEUED",
        channel: "CHANNEL_EMAIL",
        recipient: { userId: "u-cli", email: "ada@example.com" },
      });

      const got = printed(await cli("get", id));
      expect(got.notification).toMatchObject({ id, status: "STATUS_QUEUED" });
      expect(got.history).toEqual([
        expect.objectContaining({ notificationId: id, sequence: 1, status: "STATUS_QUEUED", detail: "accepted" }),
      ]);

      const records = await readTopic(site.topic("herald.email"), {
        until: (rs) => rs.some((r) => fromBinary(DispatchSchema, r.value).notificationId === id),
        timeoutMs: 30_000,
      });
      const mine = records.filter((r) => fromBinary(DispatchSchema, r.value).notificationId === id);
      expect(mine).toHaveLength(1);
      expect(mine[0]).toMatchObject({ key: `${site.tenant}/u-cli`, headers: { tenant: site.tenant, attempt: "1" } });
      expect(fromBinary(DispatchSchema, mine[0]!.value)).toMatchObject({ tenant: site.tenant, attempt: 1 });
    });

    it("schedule --at now+8s: the scheduler process releases it to Kafka, and get shows SCHEDULED then QUEUED", async () => {
      expect(scheduler.exit(), outputTail(scheduler)).toBeUndefined();
      // Far enough ahead that a CLI process starting on a busy 2-core machine is not late.
      const at = new Date(Date.now() + 8_000);
      const scheduled = printed(await cli("schedule", "--channel", "email", "--to", "ada@example.com", "--user", "u-later", "--text", "Later", "--at", at.toISOString()));
      const id = scheduled.notification.id;
      expect(scheduled.notification).toMatchObject({ status: "STATUS_SCHEDULED", deliverTime: at.toISOString() });

      const records = await readTopic(site.topic("herald.email"), {
        until: (rs) => rs.some((r) => fromBinary(DispatchSchema, r.value).notificationId === id),
        timeoutMs: 30_000,
      });
      expect(records.filter((r) => fromBinary(DispatchSchema, r.value).notificationId === id)).toHaveLength(1);

      const got = printed(await cli("get", id));
      expect(got.notification.status).toBe("STATUS_QUEUED");
      expect(got.history?.map((e) => [e.sequence, e.status, e.detail])).toEqual([
        [1, "STATUS_SCHEDULED", "accepted"],
        [2, "STATUS_QUEUED", "released"],
      ]);
      // Released at its time, not before. (How soon after is the release loop's property,
      // tested with an injected clock in test/unit/release-records.test.ts.)
      expect(Date.parse(got.history![1]!.time)).toBeGreaterThanOrEqual(at.getTime());
    });

    it("cancel of a far-off schedule prints CANCELED; a second cancel is too late: exit 1, FAILED_PRECONDITION on stderr", async () => {
      const at = new Date(Date.now() + 24 * 3600_000).toISOString();
      const { notification } = printed(await cli("schedule", "--channel", "email", "--to", "ada@example.com", "--text", "Tomorrow", "--at", at));
      expect(notification.status).toBe("STATUS_SCHEDULED");

      const canceled = printed(await cli("cancel", notification.id));
      expect(canceled.notification).toMatchObject({ id: notification.id, status: "STATUS_CANCELED" });

      const again = await cli("cancel", notification.id);
      expect(again).toMatchObject({ code: 1, stdout: "", timedOut: false });
      expect(again.stderr.trim()).toBe(
        `herald: [failed_precondition] notification ${notification.id} is CANCELED; only SCHEDULED, QUEUED, RETRYING can be canceled`,
      );
    });

    it("a --to that does not fit the channel exits 1 with INVALID_ARGUMENT naming the field", async () => {
      const sms = await cli("send", "--channel", "sms", "--to", "ada@example.com", "--text", "Hello");
      expect(sms).toMatchObject({ code: 1, stdout: "", timedOut: false });
      expect(sms.stderr.trim()).toBe(
        "herald: [invalid_argument] notification.recipient.phone: must be an E.164 number like +14155550100",
      );

      const mail = await cli("send", "--channel", "email", "--to", "not-an-address", "--text", "Hello");
      expect(mail).toMatchObject({ code: 1, stdout: "", timedOut: false });
      expect(mail.stderr.trim()).toBe(
        "herald: [invalid_argument] notification.recipient.email: must be an email address like ada@example.com",
      );
    });
  });

  describe("buf curl with no schema (server reflection)", () => {
    const curl = (args: string[], timeoutMs = 30_000) =>
      runCommand(BUF, ["curl", "--http2-prior-knowledge", ...args], { timeoutMs, name: "buf curl" });
    const listed = (r: RunResult) => r.stdout.split("\n").filter((l) => l.startsWith("herald.v1.NotificationService/")).sort();
    const keyedRow = async () => {
      const { rows } = await db.pool.query<{ id: string }>("SELECT id FROM notifications WHERE tenant = $1 AND idempotency_key = 'k-1'", [site.tenant]);
      return rows;
    };

    it("HTTP listener (Connect, buf's default): lists the seven methods, Creates idempotently, Health is SERVING", async () => {
      const list = await curl(["--list-methods", site.httpUrl]);
      expect(list, list.stderr).toMatchObject({ code: 0, timedOut: false });
      expect(listed(list)).toEqual(NOTIFICATION_METHODS);

      const create = ["-H", `authorization: Bearer ${site.apiKey}`, "-d", README_CREATE, `${site.httpUrl}/herald.v1.NotificationService/Create`];
      const first = await curl(create);
      const second = await curl(create);
      for (const r of [first, second]) expect(r, r.stderr).toMatchObject({ code: 0, timedOut: false });
      const a = JSON.parse(first.stdout) as JsonResponse;
      const b = JSON.parse(second.stdout) as JsonResponse;
      expect(a.notification).toMatchObject({ status: "STATUS_QUEUED", idempotencyKey: "k-1", recipient: { userId: "u-1", email: "ada@example.com" } });
      expect(b.notification.id).toBe(a.notification.id);
      expect(await keyedRow()).toEqual([{ id: a.notification.id }]);

      const health = await curl(["-d", "{}", `${site.httpUrl}/grpc.health.v1.Health/Check`]);
      expect(health, health.stderr).toMatchObject({ code: 0, timedOut: false });
      expect(JSON.parse(health.stdout)).toEqual({ status: "SERVING" });
    });

    // grpc-js speaks only the gRPC protocol; buf curl's default (Connect) gets HTTP 415 there,
    // so on this port the protocol is named.
    it("gRPC listener (--protocol grpc): lists the seven methods, Creates idempotently, Health is SERVING", async () => {
      const grpcUrl = `http://${site.grpcAddress}`;
      const grpcCurl = (args: string[]) => curl(["--protocol", "grpc", ...args], 8_000);
      const create = ["-H", `authorization: Bearer ${site.apiKey}`, "-d", README_CREATE, `${grpcUrl}/herald.v1.NotificationService/Create`];
      const [list, health, first] = await Promise.all([
        grpcCurl(["--list-methods", grpcUrl]),
        grpcCurl([`${grpcUrl}/grpc.health.v1.Health/Check`]),
        grpcCurl(create),
      ]);
      const second = await grpcCurl(create);

      for (const r of [list, health, first, second]) expect(r, r.stderr).toMatchObject({ code: 0, timedOut: false });
      expect(listed(list), list.stderr).toEqual(NOTIFICATION_METHODS);
      expect(JSON.parse(health.stdout), health.stderr).toEqual({ status: "SERVING" });
      const a = JSON.parse(first.stdout) as JsonResponse;
      const b = JSON.parse(second.stdout) as JsonResponse;
      expect(a.notification).toMatchObject({ status: "STATUS_QUEUED", idempotencyKey: "k-1" });
      expect(b.notification.id).toBe(a.notification.id);
      // The same key as over HTTP, same tenant: still the one notification.
      expect(await keyedRow()).toEqual([{ id: a.notification.id }]);
    });

    // A bidi stream half-closed by the client must still get its status trailer
    // (reflection is the bidi stream buf curl uses), or buf prints the answer and hangs.
    it("gRPC listener: buf curl exits once it has its answer", async () => {
      const list = await curl(["--protocol", "grpc", "--list-methods", `http://${site.grpcAddress}`], 8_000);
      expect(list).toMatchObject({ code: 0, timedOut: false });
    });
  });

  it("all three exit 0 on SIGTERM", async () => {
    const exits = await Promise.all([server, relay, scheduler].map((p) => p.stop("SIGTERM", 20_000)));
    exits.forEach((exit, i) => expect(exit, outputTail([server, relay, scheduler][i]!)).toEqual({ code: 0, signal: null }));
    for (const p of [server, relay, scheduler]) expect(p.logs().map((l) => l.msg)).toContain("stopped");
  });
});

describe("graceful shutdown", { timeout: 120_000 }, () => {
  /** A database of the test's own; hooks run last-registered first, so it outlives the processes. */
  async function testDatabase(prefix: string): Promise<TestDatabase> {
    const db = await createTestDatabase(prefix);
    onTestFinished(() => db.drop());
    return db;
  }

  it("server: SIGTERM under ~20 concurrent Creates exits 0, keeps every answered Create, and later calls fail UNAVAILABLE", async () => {
    const db = await testDatabase("herald_proc_stop");
    const site = await heraldSite(db.url);
    const server = spawnHerald("server", site.env());
    onTestFinished(async () => void (await server.stop("SIGKILL", 5_000)));
    await server.waitForLog("herald server listening");
    const client: HeraldClient = createHeraldClient({ address: site.grpcAddress, apiKey: site.apiKey });

    type Outcome = { ok: true; id: string; at: number } | { ok: false; code: Code; message: string; at: number };
    const outcomes: Outcome[] = [];
    let firing = true;
    // Each worker keeps one Create in flight; a deadline turns a hung call into DEADLINE_EXCEEDED.
    const worker = async (w: number) => {
      for (let i = 0; firing; i++) {
        try {
          const { notification } = await client.create({ notification: email(`u-${w}-${i}`) }, { timeoutMs: 10_000 });
          outcomes.push({ ok: true, id: notification!.id, at: Date.now() });
        } catch (err) {
          const e = ConnectError.from(err);
          outcomes.push({ ok: false, code: e.code, message: e.rawMessage, at: Date.now() });
          await new Promise((r) => setTimeout(r, 20)); // no hot loop against a closed port
        }
      }
    };
    const workers = Promise.all(Array.from({ length: 20 }, (_, w) => worker(w)));

    try {
      await waitFor("200 answered Creates", () => outcomes.filter((o) => o.ok).length >= 200);
      // Exiting on its own within the stop's 30 s is what counts: a server that hangs is killed,
      // and the exit below then names the signal.
      const exit = await server.stop("SIGTERM", 30_000);
      const exitedAt = Date.now();
      // Keep firing at the closed port until a call has been refused, then stop the workers;
      // each has at most one call in flight.
      await waitFor("a Create refused after the exit", () => outcomes.some((o) => !o.ok && o.at > exitedAt));
      firing = false;
      await workers;

      expect(exit, outputTail(server)).toEqual({ code: 0, signal: null });
      expect(server.logs().map((l) => l.msg)).toEqual(expect.arrayContaining(["shutting down", "stopped"]));

      // Every answered Create is stored, with its first event and its Dispatch waiting in the outbox.
      const ids = outcomes.flatMap((o) => (o.ok ? [o.id] : []));
      expect(new Set(ids).size).toBe(ids.length);
      const count = async (sql: string) => Number((await db.pool.query<{ n: string }>(sql, [ids])).rows[0]!.n);
      expect(await count("SELECT count(*) AS n FROM notifications WHERE id = ANY($1::uuid[])")).toBe(ids.length);
      expect(await count("SELECT count(*) AS n FROM status_events WHERE notification_id = ANY($1::uuid[])")).toBe(ids.length);
      expect(await count("SELECT count(*) AS n FROM outbox WHERE topic = 'herald.email' AND notification_id = ANY($1::uuid[])")).toBe(ids.length);

      // Refused calls are UNAVAILABLE (a closed connection or a closed store), never a hang or INTERNAL.
      const failed = outcomes.filter((o): o is Extract<Outcome, { ok: false }> => !o.ok);
      expect(failed.filter((o) => o.code !== Code.Unavailable)).toEqual([]);
      expect(failed.filter((o) => o.at > exitedAt).length).toBeGreaterThan(0);
      const after = await Promise.allSettled(Array.from({ length: 5 }, (_, i) => client.create({ notification: email(`after-${i}`) }, { timeoutMs: 5_000 })));
      expect(after.map((r) => (r.status === "rejected" ? ConnectError.from(r.reason).code : "fulfilled"))).toEqual(Array(5).fill(Code.Unavailable));
    } finally {
      firing = false;
      client.close();
    }
  });

  it("dev: SIGINT exits 0", async () => {
    const db = await testDatabase("herald_proc_dev");
    const site = await heraldSite(db.url);
    const dev = spawnHerald("dev", site.env());
    onTestFinished(async () => void (await dev.stop("SIGKILL", 5_000)));
    await dev.waitForLog((l) => l.msg.startsWith("herald dev is up"));
    // Working before the signal: the dev key is accepted and a Create is stored.
    const client = createHeraldClient({ address: site.grpcAddress, apiKey: "herald-dev-key" });
    try {
      const { notification } = await client.create({ notification: email("u-dev") });
      expect(notification?.status).toBe(Status.QUEUED);
    } finally {
      client.close();
    }
    const exit = await dev.stop("SIGINT", 30_000);
    expect(exit, outputTail(dev)).toEqual({ code: 0, signal: null });
    expect(dev.logs().find((l) => l.msg === "shutting down")).toMatchObject({ signal: "SIGINT" });
  });
});

describe("two schedulers on one database", { timeout: 120_000 }, () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase("herald_proc_sched");
  });
  afterAll(async () => {
    await db?.drop();
  });

  it("release each of 300 due notifications exactly once: one QUEUED event each, 300 distinct Dispatches", async () => {
    const site = await heraldSite(db.url);
    // Small batches, so the two schedulers release in many interleaved transactions instead of
    // one of them taking all 300 in its first tick.
    const env = site.env({ HERALD_SCHEDULER_POLL_MS: "100", HERALD_SCHEDULER_BATCH: "25" });
    const server = spawnHerald("server", env);
    const relay = spawnHerald("relay", env);
    const schedulers = [spawnHerald("scheduler", env, "scheduler-1"), spawnHerald("scheduler", env, "scheduler-2")];
    onTestFinished(async () => void (await Promise.all([server, relay, ...schedulers].map((p) => p.stop("SIGTERM", 20_000)))));
    await Promise.all([server.waitForLog("herald server listening"), relay.waitForLog("relay is the leader")]);

    const client = createHeraldClient({ address: site.grpcAddress, apiKey: site.apiKey });
    let ids: string[];
    try {
      // Scheduled a day out and all made due at one instant by SQL once every one is accepted,
      // so the two schedulers race for one burst however long the accepts take today.
      const deliverAt = new Date(Date.now() + 86_400_000);
      const responses = await Promise.all(
        Array.from({ length: 300 }, (_, i) =>
          client.schedule(
            { notification: email(`u-${i % 40}`), when: { case: "deliverAt", value: timestampFromDate(deliverAt) } },
            { timeoutMs: 20_000 },
          ),
        ),
      );
      ids = responses.map((r) => r.notification!.id);
      expect(responses.every((r) => r.notification?.status === Status.SCHEDULED)).toBe(true);
    } finally {
      client.close();
    }
    expect(new Set(ids).size).toBe(300);
    await db.pool.query("UPDATE notifications SET deliver_at = now() WHERE id = ANY($1::uuid[])", [ids]);

    await waitFor("all 300 released", async () => {
      const { rows } = await db.pool.query<{ n: string }>("SELECT count(*) AS n FROM notifications WHERE status = $1", [Status.QUEUED]);
      return Number(rows[0]!.n) === 300;
    });
    for (const s of schedulers) expect(s.exit(), `${s.name} died\n${outputTail(s)}`).toBeUndefined();

    const records = await readTopic(site.topic("herald.email"), { until: (rs) => rs.length >= 300, timeoutMs: 30_000 });
    const dispatched = records.map((r) => fromBinary(DispatchSchema, r.value).notificationId);
    expect(dispatched).toHaveLength(300);
    expect(new Set(dispatched)).toEqual(new Set(ids));

    const { rows } = await db.pool.query<{ id: string; queued: string; events: string }>(
      `SELECT notification_id AS id, count(*) FILTER (WHERE status = $2) AS queued, count(*) AS events
       FROM status_events WHERE notification_id = ANY($1::uuid[]) GROUP BY notification_id`,
      [ids, Status.QUEUED],
    );
    expect(rows).toHaveLength(300);
    expect(rows.filter((r) => r.queued !== "1" || r.events !== "2")).toEqual([]);
  });
});
