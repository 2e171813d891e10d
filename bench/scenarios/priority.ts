import { Channel, Priority, Status } from "../../gen/herald/v1/notification_pb.js";
import { createHeraldClient, type HeraldClient } from "../../src/client/index.js";
import { channelTopic } from "../../src/kafka/topics.js";
import { offeredLoad } from "../lib/offered-load.js";
import type { Figure, LatencySeries, LatencySummary, Scenario, TargetCheck } from "../lib/result.js";
import { startStack, type Stack } from "../lib/stack.js";
import { downsample, summarize } from "../lib/stats.js";

// Priority lanes (issue 15): how long a PRIORITY_HIGH notification takes from Create to SENT
// while a deep backlog of PRIORITY_LOW ones waits on the same channel, with lanes on (the
// default: herald.sms.high has its own consumer) and off (HERALD_PRIORITY_LANES=off: every
// Dispatch on herald.sms, as before lanes). Each variant: server, relay and scheduler run; the
// backlog is created and published to Kafka with no worker running; then one SMS worker (local
// sink) starts, and once it delivers the backlog, high-priority Creates arrive at a fixed rate.
// Latency from PostgreSQL, as in e2e: SENT event time − created_at.

const CONNECTIONS = 4;
const IN_FLIGHT = 64;
/** High-priority Creates per second while the backlog drains. */
const HIGH_RATE = 20;

interface Variant {
  label: string;
  lanes: boolean;
}

export const run: Scenario = async (ctx) => {
  const backlog = ctx.quick ? 5000 : 50_000;
  const highSeconds = ctx.quick ? 2 : 5;
  const figures: Figure[] = [];
  const latencies: LatencySeries[] = [];
  const targets: TargetCheck[] = [];
  const variants: Variant[] = [
    { label: "lanes on", lanes: true },
    { label: "lanes off (one topic, as before)", lanes: false },
  ];
  for (const [v, variant] of variants.entries()) {
    const stack = await startStack({
      name: `prio${ctx.runId}${v}`,
      roles: ["server", "relay", "scheduler"],
      env: { HERALD_PRIORITY_LANES: variant.lanes ? "on" : "off" },
    });
    const clients = Array.from({ length: CONNECTIONS }, () => createHeraldClient({ address: stack.grpcAddress, apiKey: stack.apiKey }));
    try {
      const tag = `p${v}`;
      ctx.progress.step(`${variant.label}: creating ${backlog.toLocaleString("en")} low priority, no worker running`);
      await createBacklog(clients, backlog, `${tag}-low`, (n) => ctx.progress.step(`${variant.label}: ${n.toLocaleString("en")} low priority created`));
      ctx.progress.step(`${variant.label}: waiting for the backlog to reach Kafka`);
      await until(() => unpublished(stack), (n) => n === 0, 300_000, "the backlog's Dispatches were not all published");
      ctx.progress.step(`${variant.label}: worker started, draining`);
      await stack.start("worker:sms");
      await until(() => sentCount(stack, `${tag}-low-%`), (n) => n > 0, 120_000, "the worker delivered nothing");
      ctx.progress.step(`${variant.label}: ${HIGH_RATE}/s high priority for ${highSeconds} s`);
      const load = await offeredLoad({
        rate: HIGH_RATE,
        seconds: highSeconds,
        call: (i) =>
          clients[i % CONNECTIONS]!.create({
            notification: {
              channel: Channel.SMS,
              priority: Priority.HIGH,
              recipient: { userId: `${tag}-high-u${i}`, address: { case: "phone", value: "+14155550101" } },
              body: { case: "content", value: { text: `Your sign-in code is ${100000 + i}` } },
            },
          }),
      });
      ctx.progress.step(`${variant.label}: waiting for every high priority SENT`);
      await until(() => sentCount(stack, `${tag}-high-%`), (n) => n >= load.ok, 600_000, "not every high priority notification was SENT");
      const { highMs, stages, lowLeft } = await measure(stack, tag, backlog);
      const summary = summarize(highMs);
      figures.push({
        name: `high priority Create → SENT, ${backlog.toLocaleString("en")} low priority queued, ${variant.label}`,
        latency: summary,
        errors: load.errors,
        extra: {
          "high priority sent": highMs.length,
          "to Kafka ack p50/p99 ms": `${stages.published.p50} / ${stages.published.p99}`,
          "to claim p50/p99 ms": `${stages.claimed.p50} / ${stages.claimed.p99}`,
          "low priority still queued at the first high SENT": lowLeft.first,
          "low priority still queued at the last high SENT": lowLeft.last,
        },
      });
      latencies.push({ name: `high, ${variant.label}`, samplesMs: downsample(highMs, 2000) });
      if (variant.lanes) {
        targets.push({
          name: `High priority Create → SENT p99 behind ${backlog.toLocaleString("en")} queued low priority`,
          target: "≤ 200 ms",
          actual: `${summary.p99} ms`,
          met: summary.p99 <= 200 && highMs.length === load.ok,
        });
      }
    } finally {
      for (const c of clients) c.close();
      await stack.stop();
    }
  }
  return {
    id: "priority",
    title: "Priority lanes: high priority behind a backlog",
    command: `npm run bench -- --only priority${ctx.quick ? " --quick" : ""}`,
    method:
      `${backlog.toLocaleString("en")} PRIORITY_LOW SMS created (${IN_FLIGHT} in flight over ${CONNECTIONS} grpc-js connections) and published to Kafka with no worker; ` +
      `one SMS worker process (local sink) started; once it delivers, PRIORITY_HIGH Creates at ${HIGH_RATE}/s for ${highSeconds} s (open loop); ` +
      "latency from PostgreSQL: SENT event time − created_at. Run with priority lanes on, then off (HERALD_PRIORITY_LANES=off), each on its own stack.",
    figures,
    latencies,
    targets,
    notes: [
      "\"Still queued\" counts the low-priority notifications not yet SENT when a high-priority one was: with lanes on it shows the backlog the high ones went past.",
      "With lanes off a high-priority Dispatch sits on herald.sms behind the whole backlog, as it did before lanes: its latency is the backlog's drain time.",
    ],
  };
};

async function createBacklog(clients: HeraldClient[], count: number, tag: string, progress: (n: number) => void): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      for (let i = next++; i < count; i = next++) {
        await clients[i % CONNECTIONS]!.create({
          notification: {
            channel: Channel.SMS,
            priority: Priority.LOW,
            recipient: { userId: `${tag}-u${i % 2000}`, address: { case: "phone", value: "+14155550100" } },
            body: { case: "content", value: { text: `Weekly digest ${i}` } },
          },
        });
        if (i % 5000 === 0) progress(i);
      }
    }),
  );
}

async function unpublished(stack: Stack): Promise<number> {
  const { rows } = await stack.pool.query<{ n: string }>("SELECT count(*) AS n FROM outbox WHERE published_at IS NULL AND topic = $1", [
    channelTopic(Channel.SMS),
  ]);
  return Number(rows[0]!.n);
}

async function sentCount(stack: Stack, like: string): Promise<number> {
  const { rows } = await stack.pool.query<{ n: string }>("SELECT count(*) AS n FROM notifications WHERE user_id LIKE $1 AND status = $2", [
    like,
    Status.SENT,
  ]);
  return Number(rows[0]!.n);
}

/** Polls `read` until `done` holds, or throws `what` after `ms`. */
async function until<T>(read: () => Promise<T>, done: (v: T) => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (done(await read())) return;
    if (Date.now() > deadline) throw new Error(`${what} within ${ms / 1000} s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

interface Measured {
  highMs: number[];
  /** From accept to the Dispatch's Kafka ack (the relay marks its outbox row then), and to the worker's claim (SENDING). */
  stages: { published: LatencySummary; claimed: LatencySummary };
  lowLeft: { first: number; last: number };
}

/** Each high-priority notification's Create → SENT and its stages, and the low-priority ones not yet SENT at the first and last of them. */
async function measure(stack: Stack, tag: string, backlog: number): Promise<Measured> {
  // The outbox row names the high lane's topic whether lanes are on or off (the relay maps it).
  const { rows } = await stack.pool.query<{ ms: number; sent_at: Date; published_ms: number | null; claimed_ms: number }>(
    `SELECT extract(epoch FROM (e.created_at - n.created_at)) * 1000 AS ms, e.created_at AS sent_at,
            extract(epoch FROM (o.published_at - n.created_at)) * 1000 AS published_ms,
            extract(epoch FROM (c.created_at - n.created_at)) * 1000 AS claimed_ms
     FROM notifications n
     JOIN status_events e ON e.notification_id = n.id AND e.status = $2
     JOIN status_events c ON c.notification_id = n.id AND c.status = $3 AND c.attempt = 1
     LEFT JOIN outbox o ON o.notification_id = n.id AND o.topic = $4
     WHERE n.user_id LIKE $1 ORDER BY e.created_at`,
    [`${tag}-high-%`, Status.SENT, Status.SENDING, channelTopic(Channel.SMS, "high")],
  );
  const lowSentBefore = async (at: Date) => {
    const r = await stack.pool.query<{ n: string }>(
      "SELECT count(*) AS n FROM status_events WHERE user_id LIKE $1 AND status = $2 AND created_at <= $3",
      [`${tag}-low-%`, Status.SENT, at],
    );
    return backlog - Number(r.rows[0]!.n);
  };
  const first = rows[0] ? await lowSentBefore(rows[0].sent_at) : 0;
  const last = rows.at(-1) ? await lowSentBefore(rows.at(-1)!.sent_at) : 0;
  return {
    highMs: rows.map((r) => Number(r.ms)),
    stages: {
      published: summarize(rows.flatMap((r) => (r.published_ms === null ? [] : [Number(r.published_ms)]))),
      claimed: summarize(rows.map((r) => Number(r.claimed_ms))),
    },
    lowLeft: { first, last },
  };
}
