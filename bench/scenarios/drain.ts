import { drain, drainFigure, heraldCreate, notifyTarget, poll, type Drain } from "../alternatives/drain.js";
import { startBullmq } from "../alternatives/systems.js";
import { ms3, perCall } from "../lib/machine-cpu.js";
import type { Ratio, Scenario, TimeSeries } from "../lib/result.js";
import { startSlowProvider } from "../lib/slow-provider.js";
import { startStack, unpublished } from "../lib/stack.js";

// Throughput head to head (issue 17): a backlog drained at full speed, not at a slow provider's
// ceiling. The same provider stand-in answering at once, the same backlog queued through each
// system's own API with no worker running, then one worker process with 32 sends in flight:
// BullMQ (jobs in Redis only) and Herald (every delivery two fsynced transitions in PostgreSQL,
// SENDING and SENT, each with its status event and outbox record, and their Kafka records).
// What each delivery costs the machine, by process, says what Herald's durability costs.

const CONCURRENCY = 32;

export const run: Scenario = async (ctx) => {
  const plan = { backlog: ctx.quick ? 2000 : 20_000, concurrency: 50, drainTimeoutS: ctx.quick ? 60 : 300 };
  const provider = await startSlowProvider({ delayMs: 0 });
  let index = 0;
  const next = (n: number) => ((index += n), index - n);
  let bull: Drain;
  let herald: Drain;
  let lean: Drain;
  try {
    ctx.progress.step(`bullmq: queueing ${plan.backlog} and draining`);
    const b = await startBullmq(ctx.runId, provider);
    try {
      bull = await drain(provider, notifyTarget(b.url), plan, next(1_000_000), async () => {}, async () => (await b.startWorker(CONCURRENCY)).proc.pid, b.processes());
    } finally {
      await b.stop();
    }

    // Herald as it ships, then with the lean status stream (SENDING stored, not published).
    const heraldRun = async (label: string, extraEnv: Record<string, string>): Promise<Drain> => {
      ctx.progress.step(`herald${label}: queueing ${plan.backlog} and draining`);
      const stack = await startStack({
        name: `drain${label.replace(/\W/g, "")}${ctx.runId}`,
        roles: ["server", "relay", "scheduler"],
        env: { ...provider.heraldEnv, HERALD_WORKER_CONCURRENCY: String(CONCURRENCY), ...extraEnv },
      });
      try {
        return await drain(
          provider,
          heraldCreate(stack, "sms"),
          plan,
          next(1_000_000),
          () => poll("relay publishing the backlog", async () => (await unpublished(stack)) === 0, 300_000),
          async () => (await stack.start("worker:sms")).proc.pid,
          { server: stack.pid("server"), relay: stack.pid("relay"), scheduler: stack.pid("scheduler") },
        );
      } finally {
        await stack.stop();
      }
    };
    herald = await heraldRun("", {});
    lean = await heraldRun(" lean", { HERALD_STREAM_SENDING: "off" });
  } finally {
    await provider.stop();
  }

  const cpuPer = (d: Drain) => perCall(d.cpu.busy, d.n);
  const partPer = (d: Drain, ...parts: string[]) => parts.reduce((sum, p) => sum + perCall(d.cpu.parts[p] ?? 0, d.n), 0);
  const ratios: Ratio[] = [
    { name: "Herald ÷ BullMQ, deliveries/s", value: herald.perSecond / bull.perSecond, herald: `${Math.round(herald.perSecond)}/s`, reference: `${Math.round(bull.perSecond)}/s` },
    { name: "Herald ÷ BullMQ, machine CPU per delivery", value: cpuPer(herald) / cpuPer(bull), herald: `${ms3(cpuPer(herald))} ms`, reference: `${ms3(cpuPer(bull))} ms` },
    { name: "Herald's worker ÷ BullMQ's worker, CPU per delivery", value: partPer(herald, "worker") / partPer(bull, "worker"), herald: `${ms3(partPer(herald, "worker"))} ms`, reference: `${ms3(partPer(bull, "worker"))} ms` },
    // What one lever buys: SENDING kept in the history but not streamed (one outbox row, relay publish and Kafka record less).
    { name: "Herald lean stream ÷ BullMQ, deliveries/s", value: lean.perSecond / bull.perSecond, herald: `${Math.round(lean.perSecond)}/s`, reference: `${Math.round(bull.perSecond)}/s` },
    { name: "Herald lean stream ÷ Herald, machine CPU per delivery", value: cpuPer(lean) / cpuPer(herald), herald: `${ms3(cpuPer(lean))} ms`, reference: `${ms3(cpuPer(herald))} ms` },
  ];
  const timeseries: TimeSeries[] = [
    { name: "BullMQ", unit: "deliveries/s", points: bull.points },
    { name: "Herald", unit: "deliveries/s", points: herald.points },
    { name: "Herald, lean stream", unit: "deliveries/s", points: lean.points },
  ];
  const durability = partPer(herald, "postgresql", "kafka", "relay");
  const leanDurability = partPer(lean, "postgresql", "kafka", "relay");
  return {
    id: "drain",
    title: "Backlog drain at full speed: Herald against BullMQ",
    command: `npm run bench -- --only drain${ctx.quick ? " --quick" : ""}`,
    method:
      `A provider stand-in that answers every SMS at once (Twilio's API, no delay). ${plan.backlog.toLocaleString("en")} SMS queued through each system's API ` +
      `(${plan.concurrency} in flight, JSON over HTTP/1.1) with no worker running; for Herald, until the relay had published them all. Then one worker process ` +
      `with ${CONCURRENCY} sends in flight (BullMQ's concurrency, HERALD_WORKER_CONCURRENCY), timed at the provider: deliveries/s from the first arrival to the last. ` +
      `CPU from /proc over the drain (the worker's start to the last arrival), per delivery, by process.`,
    figures: [
      drainFigure(`BullMQ, 1 worker × ${CONCURRENCY}`, bull),
      drainFigure(`Herald, 1 worker × ${CONCURRENCY}`, herald),
      drainFigure(`Herald lean stream (HERALD_STREAM_SENDING=off), 1 worker × ${CONCURRENCY}`, lean),
    ],
    ratios,
    timeseries,
    notes: [
      `What Herald's durability cost per delivery in this run: PostgreSQL, the Kafka broker and the relay together ${ms3(durability)} ms of CPU ` +
        `(${Math.round((100 * durability) / cpuPer(herald))}% of its machine CPU per delivery). BullMQ's store, Redis, took ${ms3(partPer(bull, "redis"))} ms.`,
      `Lean status stream (HERALD_STREAM_SENDING=off: SENDING stored in the history, not published): durability ${ms3(leanDurability)} ms per delivery, ` +
        `the worker ${ms3(partPer(lean, "worker"))} ms, the server's status feed ${ms3(partPer(lean, "server"))} ms (${ms3(partPer(herald, "server"))} ms streaming SENDING).`,
      "Per delivery Herald writes two transitions (SENDING, SENT): each updates the notification and inserts a status event, its feed-log row and a status outbox record, which the relay marks once Kafka has it: 6 rows inserted and 4 updated, and 2 Kafka records (the `writes` scenario counts them).",
    ],
  };
};
