import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHeraldClient, type HeraldClient } from "../../src/client/index.js";
import { FAST, createNotification } from "../e2e/support.js";
import { createTestDatabase, type TestDatabase } from "../support/db.js";
import { startPrivateBroker, type PrivateBroker } from "../support/private-broker.js";
import { REPO, heraldSite, spawnHerald, stopAll, type HeraldProcess, type HeraldSite, type Role } from "../support/processes.js";
import { waitFor } from "../support/wait.js";
import { checkPrerequisites, launchBrowser, type TestBrowser } from "./browser.js";
import { operationsPage, type OperationsPage } from "./operations-page.js";

// The dashboard's operations view in headless Chromium, against Herald as real
// processes on a Kafka broker of the test's own (it is stopped at the end,
// which the shared one must never be). With no worker running, N Creates wait
// in herald.email and the page shows the email lag N; a worker starts, the lag
// falls to 0 and the deliveries/s chart shows the traffic; then Kafka goes
// away and the page says "lag unavailable" and carries on with the rest.

const N = 12;
const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const SCREENSHOT = join(REPO, "docs/img/operations-view.png");

let broker: PrivateBroker;
let db: TestDatabase;
let site: HeraldSite;
let env: Record<string, string>;
const processes: HeraldProcess[] = [];
let client: HeraldClient;
let browser: TestBrowser | undefined;
let ops: OperationsPage;
const sinkDir = mkdtempSync(join(tmpdir(), "herald-sink-"));

async function start(role: Role, args: string[] = []): Promise<HeraldProcess> {
  const p = spawnHerald(role, env, role, args);
  processes.push(p);
  await p.waitForLog(`herald ${role} started`, 60_000);
  return p;
}

beforeAll(async () => {
  checkPrerequisites();
  broker = await startPrivateBroker();
  db = await createTestDatabase("herald_web_ops");
  site = await heraldSite(db.url);
  env = site.env({
    ...FAST,
    KAFKA_BROKERS: broker.brokers.join(","),
    HERALD_EMAIL_PROVIDER: "sink",
    HERALD_SINK_DIR: sinkDir,
    // SMS with failover, so the channel table shows its breakers (nothing is sent by SMS here).
    HERALD_SMS_PROVIDER: "twilio,vonage",
    TWILIO_BASE_URL: "http://127.0.0.1:9",
    TWILIO_ACCOUNT_SID: "AC00000000000000000000000000000000",
    TWILIO_AUTH_TOKEN: "token",
    VONAGE_BASE_URL: "http://127.0.0.1:9",
    VONAGE_API_KEY: "key",
    VONAGE_API_SECRET: "secret",
    HERALD_SMS_FROM: "+15005550006",
  });
  await Promise.all([start("server"), start("relay")]);
  client = createHeraldClient({ address: site.grpcAddress, apiKey: site.apiKey });
  // Kafka is taken away on purpose below: the feed's and the polls' failed fetches are expected.
  browser = await launchBrowser({ allowNetworkErrors: true });
  ops = operationsPage(browser.page);
}, 300_000);

afterAll(async () => {
  await browser?.close();
  client?.close();
  await Promise.all(processes.map((p) => p.stop("SIGTERM", 15_000)));
  await stopAll("SIGKILL", 5_000);
  await broker?.destroy();
  await db?.drop();
  rmSync(sinkDir, { recursive: true, force: true });
});

describe("the operations view", () => {
  it("shows email lag N with workers stopped, 0 and deliveries once they run, and 'lag unavailable' without Kafka", { timeout: 300_000 }, async () => {
    await ops.open(site.httpUrl, site.apiKey);
    await waitFor("the view to be live", async () => (await ops.state()).state === "live");
    expect((await ops.channel("email"))?.lag).toBe("0");

    // SMS's breakers as the workers share them in Redis: both closed, then Twilio's opened (as
    // a worker's Lua script leaves it: state 2, open until 10 minutes from now).
    await waitFor("the SMS breakers, closed", async () => JSON.stringify((await ops.circuits("sms")).map((c) => [c.provider, c.state])) === '[["twilio","closed"],["vonage","closed"]]');
    expect(await ops.circuits("email")).toEqual([]);
    const redis = new Redis(REDIS_URL);
    try {
      await redis.hset(`${site.prefix}herald:cb:sms:twilio`, { s: 2, f: 0, ws: 0, ou: Date.now() + 600_000, pu: 0 });
      await redis.pexpire(`${site.prefix}herald:cb:sms:twilio`, 900_000);
    } finally {
      redis.disconnect();
    }
    const open = await waitFor("the page to show Twilio's breaker open", async () => {
      const cs = await ops.circuits("sms");
      return cs[0]?.state === "open" && cs;
    });
    expect(open.map((c) => [c.provider, c.state])).toEqual([["twilio", "open"], ["vonage", "closed"]]);
    expect(open[0]!.text).toMatch(/^twilio open \(probe in (9|10) m \d+ s\)$/);

    // No worker: every record waits in herald.email.
    for (let i = 0; i < N; i++) await createNotification(client, `u-ops-${i % 4}`, { case: "email", value: `ops${i}@example.com` }, { subject: "ops", text: "hello" });
    await waitFor(`the page to show email lag ${N}`, async () => (await ops.channel("email"))?.lag === String(N), { timeoutMs: 60_000 });
    expect((await ops.line("chart-lag", "lag.email")).value).toBe(N);
    expect((await ops.partitions("email")).reduce((sum, p) => sum + p.lag, 0)).toBe(N);
    expect((await ops.partitions("email")).map((p) => p.partition)).toEqual([0, 1, 2]);
    expect((await ops.tiles()).lag).toBe(String(N));
    expect((await ops.channel("email"))?.samples).toBe("0");

    // Workers back: the lag drains and the deliveries show.
    await start("worker", ["--channel", "email"]);
    await waitFor("the page to show email lag 0", async () => (await ops.channel("email"))?.lag === "0", { timeoutMs: 60_000 });
    await waitFor(`every SENT counted: ${N} samples`, async () => (await ops.channel("email"))?.samples === String(N), { timeoutMs: 60_000 });
    const sent = await waitFor("the deliveries/s chart to show the traffic", async () => {
      const line = await ops.line("chart-sent", "sent.email");
      // SENT per second over the last minute: all N within it.
      return line.value !== undefined && Math.round(line.value * 60) === N && line;
    });
    expect(sent.points).toBeGreaterThan(1);
    const lag = await ops.line("chart-lag", "lag.email");
    expect([lag.value, lag.text]).toEqual([0, "0"]);
    expect((await ops.channel("email"))?.p99).not.toBe("–");
    expect((await ops.line("chart-p99", "p99.email")).value).toBeGreaterThan(0);
    expect((await ops.tiles())["outbox-pending"]).toBe("0");
    expect((await ops.lagWarning()).state).toBe("ok");
    // The README's picture: a little more history after the drain (polls, not a fixed sleep).
    await waitFor("ten points on the lag chart", async () => (await ops.line("chart-lag", "lag.email")).points >= 10, { timeoutMs: 60_000 });
    mkdirSync(join(REPO, "docs/img"), { recursive: true });
    await browser!.page.screenshot({ path: SCREENSHOT, fullPage: true });

    // Kafka gone: the lag is unavailable, the page keeps polling and shows the rest.
    await broker.stop();
    await waitFor("the page to say lag unavailable", async () => (await ops.lagWarning()).state === "unavailable", { timeoutMs: 60_000 });
    expect((await ops.lagWarning()).text).toBe("lag unavailable: Kafka did not answer");
    expect((await ops.state()).state).toBe("live");
    expect((await ops.tiles()).lag).toBe("unavailable");
    expect((await ops.channel("email"))?.lag).toBe("unavailable");
    expect(await ops.partitions("email")).toEqual([]);
    const gone = await ops.line("chart-lag", "lag.email");
    expect([gone.value, gone.text]).toEqual([undefined, "unavailable"]);
    // What PostgreSQL says is still read: a Create now waits in the outbox, the relay unable to publish.
    await createNotification(client, "u-ops-late", { case: "email", value: "late@example.com" }, { text: "later" });
    await waitFor("the outbox backlog to show it", async () => Number((await ops.tiles())["outbox-pending"]) >= 2, { timeoutMs: 60_000 });
    expect(browser!.problems).toEqual([]);
  });
});
