import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Channel, Status } from "../../gen/herald/v1/notification_pb.js";
import { createHeraldClient } from "../../src/client/index.js";
import type { Figure, LatencySeries, Scenario, TargetCheck } from "../lib/result.js";
import { startStack, type Stack } from "../lib/stack.js";
import { downsample, summarize } from "../lib/stats.js";

// Scenario 4, scheduling precision: N notifications due in the same second, and N spread
// evenly over a window, released by one scheduler process. The release delay is the QUEUED
// event's time (the scheduler's clock) minus the notification's due time.

const CONNECTIONS = 4;
const IN_FLIGHT = 64;

export const run: Scenario = async (ctx) => {
  const count = ctx.quick ? 2000 : 10_000;
  const spreadSeconds = ctx.quick ? 10 : 60;
  const figures: Figure[] = [];
  const latencies: LatencySeries[] = [];
  const targets: TargetCheck[] = [];
  const stack = await startStack({ name: `sched${ctx.runId}`, roles: ["server", "relay", "scheduler"] });
  try {
    for (const [label, spread] of [
      [`${count.toLocaleString("en")} due in the same second`, 0],
      [`${count.toLocaleString("en")} spread over ${spreadSeconds} s`, spreadSeconds],
    ] as const) {
      ctx.progress.step(`${label}: scheduling`);
      const delays = await measure(stack, count, spread, `s${spread}`, (n) => ctx.progress.step(`${label}: ${n} scheduled`));
      ctx.progress.step(`${label}: released`);
      const summary = summarize(delays);
      figures.push({ name: `release delay, ${label}`, latency: summary, extra: { released: delays.length } });
      latencies.push({ name: label, samplesMs: downsample(delays, 2000) });
      if (spread === 0) {
        targets.push({
          name: `Scheduled release p99 at ${count.toLocaleString("en")} due in one second`,
          target: "≤ 1 s after due time",
          actual: `${summary.p99} ms`,
          met: summary.p99 <= 1000 && delays.length === count,
        });
      }
    }
  } finally {
    await stack.stop();
  }
  return {
    id: "scheduling",
    title: "Scheduling precision",
    command: `npm run bench -- --only scheduling${ctx.quick ? " --quick" : ""}`,
    method: `Schedule over ${CONNECTIONS} grpc-js connections (${IN_FLIGHT} in flight) with deliver_at ahead; one scheduler process (poll ${stack.env.HERALD_SCHEDULER_POLL_MS ?? "200"} ms default, batch 1000); delay = QUEUED event time − deliver_at, from PostgreSQL`,
    figures,
    latencies,
    targets,
    notes: ["A delay below 0 would be a release before the due time; none is allowed (the minimum is reported in the JSON as part of the samples)."],
  };
};

async function measure(stack: Stack, count: number, spreadSeconds: number, tag: string, progress: (n: number) => void): Promise<number[]> {
  const clients = Array.from({ length: CONNECTIONS }, () => createHeraldClient({ address: stack.grpcAddress, apiKey: stack.apiKey }));
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
    const end = start + spreadSeconds * 1000 + 500;
    const deadline = end + 60_000;
    for (;;) {
      await new Promise((r) => setTimeout(r, 500));
      const { rows } = await stack.pool.query<{ n: string }>(
        "SELECT count(*) AS n FROM notifications WHERE user_id LIKE $1 AND status = $2",
        [`${tag}-%`, Status.SCHEDULED],
      );
      if ((Date.now() > end && Number(rows[0]!.n) === 0) || Date.now() > deadline) break;
    }
    const { rows } = await stack.pool.query<{ ms: number }>(
      `SELECT extract(epoch FROM (e.created_at - n.deliver_at)) * 1000 AS ms
       FROM notifications n JOIN status_events e ON e.notification_id = n.id AND e.status = $2
       WHERE n.user_id LIKE $1`,
      [`${tag}-%`, Status.QUEUED],
    );
    return rows.map((r) => Number(r.ms));
  } finally {
    for (const c of clients) c.close();
  }
}
