import { pino } from "pino";
import { Channel } from "../../gen/herald/v1/notification_pb.js";
import { createHeraldClient } from "../../src/client/index.js";
import { createPurger } from "../../src/retention/purger.js";
import { createPool } from "../../src/store/db.js";
import { offeredLoad } from "../lib/offered-load.js";
import type { Figure, LatencySeries, Ratio, Scenario } from "../lib/result.js";
import { startStack } from "../lib/stack.js";
import { downsample, summarize } from "../lib/stats.js";

// Retention (issue 16 item 7): does the purge disturb Create? A backlog of expired DELIVERED
// notifications (each with a status event and a published outbox row) is seeded by SQL; then
// Create runs open-loop at a fixed rate through alternating phases, purge off and purge on (the
// purger of src/retention/ with the production batch and pause, run by this process against the
// stack's database), so both conditions meet the same drift (cache warm-up, table growth). The
// figure is each condition's p50/p99 and their ratio, within this run.

const RATE = 300;
const CONNECTIONS = 4;
const DAY = 86_400_000;

export const run: Scenario = async (ctx) => {
  const backlog = ctx.quick ? 20_000 : 200_000;
  const phaseSeconds = ctx.quick ? 6 : 15;
  const rounds = 2;
  const stack = await startStack({ name: `ret${ctx.runId}`, roles: ["server", "relay"], env: { HERALD_RETENTION_DAYS: "0" } });
  const pool = createPool({ url: stack.databaseUrl, max: 2 });
  const clients = Array.from({ length: CONNECTIONS }, () => createHeraldClient({ address: stack.grpcAddress, apiKey: stack.apiKey }));
  const samples = { off: [] as number[], on: [] as number[] };
  let errors = 0;
  let purged = 0;
  let purgeSeconds = 0;
  try {
    ctx.progress.step(`seeding ${backlog.toLocaleString("en")} expired notifications`);
    for (let done = 0; done < backlog; done += 50_000) {
      await stack.pool.query(
        `WITH ins AS (
           INSERT INTO notifications (id, tenant, channel, user_id, status, spec, correlation_id, deliver_at, last_sequence, created_at, updated_at)
           SELECT gen_random_uuid(), 'bench', 1, 'old-' || i, 5, '\\x0801'::bytea, '', now() - interval '40 days', 3,
                  now() - interval '40 days', now() - interval '40 days'
           FROM generate_series(1, $1) AS i RETURNING id, user_id),
         ev AS (
           INSERT INTO status_events (notification_id, sequence, tenant, user_id, channel, status, attempt, created_at)
           SELECT id, s, 'bench', user_id, 1, 5, 1, now() - interval '40 days' FROM ins, generate_series(1, 3) AS s RETURNING 1)
         INSERT INTO outbox (topic, key, value, notification_id, created_at, published_at)
         SELECT 'herald.status', id::text, '\\x'::bytea, id, now() - interval '40 days', now() - interval '40 days' FROM ins`,
        [Math.min(50_000, backlog - done)],
      );
    }
    await stack.pool.query("VACUUM ANALYZE notifications, status_events, outbox");
    const create = (i: number) =>
      clients[i % CONNECTIONS]!.create({
        notification: {
          channel: Channel.EMAIL,
          recipient: { userId: `u${i % 1000}`, address: { case: "email", value: "bench@example.com" } },
          body: { case: "content", value: { subject: "hi", text: "retention bench" } },
        },
      });
    ctx.progress.step("warm-up");
    await offeredLoad({ rate: RATE, seconds: 3, call: create });
    for (let r = 0; r < rounds; r++) {
      for (const phase of ["off", "on"] as const) {
        ctx.progress.step(`round ${r + 1}/${rounds}: Create at ${RATE}/s, purge ${phase}`);
        const purger = phase === "on" ? createPurger({ pool, log: pino({ level: "silent" }), retentionMs: 30 * DAY, batchSize: 500, pauseMs: 100 }) : undefined;
        const started = performance.now();
        const purging = purger
          ? (async () => {
              let rows = 0;
              for (;;) {
                const round = await purger.runRound();
                rows += round.notifications;
                if (round.batches <= 1 && round.notifications === 0) return rows;
              }
            })()
          : Promise.resolve(0);
        const load = await offeredLoad({ rate: RATE, seconds: phaseSeconds, call: create });
        await purger?.close();
        purged += await purging;
        if (purger) purgeSeconds += (performance.now() - started) / 1000;
        samples[phase].push(...load.latenciesMs);
        errors += load.errors;
      }
    }
  } finally {
    for (const c of clients) c.close();
    await pool.end();
    await stack.stop();
  }
  const off = summarize(samples.off);
  const on = summarize(samples.on);
  const figures: Figure[] = [
    { name: `Create at ${RATE}/s, purge off`, latency: off, errors: 0 },
    { name: `Create at ${RATE}/s, purge on (batch 500, pause ≥ 100 ms)`, latency: on, errors, extra: { purgedNotifications: purged, purgedPerSecond: Math.round(purged / Math.max(purgeSeconds, 1e-3)) } },
  ];
  const latencies: LatencySeries[] = [
    { name: "purge off", samplesMs: downsample(samples.off, 2000) },
    { name: "purge on", samplesMs: downsample(samples.on, 2000) },
  ];
  const ratios: Ratio[] = [
    { name: "Create p50, purge on / off", value: on.p50 / off.p50, herald: `${on.p50} ms`, reference: `${off.p50} ms` },
    { name: "Create p99, purge on / off", value: on.p99 / off.p99, herald: `${on.p99} ms`, reference: `${off.p99} ms` },
  ];
  return {
    id: "retention",
    title: "Retention purge beside Create",
    command: `npm run bench -- --only retention${ctx.quick ? " --quick" : ""}`,
    method:
      `${backlog.toLocaleString("en")} expired DELIVERED notifications seeded (3 status events and a published outbox row each); ` +
      `Create open-loop at ${RATE}/s over ${CONNECTIONS} grpc-js connections (server and relay processes), ${rounds} rounds of ` +
      `${phaseSeconds} s purge off then ${phaseSeconds} s purge on (src/retention/ purger, batch 500, pause at least 100 ms and at least the batch's own time).`,
    figures,
    latencies,
    ratios,
    notes: [`${purged.toLocaleString("en")} notifications purged during the on phases.`],
  };
};
