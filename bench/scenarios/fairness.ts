import { randomBytes } from "node:crypto";
import { Channel, Status } from "../../gen/herald/v1/notification_pb.js";
import { createHeraldClient, type HeraldClient } from "../../src/client/index.js";
import { offeredLoad, type OfferedResult } from "../lib/offered-load.js";
import type { Figure, LatencySeries, Scenario } from "../lib/result.js";
import { startStack, type Stack } from "../lib/stack.js";
import { downsample, summarize } from "../lib/stats.js";

// Fair share between tenants (issue 17): tenant B's Create → SENT while tenant A offers 10× B's
// rate on the same channel, together more than the channel's provider rate. Three variants, each on
// its own stack (server, relay, scheduler, one SMS worker with the local sink):
//   - fair delivery on (the default: the worker's slots go round robin between tenants);
//   - fair delivery off (HERALD_FAIR_DELIVERY=off: first come, first served, as before);
//   - fair delivery off, with tenant A held to an accept quota below the channel's rate.
// Latency from PostgreSQL, as in e2e: SENT event time − created_at.

// Low rates on purpose: the channel's rate limit, not the machine's CPU, must be the bottleneck
// (at 200/s on a shared 2-core machine every stage queued and the variants measured the load).
/** The channel's provider rate (HERALD_RATE_LIMIT_SMS). */
const CHANNEL_RATE = 40;
/** Tenant B's offered rate; tenant A offers ten times it: 44/s in all, 10% over the channel's rate. */
const B_RATE = 4;
const A_RATE = 10 * B_RATE;
/** Tenant A's quota in the third variant: with B's 4/s, under the channel's rate. */
const A_QUOTA = 32;
const CONNECTIONS = 4;

interface Variant {
  label: string;
  env: Record<string, string>;
}

export const run: Scenario = async (ctx) => {
  // Long enough for the backlog (4/s) to matter: without fairness B's wait grows by 100 ms a second.
  const seconds = ctx.quick ? 20 : 60;
  const figures: Figure[] = [];
  const latencies: LatencySeries[] = [];
  const variants: Variant[] = [
    { label: "fair delivery on", env: { HERALD_FAIR_DELIVERY: "on" } },
    { label: "fair delivery off (first come, first served)", env: { HERALD_FAIR_DELIVERY: "off" } },
    { label: `fair delivery off, tenant A quota ${A_QUOTA}/s`, env: { HERALD_FAIR_DELIVERY: "off", HERALD_TENANT_QUOTAS: `tenant-a=${A_QUOTA}/s burst ${A_QUOTA}` } },
  ];
  for (const [v, variant] of variants.entries()) {
    const keyA = randomBytes(16).toString("hex");
    const keyB = randomBytes(16).toString("hex");
    const stack = await startStack({
      name: `fair${ctx.runId}${v}`,
      roles: ["server", "relay", "scheduler", "worker:sms"],
      env: { HERALD_API_KEYS: `tenant-a:${keyA},tenant-b:${keyB}`, HERALD_RATE_LIMIT_SMS: String(CHANNEL_RATE), ...variant.env },
    });
    const clients = (key: string) => Array.from({ length: CONNECTIONS }, () => createHeraldClient({ address: stack.grpcAddress, apiKey: key }));
    const [a, b] = [clients(keyA), clients(keyB)];
    try {
      const tag = `f${v}`;
      ctx.progress.step(`${variant.label}: tenant A ${A_RATE}/s and tenant B ${B_RATE}/s for ${seconds} s, channel limit ${CHANNEL_RATE}/s`);
      const [loadA, loadB] = await Promise.all([offer(a, A_RATE, seconds, `${tag}-a`), offer(b, B_RATE, seconds, `${tag}-b`)]);
      ctx.progress.step(`${variant.label}: waiting for tenant B's notifications to be SENT`);
      await until(() => sentCount(stack, `${tag}-b-%`), (n) => n >= loadB.ok, 600_000, "not every tenant B notification was SENT");
      const aLeft = loadA.ok - (await sentCount(stack, `${tag}-a-%`));
      const bMs = await sentLatencies(stack, `${tag}-b-%`, Status.SENT);
      const aMs = await sentLatencies(stack, `${tag}-a-%`, Status.SENT);
      // Where B's time went: accept to the worker's claim (relay, Kafka, the worker's queue for a
      // slot) and the rest (send slot, rate limit, send, outcome).
      const bClaim = summarize(await sentLatencies(stack, `${tag}-b-%`, Status.SENDING));
      const summary = summarize(bMs);
      figures.push({
        name: `tenant B Create → SENT, A offering ${A_RATE}/s beside B's ${B_RATE}/s, ${variant.label}`,
        latency: summary,
        errors: loadB.errors,
        extra: {
          "B sent": bMs.length,
          "B Create → claimed p50/p99 ms": `${bClaim.p50} / ${bClaim.p99}`,
          "A accepted / offered": `${loadA.ok} / ${loadA.ok + loadA.errors}`,
          "A Create → SENT p50/p99 ms (of those SENT by B's last)": `${summarize(aMs).p50} / ${summarize(aMs).p99}`,
          "A still queued at B's last SENT": aLeft,
        },
      });
      latencies.push({ name: `tenant B, ${variant.label}`, samplesMs: downsample(bMs, 2000) });
    } finally {
      for (const c of [...a, ...b]) c.close();
      await stack.stop();
    }
  }
  return {
    id: "fairness",
    title: "Fair share between tenants: tenant B beside a tenant offering 10× its rate",
    command: `npm run bench -- --only fairness${ctx.quick ? " --quick" : ""}`,
    method:
      `One SMS worker (local sink) with HERALD_RATE_LIMIT_SMS=${CHANNEL_RATE}; tenant A offers ${A_RATE} Creates/s and tenant B ${B_RATE}/s for ${seconds} s (open loop, ` +
      `${CONNECTIONS} grpc-js connections each, every notification to its own recipient), ${A_RATE + B_RATE}/s in all against a ${CHANNEL_RATE}/s channel. ` +
      "Latency from PostgreSQL: SENT event time − created_at. Run with fair delivery on, off, and off with an accept quota on tenant A, each on its own stack.",
    figures,
    latencies,
    targets: [],
    notes: [
      "Without fairness every notification queues behind tenant A's growing backlog (10% over the channel's rate), so tenant B's latency grows with the run's length.",
      "With fair delivery the worker serves the tenants waiting round robin: tenant B, under its fair share, is not queued behind A's backlog; A absorbs the whole shortfall.",
      `With tenant A's quota (${A_QUOTA}/s) its excess is refused RESOURCE_EXHAUSTED at accept, so the channel is not oversubscribed and no backlog forms.`,
    ],
  };
};

/** Open-loop Creates at `rate` for `seconds`, one recipient each (`${tag}-${i}`); refusals count as errors. */
function offer(clients: HeraldClient[], rate: number, seconds: number, tag: string): Promise<OfferedResult> {
  return offeredLoad({
    rate,
    seconds,
    call: (i) =>
      clients[i % clients.length]!.create({
        notification: {
          channel: Channel.SMS,
          recipient: { userId: `${tag}-${i}`, address: { case: "phone", value: "+14155550100" } },
          body: { case: "content", value: { text: `Message ${i}` } },
        },
      }),
  });
}

async function sentCount(stack: Stack, like: string): Promise<number> {
  const { rows } = await stack.pool.query<{ n: string }>("SELECT count(*) AS n FROM notifications WHERE user_id LIKE $1 AND status = $2", [like, Status.SENT]);
  return Number(rows[0]!.n);
}

/** Create → the first `status` event (SENT, or SENDING: claimed) of every notification whose user id is like `like` and that reached it, in ms. */
async function sentLatencies(stack: Stack, like: string, status: Status): Promise<number[]> {
  const { rows } = await stack.pool.query<{ ms: number }>(
    `SELECT extract(epoch FROM (min(e.created_at) - n.created_at)) * 1000 AS ms
     FROM notifications n JOIN status_events e ON e.notification_id = n.id AND e.status = $2
     WHERE n.user_id LIKE $1 GROUP BY n.id, n.created_at`,
    [like, status],
  );
  return rows.map((r) => Number(r.ms));
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
