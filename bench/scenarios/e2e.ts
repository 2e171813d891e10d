import { cpus } from "node:os";
import { Channel, Status } from "../../gen/herald/v1/notification_pb.js";
import { createHeraldClient, type HeraldClient } from "../../src/client/index.js";
import { channelTopic } from "../../src/kafka/topics.js";
import { cpuExtra, ms3, perCall, withCpu } from "../lib/machine-cpu.js";
import { offeredLoad } from "../lib/offered-load.js";
import type { Figure, LatencySeries, LatencySummary, Scenario, TargetCheck, TimeSeries } from "../lib/result.js";
import { startSlowProvider } from "../lib/slow-provider.js";
import { startStack, type Stack } from "../lib/stack.js";
import { downsample, perSecond, summarize } from "../lib/stats.js";

// Scenario 3, end to end: Create → SENT at fixed offered rates, every role its own process
// (server, relay, scheduler, one SMS worker), with the local sink provider and with the 50 ms
// Twilio-style stand-in. Latency is from
// the notification's accept (its created_at, the server's clock) to its SENT event (the
// worker's clock, same machine); throughput is SENT events per second.

const CONNECTIONS = 4;
const cores = cpus().length;

/** Sends in flight per worker with the 50 ms stand-in: 128 allow 2,560/s, so the provider never caps a level. */
const STANDIN_CONCURRENCY = 128;
const STANDIN_DELAY_MS = 50;

interface Variant {
  label: string;
  /** Short, for chart series. */
  short: string;
  rates: number[];
  env: Record<string, string>;
}

export const run: Scenario = async (ctx) => {
  const seconds = ctx.quick ? 3 : 10;
  const figures: Figure[] = [];
  const latencies: LatencySeries[] = [];
  const timeseries: TimeSeries[] = [];
  const targets: TargetCheck[] = [];
  const notes: string[] = [];
  const provider = await startSlowProvider({ delayMs: STANDIN_DELAY_MS });
  const variants: Variant[] = [
    { label: "local sink", short: "sink", rates: ctx.quick ? [200, 1000] : [200, 1000, 2000], env: {} },
    {
      label: `${STANDIN_DELAY_MS} ms provider stand-in`,
      short: `${STANDIN_DELAY_MS} ms provider`,
      rates: ctx.quick ? [200] : [200, 1000, 2000],
      env: { ...provider.heraldEnv, HERALD_WORKER_CONCURRENCY: String(STANDIN_CONCURRENCY) },
    },
  ];
  try {
    for (const [v, variant] of variants.entries()) {
      const stack = await startStack({ name: `e2e${ctx.runId}${v}`, roles: ["server", "relay", "scheduler", "worker:sms"], env: variant.env });
      const clients = Array.from({ length: CONNECTIONS }, () => createHeraldClient({ address: stack.grpcAddress, apiKey: stack.apiKey }));
      try {
        for (const rate of variant.rates) {
          ctx.progress.step(`${variant.label}, ${rate}/s offered for ${seconds}s`);
          const pids = { server: stack.pid("server"), relay: stack.pid("relay"), scheduler: stack.pid("scheduler"), worker: stack.pid("worker:sms"), generator: process.pid };
          const { result: level, cpu } = await withCpu(pids, () => runLevel(stack, clients, rate, seconds, `r${rate}`));
          const use = { ...cpu, calls: level.endToEndMs.length };
          figures.push({
            name: `Create → SENT, ${variant.label}, ${rate}/s offered`,
            throughput: { value: level.deliveriesPerSecond, unit: "deliveries/s" },
            latency: summarize(level.endToEndMs),
            errors: level.createErrors,
            extra: {
              offered: level.offered,
              created: level.created,
              "drained after (s)": level.drainSeconds,
              "Create p99 ms": summarize(level.createMs).p99,
              "to Kafka ack p50/p99 ms": `${level.stages.published.p50} / ${level.stages.published.p99}`,
              "to claim p50/p99 ms": `${level.stages.claimed.p50} / ${level.stages.claimed.p99}`,
              ...cpuExtra(use, "notification"),
            },
          });
          latencies.push({ name: `${variant.short} ${rate}/s`, samplesMs: downsample(level.endToEndMs, 2000) });
          timeseries.push({ name: `SENT/s, ${variant.short}, ${rate}/s offered`, unit: "deliveries/s", points: level.sentPerSecond });
          if (v === 0 && rate === 1000) {
            // What one notification costs the whole machine, from Create to SENT: the rate this
            // machine could sustain with every core busy and nothing else running.
            const machineMs = perCall(use.busy, use.calls);
            notes.push(
              `At ${rate}/s offered (local sink) a notification cost ${ms3(machineMs)} ms of machine CPU from Create to SENT (split by process in the table); ` +
                `${cores} cores busy with nothing else would sustain at most ${Math.round((cores * 1000) / machineMs).toLocaleString("en")} notifications/s at that cost.`,
            );
            const p99 = summarize(level.endToEndMs).p99;
            targets.push({ name: "End to end (local sink) p99 at 1,000/s", target: "≤ 100 ms", actual: `${p99} ms`, met: p99 <= 100 });
          }
        }
      } finally {
        for (const c of clients) c.close();
        await stack.stop();
      }
    }
    notes.push(
      "Stages, each from the notification's accept: \"to Kafka ack\" is when the relay marked its Dispatch's outbox row, at most one relay cycle after Kafka acknowledged it (database clock); \"to claim\" is its SENDING event (the worker's clock); the rest, to SENT, is rendering, the send and the outcome.",
      `The ${STANDIN_DELAY_MS} ms stand-in is the Twilio-style server of the alternatives scenario (its own process); the worker runs ${STANDIN_CONCURRENCY} sends in flight there (HERALD_WORKER_CONCURRENCY), so the provider allows ${((STANDIN_CONCURRENCY * 1000) / STANDIN_DELAY_MS).toLocaleString("en")}/s and never caps a level; its latencies include the ${STANDIN_DELAY_MS} ms.`,
      "Every role is a separate Node process, and PostgreSQL, Kafka and the load generator share the same 2 cores: the figures are what one small machine does with everything on it.",
    );
  } finally {
    await provider.stop();
  }
  return {
    id: "e2e",
    title: "End to end: Create → SENT at fixed offered rates",
    command: `npm run bench -- --only e2e${ctx.quick ? " --quick" : ""}`,
    method: `Node open-loop generator (Create i starts at t0 + i/rate over ${CONNECTIONS} grpc-js connections); latency from PostgreSQL: SENT event time − notification created_at`,
    figures,
    latencies,
    timeseries,
    targets,
    notes,
  };
};

interface LevelResult {
  offered: number;
  created: number;
  createErrors: number;
  createMs: number[];
  endToEndMs: number[];
  /** Time from accept to the Dispatch's Kafka ack, and to the worker's claim. */
  stages: { published: LatencySummary; claimed: LatencySummary };
  deliveriesPerSecond: number;
  drainSeconds: number;
  sentPerSecond: Array<[number, number]>;
}

async function runLevel(stack: Stack, clients: HeraldClient[], rate: number, seconds: number, tag: string): Promise<LevelResult> {
  const load = await offeredLoad({
    rate,
    seconds,
    call: (i) =>
      clients[i % clients.length]!.create({
        notification: {
          channel: Channel.SMS,
          recipient: { userId: `${tag}-u${i % 2000}`, address: { case: "phone", value: "+14155550100" } },
          body: { case: "content", value: { text: `Your code is ${100000 + (i % 900000)}` } },
        },
      }),
  });
  const loadEnd = Date.now();
  // Wait until every accepted notification of this level is SENT (or give up after 2 minutes).
  const deadline = Date.now() + 120_000;
  for (;;) {
    const { rows } = await stack.pool.query<{ pending: string }>(
      "SELECT count(*) AS pending FROM notifications WHERE user_id LIKE $1 AND status <> $2",
      [`${tag}-%`, Status.SENT],
    );
    if (Number(rows[0]!.pending) === 0 || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  const drainSeconds = Math.round((Date.now() - loadEnd) / 100) / 10;
  // Each notification's path in stages: accepted (created_at) → its Dispatch acknowledged by
  // Kafka (the relay marks the outbox row after the ack) → claimed by the worker (SENDING) → SENT.
  const { rows } = await stack.pool.query<{ ms: number; sent_at: Date; published_ms: number; claimed_ms: number }>(
    `SELECT extract(epoch FROM (e.created_at - n.created_at)) * 1000 AS ms, e.created_at AS sent_at,
            extract(epoch FROM (o.published_at - n.created_at)) * 1000 AS published_ms,
            extract(epoch FROM (c.created_at - n.created_at)) * 1000 AS claimed_ms
     FROM notifications n
     JOIN status_events e ON e.notification_id = n.id AND e.status = $2
     JOIN status_events c ON c.notification_id = n.id AND c.status = $3
     JOIN outbox o ON o.notification_id = n.id AND o.topic = $4
     WHERE n.user_id LIKE $1`,
    [`${tag}-%`, Status.SENT, Status.SENDING, channelTopic(Channel.SMS)],
  );
  const sentAt = rows.map((r) => r.sent_at.getTime()).sort((a, b) => a - b);
  const span = sentAt.length > 1 ? (sentAt.at(-1)! - sentAt[0]!) / 1000 : 0;
  return {
    offered: load.offeredPerSecond,
    created: load.ok,
    createErrors: load.errors,
    createMs: load.latenciesMs,
    endToEndMs: rows.map((r) => Number(r.ms)),
    stages: {
      published: summarize(rows.map((r) => Number(r.published_ms))),
      claimed: summarize(rows.map((r) => Number(r.claimed_ms))),
    },
    deliveriesPerSecond: span > 0 ? Math.round(sentAt.length / span) : sentAt.length,
    drainSeconds,
    sentPerSecond: perSecond(sentAt, load.wallT0),
  };
}
