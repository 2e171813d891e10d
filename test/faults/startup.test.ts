import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { Channel, Status, createHeraldClient } from "../../src/client/index.js";
import { createTestDatabase, type TestDatabase } from "../support/db.js";
import { startPrivateBroker, type PrivateBroker } from "../support/private-broker.js";
import { freePorts, heraldSite, outputTail, runCli, spawnHerald, stopAll, type HeraldProcess, type HeraldSite } from "../support/processes.js";
import { startTcpProxy } from "../support/tcp-proxy.js";
import { waitFor } from "../support/wait.js";

// Roles started while a dependency is down (issue 12): each process stays up, answers /healthz
// 200 and /readyz 503 on its health port, logs the missing dependency once, and becomes ready,
// and delivers, once the dependency is back. A bad configuration is the one thing that stops a
// role at start: exit 1 and a single JSON line.

afterAll(() => stopAll("SIGKILL", 5_000));

function sms(userId: string) {
  return {
    channel: Channel.SMS,
    recipient: { userId, address: { case: "phone" as const, value: "+14155550100" } },
    body: { case: "content" as const, value: { text: "Hello" } },
  };
}

/** The health port a process logged (HERALD_HEALTH_PORT=127.0.0.1:0 takes any free one). */
async function healthUrl(p: HeraldProcess): Promise<string> {
  const line = await p.waitForLog("health port listening");
  return `http://${String(line.addr)}`;
}

const status = async (url: string) => (await fetch(url)).status;

/** How many of the process's log lines have this message. */
const count = (p: HeraldProcess, msg: string) => p.logs().filter((l) => l.msg === msg).length;

/** Alive, live, not ready, and saying why: exactly one "waiting for <dependency>" line. */
async function expectWaiting(p: HeraldProcess, url: string, dependency: string): Promise<void> {
  await p.waitForLog(`waiting for ${dependency}`);
  expect(p.exit(), `${p.name} exited\n${outputTail(p)}`).toBeUndefined();
  expect(await status(`${url}/healthz`)).toBe(200);
  const ready = await fetch(`${url}/readyz`);
  expect(ready.status).toBe(503);
  expect(await ready.json()).toMatchObject({ status: "not ready", waiting: ["starting"] });
}

async function waitReady(p: HeraldProcess, url: string): Promise<void> {
  await waitFor(`${p.name} ready`, async () => {
    if (p.exit()) throw new Error(`${p.name} exited\n${outputTail(p)}`);
    return (await status(`${url}/readyz`)) === 200;
  }, { timeoutMs: 120_000, everyMs: 200 });
}

describe("roles started with a dependency down", { timeout: 300_000 }, () => {
  let db: TestDatabase;
  let broker: PrivateBroker;
  let site: HeraldSite;
  let env: Record<string, string>;

  beforeAll(async () => {
    db = await createTestDatabase("herald_start");
    broker = await startPrivateBroker();
    site = await heraldSite(db.url);
    const sinkDir = await mkdtemp(join(tmpdir(), "herald-start-sink-"));
    env = site.env({
      KAFKA_BROKERS: broker.brokers.join(","),
      HERALD_HEALTH_PORT: "127.0.0.1:0",
      HERALD_SMS_PROVIDER: "sink",
      HERALD_SINK_DIR: sinkDir,
      HERALD_SCHEDULER_POLL_MS: "100",
    });
    await broker.stop();
  }, 240_000);

  afterAll(async () => {
    await stopAll("SIGTERM", 20_000);
    await broker?.destroy();
    await db?.drop();
  });

  let server: HeraldProcess;

  it("server, relay and worker started with Kafka down wait, say so once, become ready when it is back, and deliver", async () => {
    server = spawnHerald("server", env);
    const relay = spawnHerald("relay", env);
    const worker = spawnHerald("worker", env, "worker", ["--channel", "sms"]);
    const roles = [server, relay, worker];
    const urls = await Promise.all(roles.map(healthUrl));
    for (const [i, p] of roles.entries()) await expectWaiting(p, urls[i]!, "kafka");

    await broker.start();
    for (const [i, p] of roles.entries()) await waitReady(p, urls[i]!);

    const client = createHeraldClient({ address: site.grpcAddress, apiKey: site.apiKey });
    onTestFinished(() => client.close());
    const { notification } = await client.create({ notification: sms("u-kafka-late") }, { timeoutMs: 20_000 });
    await waitFor("the notification SENT", async () => {
      const { rows } = await db.pool.query<{ status: number }>("SELECT status FROM notifications WHERE id = $1", [notification!.id]);
      return rows[0]?.status === Status.SENT;
    }, { timeoutMs: 120_000 });

    for (const p of roles) {
      expect([count(p, "waiting for kafka"), count(p, "kafka is back"), count(p, "waiting for database")], outputTail(p)).toEqual([1, 1, 0]);
      expect(p.stderr()).toBe("");
    }
  });

  it("a scheduler started with PostgreSQL unreachable waits, says so once, and releases due rows once it is back", async () => {
    const proxy = await startTcpProxy({ host: "127.0.0.1", port: 5432 });
    onTestFinished(() => proxy.close());
    await proxy.cut();
    const scheduler = spawnHerald("scheduler", { ...env, DATABASE_URL: `postgres://postgres@127.0.0.1:${proxy.port}/${db.name}` });
    const url = await healthUrl(scheduler);
    await expectWaiting(scheduler, url, "database");

    await proxy.restore();
    await waitReady(scheduler, url);
    expect([count(scheduler, "waiting for database"), count(scheduler, "database is back")]).toEqual([1, 1]);

    // A day out, then made due by SQL: released by this scheduler alone (no other runs here), then
    // published and sent by the relay and worker of the test above.
    const client = createHeraldClient({ address: site.grpcAddress, apiKey: site.apiKey });
    onTestFinished(() => client.close());
    const later = timestampFromDate(new Date(Date.now() + 24 * 3600_000));
    const { notification } = await client.schedule({ notification: sms("u-pg-late"), when: { case: "deliverAt", value: later } }, { timeoutMs: 20_000 });
    await db.pool.query("UPDATE notifications SET deliver_at = now() WHERE id = $1", [notification!.id]);
    await waitFor("the scheduled notification SENT", async () => {
      const { rows } = await db.pool.query<{ status: number }>("SELECT status FROM notifications WHERE id = $1", [notification!.id]);
      return rows[0]?.status === Status.SENT;
    }, { timeoutMs: 120_000 });
  });

  it("SIGTERM while waiting for Kafka exits 0", async () => {
    const [nobody] = await freePorts(1);
    const relay = spawnHerald("relay", { ...env, KAFKA_BROKERS: `127.0.0.1:${nobody}` }, "relay-no-kafka");
    await expectWaiting(relay, await healthUrl(relay), "kafka");
    expect(await relay.stop("SIGTERM", 20_000), outputTail(relay)).toEqual({ code: 0, signal: null });
    expect(relay.stderr()).toBe("");
  });
});

describe("a bad configuration", () => {
  it.each([
    ["a malformed variable", { HERALD_TOPIC_PARTITIONS: "zero" }, "HERALD_TOPIC_PARTITIONS"],
    ["a channel without a provider", {}, "HERALD_SMS_PROVIDER"],
    ["a DATABASE_URL naming no database", { DATABASE_URL: "postgres://postgres@127.0.0.1:1" }, "DATABASE_URL"],
  ])("%s: the role exits 1 with one JSON line naming the variable", async (_what, bad, variable) => {
    const result = await runCli(["worker", "--channel", "sms"], {
      // Nothing listens there: a role that got past its configuration would wait, not exit.
      env: { DATABASE_URL: "postgres://postgres@127.0.0.1:1/none", KAFKA_BROKERS: "127.0.0.1:1", LOG_LEVEL: "info", ...bad },
      timeoutMs: 30_000,
    });
    expect(result).toMatchObject({ code: 1, stderr: "", timedOut: false });
    const lines = result.stdout.trim().split("\n");
    expect(lines, result.stdout).toHaveLength(1);
    const line = JSON.parse(lines[0]!) as { level: number; msg: string; role: string };
    expect(line).toMatchObject({ level: 60, role: "worker" });
    expect(line.msg).toContain(variable);
  });
});
