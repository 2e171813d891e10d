import { Channel } from "../../gen/herald/v1/notification_pb.js";
import { createHeraldClient, type HeraldClient } from "../../src/client/index.js";
import { INSERT_NOTIFICATION_ROWS, notificationRowParams } from "../lib/notification-rows.js";
import type { Figure, Ratio, Scenario } from "../lib/result.js";
import { insertAndProduceSkeleton } from "../lib/skeleton.js";
import { startStack, unpublished, type Stack } from "../lib/stack.js";
import { summarize } from "../lib/stats.js";

// Bulk accept (issue 16): CreateBatch's durable accept-and-publish throughput, next to single
// Create and against a ceiling measured in the same run on the same database: 256-row INSERTs of
// the notifications table alone (Herald writes four rows per notification: the notification, its
// first status event, a Dispatch and a status outbox record). Accepted and published means the
// batches were answered AND the relay had published every outbox row to Kafka: the throughput is
// notifications over the time from the first batch sent to the outbox found empty.

const CONNECTIONS = 4;

const item = (i: number) => ({
  item: {
    case: "create" as const,
    value: {
      notification: {
        channel: Channel.EMAIL,
        recipient: { userId: `u${i % 5000}`, address: { case: "email" as const, value: `user${i % 5000}@example.com` } },
        body: { case: "content" as const, value: { subject: "Your weekly digest", text: "Three new comments on your post." } },
      },
    },
  },
});

export const run: Scenario = async (ctx) => {
  const seconds = ctx.quick ? 4 : 15;
  const batchSize = 1000;
  const stack = await startStack({ name: `bulk${ctx.runId}`, roles: ["server", "relay"] });
  const clients = Array.from({ length: CONNECTIONS }, () => createHeraldClient({ address: stack.grpcAddress, apiKey: stack.apiKey }));
  const figures: Figure[] = [];
  const ratios: Ratio[] = [];
  try {
    ctx.progress.step(`ceiling: 256-row INSERTs, 2 in flight, ${seconds}s`);
    const ceiling = await insertCeiling(stack, seconds);
    figures.push({ name: "PostgreSQL 256-row INSERT (unnest) of notifications rows, 2 in flight", throughput: { value: ceiling, unit: "rows/s" } });

    ctx.progress.step(`skeleton: 1000-row INSERT + produce, 2 loops, 3×${seconds}s`);
    const skeleton = await insertAndProduceSkeleton(stack.pool, { seconds, topicPrefix: stack.env.HERALD_TOPIC_PREFIX! });
    figures.push({
      name: "Skeleton: 1000-row INSERT then produce of the same 1000 records (acks=all), 2 loops",
      throughput: { value: skeleton.perSecond, unit: "notifications/s" },
      extra: { "INSERT alone": `${skeleton.insertOnly} rows/s`, "produce alone": `${skeleton.produceOnly} records/s` },
    });

    ctx.progress.step(`single Create, 64 in flight, ${seconds}s`);
    const single = await closedLoop(clients, 64, seconds, (c, i) => c.create(item(i).item.value).then(() => 1));
    const singleDrain = await drained(stack, single.endedAt);
    const singleRate = single.done / ((singleDrain - single.startedAt) / 1000);
    figures.push({ name: "Create, 64 in flight, accepted and published", throughput: { value: Math.round(singleRate), unit: "notifications/s" }, latency: summarize(single.latencies), errors: single.errors });

    for (const inFlight of ctx.quick ? [2] : [1, 2, 4]) {
      ctx.progress.step(`CreateBatch of ${batchSize}, ${inFlight} in flight, ${seconds}s`);
      let n = 0;
      const bulk = await closedLoop(clients, inFlight, seconds, async (c) => {
        const items = Array.from({ length: batchSize }, () => item(n++));
        const res = await c.createBatch({ items });
        return res.results.filter((r) => r.result.case === "notification").length;
      });
      const drainedAt = await drained(stack, bulk.endedAt);
      const accepted = bulk.done / ((bulk.endedAt - bulk.startedAt) / 1000);
      const published = bulk.done / ((drainedAt - bulk.startedAt) / 1000);
      figures.push({
        name: `CreateBatch of ${batchSize}, ${inFlight} in flight`,
        throughput: { value: Math.round(published), unit: "notifications/s accepted and published" },
        latency: summarize(bulk.latencies),
        errors: bulk.errors,
        extra: { "accepted/s (answers only)": Math.round(accepted), "publish lag after the last answer": `${Math.round(drainedAt - bulk.endedAt)} ms`, "latency is": "per batch" },
      });
      ratios.push({ name: `CreateBatch (${inFlight} in flight) ÷ 256-row INSERT ceiling`, value: published / ceiling, herald: `${Math.round(published)}/s`, reference: `${ceiling}/s` });
      ratios.push({ name: `CreateBatch (${inFlight} in flight) ÷ skeleton`, value: published / skeleton.perSecond, herald: `${Math.round(published)}/s`, reference: `${skeleton.perSecond}/s` });
      ratios.push({ name: `CreateBatch (${inFlight} in flight) ÷ single Create`, value: published / singleRate, herald: `${Math.round(published)}/s`, reference: `${Math.round(singleRate)}/s` });
    }
    ratios.push({ name: "issue 16's target (30,000/s) ÷ skeleton", value: 30_000 / skeleton.perSecond, herald: "30000/s", reference: `${skeleton.perSecond}/s` });
    ratios.push({ name: "single Create ÷ 256-row INSERT ceiling", value: singleRate / ceiling, herald: `${Math.round(singleRate)}/s`, reference: `${ceiling}/s` });
  } finally {
    for (const c of clients) c.close();
    await stack.stop();
  }
  return {
    id: "bulk",
    title: "Bulk accept: CreateBatch beside Create and the INSERT ceiling",
    command: `npm run bench -- --only bulk${ctx.quick ? " --quick" : ""}`,
    method:
      `Server and relay processes on their own database and topics. Ceiling: 256-row INSERTs (unnest) into the same database's ` +
      `notifications table, 2 in flight, ${seconds} s. Skeleton: 1000-row INSERTs into the same table, each followed by a kafkajs ` +
      `sendBatch of 1000 Dispatch-sized records (acks=all, idempotent) to a new 6-partition topic, 2 loops, ${seconds} s (and each half alone). Then single Create (64 in flight over ${CONNECTIONS} grpc-js connections) and ` +
      `CreateBatch of ${batchSize} email Creates (1, 2 and 4 in flight), each closed-loop for ${seconds} s; a figure counts the ` +
      `notifications accepted over the time from the first call to the outbox found empty (every record published to Kafka).`,
    figures,
    ratios,
    notes: [
      "The ceiling inserts notification rows only; each accepted notification is four rows (notification, status event, Dispatch and status outbox records) plus its Kafka records.",
      "The skeleton (bench/lib/skeleton.ts) is the least a durable bulk accept-and-publish does: one row inserted and one record produced per notification, with no gRPC, validation, status event, outbox or relay. It bounds CreateBatch on this machine: a target above ~75% of it leaves under a quarter of the machine for everything Herald does beyond those two writes.",
    ],
  };
};

/** Rows/s of 256-row INSERTs into the stack's notifications table, 2 in flight. */
async function insertCeiling(stack: Stack, seconds: number): Promise<number> {
  const rows = 256;
  let inserted = 0;
  const end = performance.now() + seconds * 1000;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: 2 }, async (_, w) => {
      for (let i = w; performance.now() < end; i += rows) {
        await stack.pool.query(INSERT_NOTIFICATION_ROWS, notificationRowParams("ceiling", rows, i));
        inserted += rows;
      }
    }),
  );
  return Math.round(inserted / ((performance.now() - t0) / 1000));
}

/** `inFlight` callers, spread over the clients, each calling `call` back to back for `seconds`; `call` answers how many notifications it stored. */
async function closedLoop(
  clients: HeraldClient[],
  inFlight: number,
  seconds: number,
  call: (client: HeraldClient, i: number) => Promise<number>,
): Promise<{ done: number; errors: number; latencies: number[]; startedAt: number; endedAt: number }> {
  let done = 0;
  let errors = 0;
  let i = 0;
  const latencies: number[] = [];
  const startedAt = performance.now();
  const end = startedAt + seconds * 1000;
  await Promise.all(
    Array.from({ length: inFlight }, async (_, w) => {
      const client = clients[w % clients.length]!;
      while (performance.now() < end) {
        const t = performance.now();
        try {
          // Read after the await: `done += await ...` would add to a stale value under concurrency.
          const stored = await call(client, i++);
          done += stored;
          latencies.push(performance.now() - t);
        } catch {
          errors++;
        }
      }
    }),
  );
  return { done, errors, latencies, startedAt, endedAt: performance.now() };
}

/** When the relay had published every outbox row (polled every 50 ms after `after`). */
async function drained(stack: Stack, after: number): Promise<number> {
  for (;;) {
    if ((await unpublished(stack)) === 0) return Math.max(performance.now(), after);
    await new Promise((r) => setTimeout(r, 50));
  }
}
