import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Channel, Status, createHeraldClient, type HeraldClient } from "../../src/client/index.js";
import { createTestDatabase, type TestDatabase } from "../support/db.js";
import { REPO, heraldSite, outputTail, spawnHerald, stopAll, type HeraldProcess, type HeraldSite } from "../support/processes.js";
import { FAST, waitForStatus } from "../e2e/support.js";
import { waitFor } from "../support/wait.js";
import { dashboardPage, type DashboardPage, type PageEvent } from "./dashboard-page.js";

// The dashboard in a real headless Chromium (Debian's, driven by
// playwright-core), against Herald as real processes: server, relay,
// scheduler and an email worker writing to the local sink. The page sends a
// notification and watches it go through its lifecycle; then the server is
// SIGKILLed while scheduled notifications are released and sent, restarted on
// the same port, and the page must resume from its cursor and end up holding
// every event of every notification exactly once, in sequence order.

const CHROMIUM = process.env.HERALD_CHROMIUM ?? "/usr/bin/chromium";
const ARTIFACTS = join(REPO, "test-artifacts");
const SCHEDULED = 4;

let db: TestDatabase;
let site: HeraldSite;
let env: Record<string, string>;
let server: HeraldProcess;
const processes: HeraldProcess[] = [];
let client: HeraldClient;
let context: BrowserContext | undefined;
let page: Page;
let dash: DashboardPage;
const tempDirs: string[] = [];
/** Console errors, uncaught exceptions and CSP violations of the page: there should be none. */
const pageProblems: string[] = [];

async function startRole(role: "server" | "relay" | "scheduler" | "worker", name: string = role, args: string[] = []): Promise<HeraldProcess> {
  const p = spawnHerald(role, env, name, args);
  processes.push(p);
  await p.waitForLog(`herald ${role} started`, 60_000);
  return p;
}

beforeAll(async () => {
  rmSync(join(ARTIFACTS, "dashboard.png"), { force: true });
  rmSync(join(ARTIFACTS, "dashboard-failed.png"), { force: true });
  if (!existsSync(join(REPO, "dist/web/app.js")) || !existsSync(join(REPO, "dist/src/cli.js"))) {
    throw new Error("dist/ is not built: run `npm run build` (npm test does it first)");
  }
  if (!existsSync(CHROMIUM)) throw new Error(`no browser at ${CHROMIUM}: apt-get install chromium (.ci/run does)`);
  const sinkDir = mkdtempSync(join(tmpdir(), "herald-sink-"));
  const profile = mkdtempSync(join(tmpdir(), "herald-chromium-"));
  tempDirs.push(sinkDir, profile);

  db = await createTestDatabase("herald_web");
  site = await heraldSite(db.url);
  env = site.env({ ...FAST, HERALD_EMAIL_PROVIDER: "sink", HERALD_SINK_DIR: sinkDir });
  [server] = await Promise.all([startRole("server"), startRole("relay"), startRole("scheduler"), startRole("worker", "worker", ["--channel", "email"])]);
  client = createHeraldClient({ address: site.grpcAddress, apiKey: site.apiKey });

  // A persistent context on a fresh profile folder: nothing from another run,
  // and playwright-core never downloads a browser of its own.
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.on("pageerror", (err) => pageProblems.push(`pageerror: ${err.message}`));
  page.on("console", (msg) => {
    // Network-level failures are expected: the stream cut by the kill
    // (ERR_INCOMPLETE_CHUNKED_ENCODING), then fetches refused while the server
    // is down. An HTTP error status (a missing asset, a 503) is not.
    if (msg.type() === "error" && !/^Failed to load resource: net::ERR_/.test(msg.text())) {
      pageProblems.push(`console: ${msg.text()}`);
    }
  });
  dash = dashboardPage(page);
}, 180_000);

afterAll(async () => {
  // The page as it was when the test ended, for whoever reads a failure.
  if (page && !existsSync(join(ARTIFACTS, "dashboard.png"))) {
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, "dashboard-failed.png"), fullPage: true }).catch(() => undefined);
  }
  await context?.close();
  client?.close();
  await Promise.all(processes.map((p) => p.stop("SIGTERM", 15_000)));
  await stopAll("SIGKILL", 5_000);
  await db?.drop();
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
});

/** (id, sequence) of each event, as text, for set and multiset comparisons. */
const keyOf = (e: { id: string; sequence: number }) => `${e.id}#${e.sequence}`;

describe("the dashboard", () => {
  it("sends from the page, shows QUEUED → SENDING → SENT, and resumes after a server crash with no event missing or doubled", { timeout: 240_000 }, async () => {
    const timings: Record<string, number> = {};
    const t0 = Date.now();
    const mark = (what: string) => (timings[what] = Date.now() - t0);

    const response = await page.goto(`${site.httpUrl}/`);
    expect(response?.status()).toBe(200);
    expect(await page.title()).toBe("Herald dashboard");
    await dash.connect(site.apiKey);
    await dash.waitForState("live");
    mark("live");

    // Sent from the page's form, watched on the page's own feed.
    const first = await dash.send({ to: "ada@example.com", userId: "u-dash-1", subject: "Hello from the dashboard", text: "It works." });
    expect(first).toMatch(/^[0-9a-f-]{36}$/);
    await waitFor("the first notification SENT on the page", async () => (await dash.row(first))?.status === "SENT", { everyMs: 100 });
    mark("first SENT");
    expect((await dash.row(first))?.history).toEqual([
      { sequence: 1, status: "QUEUED" },
      { sequence: 2, status: "SENDING" },
      { sequence: 3, status: "SENT" },
    ]);

    // Scheduled far out, and made due only once the server is down (below), so they are
    // released and sent while it is down however slow this machine is today.
    const deliverAt = new Date(Date.now() + 86_400_000);
    const scheduled = await Promise.all(
      Array.from({ length: SCHEDULED }, async (_, i) => {
        const { notification } = await client.schedule({
          notification: {
            channel: Channel.EMAIL,
            recipient: { userId: `u-dash-${i % 2}`, address: { case: "email", value: `user${i}@example.com` } },
            body: { case: "content", value: { subject: `Scheduled #${i}`, text: "Later." } },
          },
          when: { case: "deliverAt", value: timestampFromDate(deliverAt) },
        });
        return notification!.id;
      }),
    );
    await waitFor(
      "the page to show every scheduled notification SCHEDULED",
      async () => (await Promise.all(scheduled.map((id) => dash.row(id)))).every((r) => r?.status === "SCHEDULED"),
      { everyMs: 100 },
    );

    const killed = await server.stop("SIGKILL");
    expect(killed.signal).toBe("SIGKILL");
    mark("server killed");
    await dash.waitForState("reconnecting", 15_000);
    const whileDown = await dash.events();
    await db.pool.query("UPDATE notifications SET deliver_at = now() WHERE id = ANY($1::uuid[])", [scheduled]);

    // Released, queued, claimed and sent with no API server running.
    const all = [first, ...scheduled];
    await waitForStatus(db.pool, scheduled, Status.SENT, { timeoutMs: 30_000, workers: processes });
    mark("scheduled SENT while down");
    // The page cycles reconnecting (with the reason) → connecting (a new attempt, no reason yet)
    // → reconnecting while the server is down: read it in a reconnecting moment.
    const down = await waitFor("the page to be between two attempts", async () => {
      const s = await dash.state();
      return s.state === "reconnecting" ? s : undefined;
    }, { timeoutMs: 30_000, everyMs: 50 });
    expect(down.code, "the page shows why it is reconnecting").not.toBe("");
    // Nothing can have reached the page in the meantime: it was disconnected throughout.
    expect(await dash.events()).toEqual(whileDown);
    expect(whileDown.filter((e) => scheduled.includes(e.id)).map((e) => e.status)).toEqual(Array(SCHEDULED).fill("SCHEDULED"));

    // The same port, so the page's own reconnect loop finds it.
    server = await startRole("server", "server-2");
    mark("server restarted");
    await dash.waitForState("live", 30_000);
    mark("page live again");

    // The live feed works after the resume, too.
    const last = await dash.send({ to: "grace@example.com", userId: "u-dash-3", subject: "After the restart", text: "Still here." });
    all.push(last);
    await waitForStatus(db.pool, [last], Status.SENT, { timeoutMs: 30_000, workers: processes });

    // The server's own record of every event, from Get.
    const histories = new Map<string, PageEvent[]>();
    for (const id of all) {
      const { history } = await client.get({ id });
      histories.set(
        id,
        history.map((e) => ({ id: e.notificationId, sequence: e.sequence, status: Status[e.status] })),
      );
    }
    const expected = [...histories.values()].flat();
    // Not reaching the count is not thrown here: the comparisons below say which events are missing.
    await waitFor("the page to hold every event", async () => (await dash.events()).length >= expected.length, { everyMs: 100 }).then(
      () => mark("page caught up"),
      () => undefined,
    );
    // Time for a late repeat to arrive, if the server were to send one.
    await page.waitForTimeout(1_500);

    const seen = await dash.events();
    const counts = new Map<string, number>();
    for (const e of seen) counts.set(keyOf(e), (counts.get(keyOf(e)) ?? 0) + 1);
    const doubled = [...counts].filter(([, n]) => n > 1).map(([k]) => k);
    expect(doubled, "events shown more than once").toEqual([]);
    expect(seen.map(keyOf).sort()).toEqual(expected.map(keyOf).sort());
    for (const id of all) {
      // Per notification: received in sequence order, each with the status the server recorded.
      expect(seen.filter((e) => e.id === id)).toEqual(histories.get(id));
      expect((await dash.row(id))?.history).toEqual(histories.get(id)!.map(({ sequence, status }) => ({ sequence, status })));
      expect(await dash.rowCount(id)).toBe(1);
    }
    for (const id of scheduled) expect(histories.get(id)!.map((e) => e.status)).toEqual(["SCHEDULED", "QUEUED", "SENDING", "SENT"]);
    expect(pageProblems).toEqual([]);

    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, "dashboard.png"), fullPage: true });
    console.log(`dashboard timings (ms from page load): ${JSON.stringify(timings)}`);
    expect(server.exit(), outputTail(server)).toBeUndefined();
  });
});
