import { readFile, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import pg from "pg";
import { Channel } from "../gen/herald/v1/notification_pb.js";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { createHeraldClient, type HeraldClient } from "../src/client/index.js";
import { ensureDatabase } from "../src/store/db.js";
import { startChild, type Child } from "./processes.js";

// Status fan-out: event latency from a worker's status write (StatusEvent.time, the worker's
// clock when it wrote the outcome) to a WatchStatus subscriber, with N subscribers on one API
// instance, and that instance's memory (VmRSS from /proc). Every role is its own process.
//
//   node dist/bench/watch-fanout.js [--subscribers 1000] [--rate 50] [--seconds 20] [--mode user|tenant]
//
// mode user: subscriber i watches recipient i and each notification goes to one recipient,
// so each event reaches one subscriber. mode tenant: every subscriber watches the whole
// tenant, so each event reaches all of them.

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : fallback;
};
const subscribers = Number(arg("subscribers", "1000"));
const rate = Number(arg("rate", "50"));
const seconds = Number(arg("seconds", "20"));
const mode = arg("mode", "user");
const cli = new URL("../src/cli.js", import.meta.url).pathname;
const CONNECTIONS = 8;

const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;

async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
  return kb / 1024;
}

async function main(): Promise<void> {
  const apiKey = randomBytes(16).toString("hex");
  const tag = Date.now().toString(36);
  const dbName = `herald_bench_watch_${tag}`;
  const databaseUrl = `${process.env.BENCH_PG_URL ?? "postgres://postgres@127.0.0.1:5432"}/${dbName}`;
  const sinkDir = await mkdtemp(join(tmpdir(), "herald-bench-sink-"));
  const env = {
    DATABASE_URL: databaseUrl,
    HERALD_API_KEYS: `bench:${apiKey}`,
    HERALD_TOPIC_PREFIX: `benchwatch${tag}.`,
    HERALD_GRPC_ADDR: "127.0.0.1:50351",
    HERALD_HTTP_ADDR: "127.0.0.1:50380",
    HERALD_SMS_PROVIDER: "sink",
    HERALD_SINK_DIR: sinkDir,
    HERALD_WATCH_MAX_STREAMS_PER_KEY: String(subscribers + 10),
    HERALD_WATCH_MAX_STREAMS: String(subscribers + 10),
    HERALD_RELAY_POLL_MS: "100",
    LOG_LEVEL: "info",
  };
  await ensureDatabase(databaseUrl);
  const children: Child[] = [];
  const start = async (role: string[], ready: RegExp) => {
    const c = await startChild([cli, ...role], env, ready);
    children.push(c);
    return c;
  };
  const clients: HeraldClient[] = Array.from({ length: CONNECTIONS }, () => createHeraldClient({ address: env.HERALD_GRPC_ADDR, apiKey }));
  const abort = new AbortController();
  try {
    const server = await start(["server"], /herald server listening/);
    await start(["relay"], /herald relay started/);
    await start(["scheduler"], /herald scheduler started/);
    await start(["worker", "--channel", "sms"], /herald worker started/);
    const pid = server.proc.pid!;
    const rssIdle = await rssMiB(pid);

    const latencies: number[] = [];
    let received = 0;
    let opened = 0;
    const streams = Array.from({ length: subscribers }, async (_, i) => {
      const req = mode === "tenant" ? {} : { selector: { case: "userId" as const, value: `user-${i}` } };
      let caughtUp = false;
      for await (const m of clients[i % CONNECTIONS]!.watchStatus(req, { signal: abort.signal })) {
        if (m.kind.case === "heartbeat") {
          if (!caughtUp) opened++;
          caughtUp = true;
          continue;
        }
        if (m.kind.case !== "event" || !m.kind.value.time) continue;
        received++;
        latencies.push(Date.now() - timestampDate(m.kind.value.time).getTime());
      }
    });
    const ended = Promise.allSettled(streams);
    while (opened < subscribers) await new Promise((r) => setTimeout(r, 50));
    const rssSubscribed = await rssMiB(pid);

    let rssPeak = rssSubscribed;
    const sampler = setInterval(() => void rssMiB(pid).then((v) => (rssPeak = Math.max(rssPeak, v))), 250);
    const total = Math.round(rate * seconds);
    const t0 = performance.now();
    const creates: Promise<unknown>[] = [];
    for (let i = 0; i < total; i++) {
      const wait = t0 + (i * 1000) / rate - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      creates.push(
        clients[i % CONNECTIONS]!.create({
          notification: {
            channel: Channel.SMS,
            recipient: { userId: `user-${i % subscribers}`, address: { case: "phone", value: "+14155550100" } },
            body: { case: "content", value: { text: "fan-out" } },
          },
        }),
      );
    }
    await Promise.all(creates);
    // QUEUED, SENDING, SENT per notification, to one subscriber or to all.
    const expected = total * 3 * (mode === "tenant" ? subscribers : 1);
    const deadline = Date.now() + 120_000;
    while (received < expected && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    clearInterval(sampler);
    const sorted = latencies.sort((x, y) => x - y);
    console.log(
      JSON.stringify({
        scenario: `status fan-out, ${subscribers} subscribers (${mode}), ${rate} notifications/s for ${seconds}s`,
        events: { expected, received },
        latencyMs: { p50: quantile(sorted, 0.5), p99: quantile(sorted, 0.99), max: sorted.at(-1) },
        serverRssMiB: { idle: Math.round(rssIdle), subscribed: Math.round(rssSubscribed), peak: Math.round(rssPeak) },
      }),
    );
    abort.abort();
    await ended;
  } finally {
    abort.abort();
    for (const c of clients) c.close();
    for (const c of children.reverse()) await c.stop();
    const admin = new pg.Client({ connectionString: databaseUrl.replace(`/${dbName}`, "/postgres") });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    await admin.end();
    await rm(sinkDir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
