import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import pg from "pg";
import { Channel, Status } from "../../gen/herald/v1/notification_pb.js";
import { createHeraldClient } from "../../src/client/index.js";
import { channelTopic } from "../../src/kafka/topics.js";
import { OUTBOX_CHANNEL } from "../../src/outbox/channel.js";
import type { Figure, LatencySeries, Scenario, TargetCheck } from "../lib/result.js";
import { startStack, type Stack } from "../lib/stack.js";
import { downsample, summarize } from "../lib/stats.js";

// Scenario 4, scheduling precision: N notifications due in the same second, and N spread
// evenly over a window, released by one scheduler process. Three delays after the due time:
//
// - event: the QUEUED event's time. The scheduler stamps it with its clock at the START of the
//   tick, so a bigger batch makes it look earlier than the release really is.
// - committed: when the release became visible (QUEUED in PostgreSQL, its Dispatch in the
//   outbox). PostgreSQL here keeps no commit timestamps, so a watcher LISTENs on the relay's
//   channel (delivered at each release's commit) and reads the newly QUEUED rows; the time
//   its read returned is an upper bound of the commit, late by one round trip at most.
// - in Kafka: the Dispatch outbox row's published_at, set by the relay after Kafka acknowledged it.
//
// The target is judged on `committed`: that is the release (the notification is QUEUED and its
// Dispatch durable); `in Kafka` adds the relay's publishing of the burst, reported beside it.

const CONNECTIONS = 4;
const IN_FLIGHT = 64;
/** Released once before the measured bursts (full runs only). */
const WARMUP = 1000;

type Delays = Record<"event" | "committed" | "kafka", number[]>;

const MEASURES = [
  ["event", "QUEUED event time"],
  ["committed", "committed (visible)"],
  ["kafka", "Dispatch in Kafka"],
] as const;

export const run: Scenario = async (ctx) => {
  const count = ctx.quick ? 2000 : 10_000;
  const spreadSeconds = ctx.quick ? 10 : 60;
  const figures: Figure[] = [];
  const latencies: LatencySeries[] = [];
  const targets: TargetCheck[] = [];
  const stack = await startStack({ name: `sched${ctx.runId}`, roles: ["server", "relay", "scheduler"] });
  try {
    // A scheduler in service has run for a while: one small burst first, not measured, so the
    // measured one meets compiled code rather than a process that has just started.
    if (!ctx.quick) {
      ctx.progress.step(`warm-up: ${WARMUP.toLocaleString("en")} due at once`);
      await measure(stack, WARMUP, 0, "warm", () => {});
    }
    for (const [label, spread] of [
      [`${count.toLocaleString("en")} due in the same second`, 0],
      [`${count.toLocaleString("en")} spread over ${spreadSeconds} s`, spreadSeconds],
    ] as const) {
      ctx.progress.step(`${label}: scheduling`);
      const delays = await measure(stack, count, spread, `s${spread}`, (n) => ctx.progress.step(`${label}: ${n} scheduled`));
      ctx.progress.step(`${label}: released`);
      for (const [key, what] of MEASURES) {
        const summary = summarize(delays[key]);
        figures.push({ name: `release delay to ${what}, ${label}`, latency: summary, extra: { released: delays[key].length } });
        latencies.push({ name: `${label}: ${what}`, samplesMs: downsample(delays[key], 2000) });
        if (spread === 0 && key === "committed") {
          targets.push({
            name: `Scheduled release p99 at ${count.toLocaleString("en")} due in one second`,
            target: "≤ 1 s after due time (committed)",
            actual: `${summary.p99} ms`,
            met: summary.p99 <= 1000 && delays[key].length === count,
          });
        }
      }
    }
  } finally {
    await stack.stop();
  }
  return {
    id: "scheduling",
    title: "Scheduling precision",
    command: `npm run bench -- --only scheduling${ctx.quick ? " --quick" : ""}`,
    method:
      `Schedule over ${CONNECTIONS} grpc-js connections (${IN_FLIGHT} in flight) with deliver_at ahead; one scheduler process ` +
      `(poll ${stack.env.HERALD_SCHEDULER_POLL_MS ?? "200"} ms default, batch ${stack.env.HERALD_SCHEDULER_BATCH ?? "1000"}), relay and server running` +
      `${ctx.quick ? "" : `, after an unmeasured warm-up burst of ${WARMUP.toLocaleString("en")} due at once`}; ` +
      "delay − deliver_at to: the QUEUED event's time (scheduler clock at the start of its tick); the release's commit " +
      "(a LISTEN on the outbox channel, then a read of the newly QUEUED rows: an upper bound); the Dispatch outbox row's published_at (after Kafka's ack). " +
      "The target is judged on the commit.",
    figures,
    latencies,
    targets,
    notes: [
      "A delay below 0 would be a release before the due time; none is allowed (the minimum is reported in the JSON as part of the samples).",
      "The event time is stamped at the start of the scheduler's transaction, so it understates the release by up to one batch; the commit is when the notification is QUEUED for anyone reading, and when its Dispatch can leave for Kafka.",
    ],
  };
};

async function measure(stack: Stack, count: number, spreadSeconds: number, tag: string, progress: (n: number) => void): Promise<Delays> {
  const clients = Array.from({ length: CONNECTIONS }, () => createHeraldClient({ address: stack.grpcAddress, apiKey: stack.apiKey }));
  const watcher = new pg.Client({ connectionString: stack.databaseUrl });
  try {
    // Due far enough ahead that every Schedule is accepted before the first is due.
    const start = Date.now() + Math.max(15_000, count * 3);
    let next = 0;
    await Promise.all(
      Array.from({ length: IN_FLIGHT }, async () => {
        for (let i = next++; i < count; i = next++) {
          const due = spreadSeconds === 0 ? start + 500 : start + (i * spreadSeconds * 1000) / count;
          await clients[i % CONNECTIONS]!.schedule({
            notification: {
              channel: Channel.SMS,
              recipient: { userId: `${tag}-u${i}`, address: { case: "phone", value: "+14155550100" } },
              body: { case: "content", value: { text: "scheduled" } },
            },
            when: { case: "deliverAt", value: timestampFromDate(new Date(due)) },
          });
          if (i % 1000 === 0) progress(i);
        }
      }),
    );
    if (Date.now() > start) throw new Error("scheduling took longer than the lead time; raise it");

    const visibleAt = await watchCommits(watcher, stack.pool, tag);
    const end = start + spreadSeconds * 1000 + 500;
    const deadline = end + 60_000;
    for (;;) {
      await new Promise((r) => setTimeout(r, 500));
      const { rows } = await stack.pool.query<{ n: string }>(
        `SELECT count(*) AS n FROM notifications n
         WHERE user_id LIKE $1 AND (status = $2 OR EXISTS (
           SELECT 1 FROM outbox o WHERE o.notification_id = n.id AND o.topic = $3 AND o.published_at IS NULL))`,
        [`${tag}-%`, Status.SCHEDULED, channelTopic(Channel.SMS)],
      );
      if ((Date.now() > end && Number(rows[0]!.n) === 0) || Date.now() > deadline) break;
    }
    await visibleAt.stop();
    // Three plain reads joined here, each one scan of its table.
    const like = [`${tag}-%`];
    const notifications = await stack.pool.query<{ id: string; due: Date }>(
      "SELECT id, deliver_at AS due FROM notifications WHERE user_id LIKE $1",
      like,
    );
    const events = await stack.pool.query<{ id: string; at: Date }>(
      "SELECT notification_id AS id, created_at AS at FROM status_events WHERE user_id LIKE $1 AND status = $2",
      [...like, Status.QUEUED],
    );
    const published = await stack.pool.query<{ id: string; at: Date }>(
      "SELECT notification_id AS id, published_at AS at FROM outbox WHERE topic = $1 AND key LIKE $2 AND published_at IS NOT NULL",
      [channelTopic(Channel.SMS), ...like],
    );
    const eventAt = new Map(events.rows.map((r) => [r.id, r.at.getTime()]));
    const publishedAt = new Map(published.rows.map((r) => [r.id, r.at.getTime()]));
    const delays: Delays = { event: [], committed: [], kafka: [] };
    for (const { id, due } of notifications.rows) {
      const add = (into: number[], at: number | undefined) => at !== undefined && into.push(at - due.getTime());
      add(delays.event, eventAt.get(id));
      add(delays.committed, visibleAt.seen.get(id));
      add(delays.kafka, publishedAt.get(id));
    }
    return delays;
  } finally {
    await watcher.end().catch(() => {});
    for (const c of clients) c.close();
  }
}

/**
 * Records when each notification of `tag` was first seen QUEUED. Every release NOTIFYs the
 * relay's channel in its transaction, which PostgreSQL delivers at commit; on each one (and
 * every 250 ms, in case) one read takes the QUEUED events newer than those present now. The time
 * the read RETURNED bounds the commit from above; a read started before a commit misses it and
 * the next read (always run after a NOTIFY that arrives mid-read) finds it.
 */
async function watchCommits(
  watcher: pg.Client,
  pool: pg.Pool,
  tag: string,
): Promise<{ seen: Map<string, number>; stop(): Promise<void> }> {
  const seen = new Map<string, number>();
  const { rows } = await pool.query<{ floor: string | null }>("SELECT max(position) AS floor FROM status_events");
  const floor = rows[0]!.floor ?? "0";
  let reading: Promise<void> | undefined;
  let again = false;
  const read = async (): Promise<void> => {
    const result = await pool.query<{ id: string }>(
      `SELECT e.notification_id AS id FROM status_events e
       WHERE e.position > $1 AND e.status = $2 AND e.user_id LIKE $3`,
      [floor, Status.QUEUED, `${tag}-%`],
    );
    const at = Date.now();
    for (const r of result.rows) if (!seen.has(r.id)) seen.set(r.id, at);
  };
  const kick = (): void => {
    if (reading) {
      again = true;
      return;
    }
    reading = (async () => {
      do {
        again = false;
        await read();
      } while (again);
    })()
      .catch(() => {}) // the next kick or the final read covers it
      .finally(() => (reading = undefined));
  };
  await watcher.connect();
  watcher.on("notification", kick);
  await watcher.query(`LISTEN ${OUTBOX_CHANNEL}`);
  const timer = setInterval(kick, 250);
  return {
    seen,
    async stop() {
      clearInterval(timer);
      watcher.removeListener("notification", kick);
      await reading;
      await read(); // anything a missed NOTIFY left: bounded by now, never earlier
    },
  };
}
