import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Channel, Status, createHeraldClient, type HeraldClient, type StatusEvent } from "../src/client/index.js";
import { FAST, waitForStatus } from "./e2e/support.js";
import { waitFor } from "./support/wait.js";
import { createTestDatabase, type TestDatabase } from "./support/db.js";
import { heraldSite, outputTail, spawnCli, spawnHerald, stopAll, type ChildHandle, type HeraldProcess, type HeraldSite } from "./support/processes.js";

// `herald watch` as a user runs it: a child process of dist/src/cli.js against Herald as real
// processes (server, relay, scheduler, an email worker delivering to the local sink) on a
// database and topic prefix of its own. What is asserted is what the user sees: the lines on
// stdout, the notes on stderr, the exit code, compared with the history Get returns.

const email = (userId: string) => ({
  channel: Channel.EMAIL,
  recipient: { userId, address: { case: "email" as const, value: `${userId}@example.com` } },
  body: { case: "content" as const, value: { subject: "Hi", text: "Hello" } },
});

/** The complete lines printed so far (a last line still being written is left out). */
const lines = (p: ChildHandle) => p.stdout().slice(0, p.stdout().lastIndexOf("\n") + 1).split("\n").filter(Boolean);

/** A history event as `herald watch` prints it. */
const printed = (id: string, e: StatusEvent) =>
  `${timestampDate(e.time!).toISOString()}  ${id}  ${(Status[e.status] ?? "").padEnd(13)}  attempt=${e.attempt}  ${e.detail}`.trimEnd();

const STOPPED = /^herald: stopped; resume with --after (h2\.[A-Za-z0-9_-]{48})$/;

/**
 * SIGINT (Ctrl-C) or SIGTERM: the exit and the cursor printed last. A watch that does not exit
 * on the signal is killed after 30 s, and its exit then names SIGKILL.
 */
async function stop(watch: ChildHandle, signal: "SIGINT" | "SIGTERM" = "SIGINT"): Promise<{ code: number | null; signal: string | null; cursor: string | undefined }> {
  const exit = await watch.stop(signal, 30_000);
  const last = watch.stderr().trimEnd().split("\n").at(-1) ?? "";
  return { ...exit, cursor: STOPPED.exec(last)?.[1] };
}

const connected = (watch: ChildHandle) =>
  waitFor(`${watch.name} to connect`, () => watch.stderr().includes("herald: watching (Ctrl-C to stop)\n") || watch.exit() !== undefined).then(() => {
    if (watch.exit()) throw new Error(`${watch.name} exited\n${outputTail(watch)}`);
  });

describe("herald watch against real processes", { timeout: 180_000 }, () => {
  let db: TestDatabase;
  let site: HeraldSite;
  let env: Record<string, string>;
  let sinkDir: string;
  let server: HeraldProcess;
  let others: HeraldProcess[] = [];
  let client: HeraldClient;
  /** How the CLI finds the server: the environment, like a user's shell. */
  let cliEnv: Record<string, string>;

  beforeAll(async () => {
    db = await createTestDatabase("herald_cli_watch");
    site = await heraldSite(db.url);
    sinkDir = await mkdtemp(join(tmpdir(), "herald-watch-sink-"));
    env = site.env({
      ...FAST,
      HERALD_EMAIL_PROVIDER: "sink",
      HERALD_SINK_DIR: sinkDir,
      // Heartbeats and the feed's look into PostgreSQL at test speed.
      HERALD_WATCH_HEARTBEAT_MS: "500",
      HERALD_WATCH_POLL_MS: "200",
    });
    cliEnv = { HERALD_GRPC_ADDR: site.grpcAddress, HERALD_API_KEY: site.apiKey };
    server = spawnHerald("server", env);
    others = [spawnHerald("relay", env), spawnHerald("scheduler", env), spawnHerald("worker", env, "worker", ["--channel", "email"])];
    await Promise.all([server, ...others].map((p) => p.waitForLog(`herald ${p.role} started`, 60_000)));
    client = createHeraldClient({ address: site.grpcAddress, apiKey: site.apiKey });
  });

  afterAll(async () => {
    client?.close();
    // The roles, and any watch a failed test left running.
    await stopAll("SIGTERM", 15_000);
    await db?.drop();
    if (sinkDir) await rm(sinkDir, { recursive: true, force: true });
  });

  it("--id: prints one line per status the notification enters, in order; Ctrl-C exits 0 with the cursor", async () => {
    // Scheduled far out and made due once the watch is up, so nothing happens to it before.
    const deliverAt = new Date(Date.now() + 86_400_000);
    const { notification } = await client.schedule({ notification: email("u-one"), when: { case: "deliverAt", value: timestampFromDate(deliverAt) } });
    const id = notification!.id;

    const watch = spawnCli(["watch", "--id", id], { env: cliEnv });
    await connected(watch);
    await db.pool.query("UPDATE notifications SET deliver_at = now() WHERE id = $1", [id]);

    await waitFor("the SENT line", () => lines(watch).some((l) => l.includes(" SENT ")));
    const { history } = await client.get({ id });
    expect(history.map((e) => Status[e.status])).toEqual(["SCHEDULED", "QUEUED", "SENDING", "SENT"]);
    // Live from the moment it connected: everything after SCHEDULED, exactly once, as Get has it.
    expect(lines(watch)).toEqual(history.slice(1).map((e) => printed(id, e)));

    const stopped = await stop(watch);
    expect(stopped, outputTail(watch)).toMatchObject({ code: 0, signal: null });
    expect(stopped.cursor, watch.stderr()).toBeDefined();

    // The printed cursor resumes after the last event: nothing is repeated.
    const resumed = spawnCli(["watch", "--id", id, "--after", stopped.cursor!], { env: cliEnv });
    await connected(resumed);
    await new Promise((r) => setTimeout(r, 1_200)); // a couple of heartbeats
    expect(await stop(resumed, "SIGTERM")).toMatchObject({ code: 0, signal: null, cursor: expect.any(String) as string });
    expect(resumed.stdout()).toBe("");

    // --snapshot starts with the current state.
    const snap = spawnCli(["watch", "--id", id, "--snapshot"], { env: cliEnv });
    await waitFor("the snapshot line", () => lines(snap)[0]);
    expect(lines(snap)).toEqual([expect.stringMatching(new RegExp(`^\\S+  ${id}  snapshot SENT\\s+attempt=1$`)) as string]);
    expect(await stop(snap)).toMatchObject({ code: 0, signal: null });
  });

  it("an unknown --id exits 1 with NOT_FOUND; a malformed --after exits 1 with INVALID_ARGUMENT", async () => {
    const unknown = "0193a0c4-0000-7000-8000-000000000001";
    const notFound = spawnCli(["watch", "--id", unknown], { env: cliEnv });
    expect(await notFound.exited).toEqual({ code: 1, signal: null });
    expect(notFound.stderr()).toBe(`herald: [not_found] notification ${unknown} not found\n`);

    const badCursor = spawnCli(["watch", "--after", "not-a-cursor"], { env: cliEnv });
    expect(await badCursor.exited).toEqual({ code: 1, signal: null });
    expect(badCursor.stderr()).toMatch(/^herald: \[invalid_argument\] after: .+\n$/);
  });

  it("--all: resumes by itself when the server restarts mid-stream, and prints every event exactly once", async () => {
    // Flags this time, not the environment.
    const watch = spawnCli(["watch", "--all", "--json", "--addr", site.grpcAddress, "--api-key", site.apiKey]);
    await connected(watch);

    // Due one after another through the window in which the server will be down: the
    // scheduler and the worker go on producing their events without it.
    const t0 = Date.now();
    const scheduled = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        client.schedule({ notification: email(`u-s${i}`), when: { case: "deliverAt", value: timestampFromDate(new Date(t0 + 1_500 + i * 400)) } }),
      ),
    );
    const before = await Promise.all(Array.from({ length: 3 }, (_, i) => client.create({ notification: email(`u-b${i}`) })));
    const ids = [...scheduled, ...before].map((r) => r.notification!.id);
    await waitFor("an event on stdout", () => lines(watch).length > 0);

    const stoppedAt = Date.now();
    const exit = await server.stop("SIGTERM", 20_000);
    expect(exit, outputTail(server)).toEqual({ code: 0, signal: null });
    await waitFor("the interruption note", () => watch.stderr().includes("herald: stream interrupted"));
    await new Promise((r) => setTimeout(r, 2_000));
    server = spawnHerald("server", env, "server-2");
    await server.waitForLog("herald server started", 60_000);
    const restartedAt = Date.now();
    const after = await Promise.all(Array.from({ length: 3 }, (_, i) => client.create({ notification: email(`u-a${i}`) })));
    ids.push(...after.map((r) => r.notification!.id));

    await waitForStatus(db.pool, ids, Status.SENT, { timeoutMs: 60_000, workers: others });
    const histories = new Map(await Promise.all(ids.map(async (id) => [id, (await client.get({ id })).history] as const)));
    const total = [...histories.values()].reduce((n, h) => n + h.length, 0);
    await waitFor(`all ${total} events on stdout`, () => lines(watch).length >= total);
    // Heartbeats pass; nothing more may follow.
    await new Promise((r) => setTimeout(r, 1_200));

    const seen = lines(watch).map((l) => JSON.parse(l) as { cursor: string; event?: { notificationId: string; sequence: number; status: string } });
    const printedById = new Map<string, Array<[number, string]>>();
    for (const m of seen) {
      expect(m.event, JSON.stringify(m)).toBeDefined();
      const list = printedById.get(m.event!.notificationId) ?? [];
      list.push([m.event!.sequence, m.event!.status]);
      printedById.set(m.event!.notificationId, list);
    }
    // Every event of every notification, exactly once and in its order, and nothing else.
    expect(new Set(printedById.keys())).toEqual(new Set(ids));
    for (const [id, history] of histories) {
      expect(printedById.get(id), id).toEqual(history.map((e) => [e.sequence, `STATUS_${Status[e.status]}`]));
    }
    expect(seen).toHaveLength(total);
    expect(new Set(seen.map((m) => m.cursor)).size).toBe(total);

    // The outage was real: events happened while no server was up, and the CLI said what it did.
    const during = [...histories.values()].flat().filter((e) => {
      const at = timestampDate(e.time!).getTime();
      return at > stoppedAt && at < restartedAt;
    });
    expect(during.length).toBeGreaterThan(0);
    expect(watch.stderr()).toMatch(/herald: stream interrupted \(unavailable: [^\n]*\); resuming after h2\.[A-Za-z0-9_-]{48} in \d\.\ds\n/);
    expect(watch.stderr()).toMatch(/herald: resumed after h2\.[A-Za-z0-9_-]{48}\n/);

    const stopped = await stop(watch);
    expect(stopped, outputTail(watch)).toMatchObject({ code: 0, signal: null });
    expect(stopped.cursor, watch.stderr()).toBeDefined();
  });
});
