import { cpus } from "node:os";
import { startStack, unpublished } from "../lib/stack.js";
import { startSlowProvider, type SlowProvider } from "../lib/slow-provider.js";
import { downsample, summarize } from "../lib/stats.js";
import type { Figure, LatencySeries, Ratio, Scenario, ScenarioResult, TargetCheck, TimeSeries } from "../lib/result.js";
import { closedLoop, openLoop, type LoadRun, type Target } from "../alternatives/http-load.js";
import { startBullmq, startSync } from "../alternatives/systems.js";
import { cpuByProcess } from "../alternatives/cpu.js";
import { drain, drainFigure, heraldCreate, notifyTarget, poll, type Drain } from "../alternatives/drain.js";

// Issue 5, scenario 6: what users would pick instead, on the same machine in the same run.
// (a) the synchronous design: POST /notify calls the provider inside the request;
// (b) the same pipeline on BullMQ (producer API + worker on the same Redis);
// and Herald (server, relay, scheduler, worker:sms as real processes). All three send SMS to one
// stand-in provider process that answers every message after 50 ms, and all three APIs are
// driven by the same Node HTTP/1.1 JSON generator, so they differ only in what they are.

const PROVIDER_DELAY_MS = 50;
/** Requests in flight against each API (as for Herald's Create in the create scenario). */
const API_CONCURRENCY = 50;
/**
 * Provider sends in flight per worker process, for both queues: BullMQ's worker concurrency, and
 * HERALD_WORKER_CONCURRENCY (its default). Herald's worker also holds claimed records beyond it
 * (HERALD_WORKER_IN_FLIGHT, default 4×), as BullMQ's worker also fetches its next job while busy.
 */
const WORKER_CONCURRENCY = 32;

interface Plan {
  apiSeconds: number;
  warmupSeconds: number;
  /** Notifications queued before the workers start, then drained. */
  backlog: number;
  /** Offered rate (per second) of the fixed-rate end-to-end runs, and their length. */
  rate: number;
  rateSeconds: number;
  /** Longest waits for a drain and for the last fixed-rate message (past them, the figures are what arrived by then), keeping the run in budget. */
  drainTimeoutS: number;
  e2eTimeoutS: number;
}
const PLANS: Record<"quick" | "full", Plan> = {
  quick: { apiSeconds: 3, warmupSeconds: 0.5, backlog: 1000, rate: 200, rateSeconds: 3, drainTimeoutS: 15, e2eTimeoutS: 15 },
  full: { apiSeconds: 10, warmupSeconds: 2, backlog: 5000, rate: 300, rateSeconds: 10, drainTimeoutS: 60, e2eTimeoutS: 30 },
};

interface EndToEnd {
  api: LoadRun;
  /** Milliseconds from when each request was due to its arrival at the provider. */
  e2e: number[];
  /** Accepted but not at the provider when the wait ended. */
  missing: number;
  /** CPU milliseconds the system's own Node processes spent per notification that arrived, in all and by process. */
  cpuMsPer: number;
  cpuMsPerByProcess: Record<string, number>;
}

const drainPlan = (plan: Plan) => ({ backlog: plan.backlog, concurrency: API_CONCURRENCY, drainTimeoutS: plan.drainTimeoutS });

const fmt = (n: number, digits = 0) => n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
const rps = (r: LoadRun) => r.ok / r.elapsedS;
const round1 = (n: number) => Math.round(n * 10) / 10;

async function apiRun(target: Target, plan: Plan, firstIndex: number): Promise<LoadRun> {
  return closedLoop(target, { concurrency: API_CONCURRENCY, seconds: plan.apiSeconds, warmupSeconds: plan.warmupSeconds, firstIndex });
}

/** Offers `plan.rate` requests/s for `plan.rateSeconds`, then waits for each accepted one at the provider. */
async function endToEnd(provider: SlowProvider, target: Target, plan: Plan, firstIndex: number, pids: Record<string, number>): Promise<EndToEnd> {
  await provider.reset();
  const cpu0 = await cpuByProcess(pids);
  const api = await openLoop(target, { rate: plan.rate, seconds: plan.rateSeconds, firstIndex });
  const arrived = await provider.waitForArrivals(api.sent.size, plan.e2eTimeoutS * 1000).catch(() => provider.arrivals());
  const cpu1 = await cpuByProcess(pids);
  const e2e: number[] = [];
  for (const [id, due] of api.sent) {
    const at = arrived.at.get(id);
    if (at !== undefined) e2e.push(at - due);
  }
  const perNotification = (cpuS: number) => round1((1000 * cpuS) / Math.max(1, e2e.length));
  const cpuMsPerByProcess = Object.fromEntries(Object.keys(pids).map((name) => [name, perNotification(cpu1[name]! - cpu0[name]!)]));
  const cpuMsPer = perNotification(Object.keys(pids).reduce((sum, name) => sum + cpu1[name]! - cpu0[name]!, 0));
  return { api, e2e, missing: api.sent.size - e2e.length, cpuMsPer, cpuMsPerByProcess };
}

const apiFigure = (name: string, r: LoadRun): Figure => ({
  name,
  throughput: { value: Math.round(rps(r)), unit: "req/s" },
  latency: summarize(r.latencies),
  errors: r.errors,
  extra: { seconds: Math.round(r.elapsedS * 10) / 10 },
});

const e2eFigure = (name: string, plan: Plan, r: EndToEnd): Figure => ({
  name,
  throughput: { value: Math.round(r.e2e.length / r.api.elapsedS), unit: "deliveries/s" },
  latency: summarize(r.e2e),
  errors: r.api.errors + r.missing,
  extra: {
    "offered/s": plan.rate,
    "API p99 ms": summarize(r.api.latencies).p99,
    "not at provider": r.missing,
    "CPU ms/notification": r.cpuMsPer,
    "CPU ms/notification by process": Object.entries(r.cpuMsPerByProcess).map(([name, ms]) => `${name} ${ms}`).join(" · "),
  },
});

export const run: Scenario = async (ctx) => {
  const plan = PLANS[ctx.quick ? "quick" : "full"];
  const step = (s: string) => ctx.progress.step(s);
  step(`provider stand-in (${PROVIDER_DELAY_MS} ms)`);
  const provider = await startSlowProvider({ delayMs: PROVIDER_DELAY_MS });
  // Request numbers never repeat within the run, so no two requests share a recipient.
  let index = 0;
  const next = (n: number) => ((index += n), index - n);
  try {
    // (a) The synchronous design.
    step("sync: starting");
    const sync = await startSync(ctx.runId, provider);
    let syncApi: LoadRun, syncRate: EndToEnd;
    try {
      step(`sync: POST /notify, ${API_CONCURRENCY} in flight`);
      syncApi = await apiRun(notifyTarget(sync.url), plan, next(1_000_000));
      step(`sync: ${fmt(rps(syncApi))} req/s; ${plan.rate}/s offered`);
      syncRate = await endToEnd(provider, notifyTarget(sync.url), plan, next(1_000_000), sync.processes());
    } finally {
      await sync.stop();
    }

    // (b) BullMQ.
    step("bullmq: starting");
    const bull = await startBullmq(ctx.runId, provider);
    let bullApi: LoadRun, bullDrain: Drain, bullE2e: EndToEnd;
    try {
      step(`bullmq: enqueue, ${API_CONCURRENCY} in flight`);
      bullApi = await apiRun(notifyTarget(bull.url), plan, next(1_000_000));
      await bull.drain();
      step(`bullmq: ${fmt(rps(bullApi))} enqueues/s; draining ${fmt(plan.backlog)}`);
      bullDrain = await drain(provider, notifyTarget(bull.url), drainPlan(plan), next(1_000_000), async () => {}, async () => (await bull.startWorker(WORKER_CONCURRENCY)).proc.pid, bull.processes());
      step(`bullmq: ${fmt(bullDrain.perSecond)} deliveries/s; ${plan.rate}/s offered end to end`);
      bullE2e = await endToEnd(provider, notifyTarget(bull.url), plan, next(1_000_000), bull.processes());
    } finally {
      await bull.stop();
    }

    // Herald.
    step("herald: starting server, relay, scheduler");
    const stack = await startStack({
      name: `alt${ctx.runId}`,
      roles: ["server", "relay", "scheduler"],
      env: { ...provider.heraldEnv, HERALD_WORKER_CONCURRENCY: String(WORKER_CONCURRENCY) },
    });
    let heraldApi: LoadRun, heraldDrain: Drain, heraldE2e: EndToEnd;
    try {
      // Email, for which no worker runs: the API measured alone, as BullMQ's enqueue was.
      step(`herald: Create, ${API_CONCURRENCY} in flight`);
      heraldApi = await apiRun(heraldCreate(stack, "email"), plan, next(1_000_000));
      step(`herald: ${fmt(rps(heraldApi))} Creates/s; draining ${fmt(plan.backlog)}`);
      heraldDrain = await drain(
        provider,
        heraldCreate(stack, "sms"),
        drainPlan(plan),
        next(1_000_000),
        () => poll("relay publishing the backlog", async () => (await unpublished(stack)) === 0),
        async () => (await stack.start("worker:sms")).proc.pid,
        { server: stack.pid("server"), relay: stack.pid("relay"), scheduler: stack.pid("scheduler") },
      );
      step(`herald: ${fmt(heraldDrain.perSecond)} deliveries/s; ${plan.rate}/s offered end to end`);
      const heraldPids = Object.fromEntries((["server", "relay", "scheduler", "worker:sms"] as const).map((r) => [r, stack.pid(r)!]));
      heraldE2e = await endToEnd(provider, heraldCreate(stack, "sms"), plan, next(1_000_000), heraldPids);
    } finally {
      await stack.stop();
    }

    return report(plan, { syncApi, syncRate, bullApi, bullDrain, bullE2e, heraldApi, heraldDrain, heraldE2e });
  } finally {
    await provider.stop();
  }
};

interface Measured {
  syncApi: LoadRun;
  syncRate: EndToEnd;
  bullApi: LoadRun;
  bullDrain: Drain;
  bullE2e: EndToEnd;
  heraldApi: LoadRun;
  heraldDrain: Drain;
  heraldE2e: EndToEnd;
}

function report(plan: Plan, m: Measured): ScenarioResult {
  const c = `${API_CONCURRENCY} in flight`;
  const figures: Figure[] = [
    apiFigure(`Sync POST /notify (provider inside the request), ${c}`, m.syncApi),
    apiFigure(`BullMQ producer POST /notify (queue.add), ${c}`, m.bullApi),
    apiFigure(`Herald Create (Connect JSON, HTTP/1.1), ${c}`, m.heraldApi),
    e2eFigure(`Sync end to end at ${plan.rate}/s offered (POST → provider, inside the request)`, plan, m.syncRate),
    e2eFigure(`BullMQ end to end at ${plan.rate}/s offered (POST → provider)`, plan, m.bullE2e),
    e2eFigure(`Herald end to end at ${plan.rate}/s offered (Create → provider)`, plan, m.heraldE2e),
    drainFigure(`BullMQ backlog drain, 1 worker × ${WORKER_CONCURRENCY}`, m.bullDrain),
    drainFigure(`Herald backlog drain, 1 worker × ${WORKER_CONCURRENCY}`, m.heraldDrain),
  ];
  const p99 = (r: LoadRun) => summarize(r.latencies).p99;
  const ratio = (name: string, herald: number, reference: number, unit: string): Ratio => ({
    name,
    value: Math.round((herald / reference) * 1000) / 1000,
    herald: `${fmt(herald, unit === "ms" ? 1 : 0)} ${unit}`,
    reference: `${fmt(reference, unit === "ms" ? 1 : 0)} ${unit}`,
  });
  const ratios: Ratio[] = [
    ratio("API throughput, Herald ÷ sync", rps(m.heraldApi), rps(m.syncApi), "req/s"),
    ratio("API p99 latency, Herald ÷ sync", p99(m.heraldApi), p99(m.syncApi), "ms"),
    ratio("Enqueue rate, Herald ÷ BullMQ", rps(m.heraldApi), rps(m.bullApi), "req/s"),
    ratio("Deliveries/s (backlog drain), Herald ÷ BullMQ", m.heraldDrain.perSecond, m.bullDrain.perSecond, "deliveries/s"),
    ratio(`End-to-end p99 at ${plan.rate}/s, Herald ÷ BullMQ`, summarize(m.heraldE2e.e2e).p99, summarize(m.bullE2e.e2e).p99, "ms"),
  ];
  const latencies: LatencySeries[] = [
    { name: "Sync API latency", samplesMs: downsample(m.syncApi.latencies) },
    { name: "BullMQ enqueue API latency", samplesMs: downsample(m.bullApi.latencies) },
    { name: "Herald Create API latency", samplesMs: downsample(m.heraldApi.latencies) },
    { name: `BullMQ end to end at ${plan.rate}/s`, samplesMs: downsample(m.bullE2e.e2e) },
    { name: `Herald end to end at ${plan.rate}/s`, samplesMs: downsample(m.heraldE2e.e2e) },
  ];
  const timeseries: TimeSeries[] = [
    { name: "BullMQ deliveries/s (backlog drain)", unit: "deliveries/s", points: m.bullDrain.points },
    { name: "Herald deliveries/s (backlog drain)", unit: "deliveries/s", points: m.heraldDrain.points },
  ];
  const targets: TargetCheck[] = [
    {
      name: "Sustained delivery throughput vs BullMQ",
      target: "at least BullMQ's on the same machine",
      actual: `${fmt(m.heraldDrain.perSecond)} vs ${fmt(m.bullDrain.perSecond)} deliveries/s (${fmt((100 * m.heraldDrain.perSecond) / m.bullDrain.perSecond, 1)}%)`,
      met: m.heraldDrain.perSecond >= m.bullDrain.perSecond,
    },
  ];
  const ceiling = (WORKER_CONCURRENCY * 1000) / PROVIDER_DELAY_MS;
  const saturated = ([["BullMQ", m.bullDrain], ["Herald", m.heraldDrain]] as const).filter(([, d]) => d.perSecond < 1.1 * plan.rate);
  const notes = [
    `Every system sends to the same provider stand-in (bench/slow-provider-server.ts, its own process): Twilio's Messages API, success after ${PROVIDER_DELAY_MS} ms. ` +
      `With ${WORKER_CONCURRENCY} sends in flight per worker the drain cannot exceed ${fmt(ceiling)} deliveries/s for either queue; near that figure both are provider-bound and the ratio says little more than "equal". ` +
      "Both bound the same thing: provider calls in flight (BullMQ's concurrency, Herald's HERALD_WORKER_CONCURRENCY); Herald's claims and outcomes, which wait on PostgreSQL group commits, run outside that bound (HERALD_WORKER_IN_FLIGHT records at most).",
    `All three APIs are driven by the same Node HTTP/1.1 JSON generator (${c}, keep-alive), in the scenario's process: Herald through its Connect endpoint, not gRPC (the create scenario measures gRPC).`,
    "Processes: sync = 1 Node process + PostgreSQL; BullMQ = producer API + 1 worker + Redis; Herald = server + relay + scheduler + 1 sms worker + PostgreSQL + Kafka. One process per role each, none tuned.",
    "Durability is not equal. Herald answers Create after an fsync'ed PostgreSQL commit (group commit) and the relay publishes with acks=all; " +
      "BullMQ answers once Redis holds the job in memory (this Redis keeps nothing on disk: a Redis crash loses every queued job); the sync design records the send only after the provider answered, and loses the request if the process dies in between.",
    "Herald runs at LOG_LEVEL=info, as operators run it: its worker writes one log line per delivery; the BullMQ worker and the sync server log nothing per message.",
    "Failure behaviour is not equal either: the sync endpoint is as slow as the provider and fails with it (no retry); BullMQ and Herald retry (4 attempts, exponential backoff from 1 s; Herald adds full jitter, Retry-After, a DLQ and per-recipient order).",
    "API measurements run with no worker consuming (Herald: Creates on the email channel, which has no worker here; BullMQ: jobs drained afterwards), so they measure the API alone. " +
      "The drain queues the backlog through the API first (Herald: until the relay has published it), then starts the worker process; deliveries/s counts from the first to the last arrival at the provider, the wall time includes worker start and Kafka group join.",
    `End to end = from when the request was due (open loop, ${plan.rate}/s for ${plan.rateSeconds} s) to its arrival at the provider, clocks of one machine (performance.timeOrigin + now in each process). The sync design's end to end ends when its request handler calls the provider; its API answers at least ${PROVIDER_DELAY_MS} ms later.`,
    "CPU ms/notification (fixed-rate runs) counts only each system's own Node processes from /proc, not PostgreSQL, Redis or Kafka, which serve other clients on this machine too; Herald leans on PostgreSQL and Kafka far more than BullMQ on Redis, so it understates Herald's full cost.",
    ...saturated.map(
      ([who, d]) => `${who}'s drain ran at ${fmt(d.perSecond)} deliveries/s, under 1.1 × the ${plan.rate}/s offered: its end-to-end figure at that rate is mostly time spent queued, not its latency when it keeps up.`,
    ),
    `Machine: ${cpus().length} cores shared by the generator, the stand-in, every process above, PostgreSQL, Redis and Kafka; every figure competes for the same CPUs.`,
  ];
  return {
    id: "alternatives",
    title: "Herald vs what users would pick instead: the synchronous design and BullMQ",
    command: "npm run bench -- --only alternatives",
    method: `Node HTTP/1.1 generator (bench/alternatives/http-load.ts): closed loop, ${c}, ${plan.apiSeconds} s after ${plan.warmupSeconds} s warm-up; open loop ${plan.rate}/s for ${plan.rateSeconds} s; backlog of ${fmt(plan.backlog)} drained by one worker process × ${WORKER_CONCURRENCY}`,
    figures,
    latencies,
    timeseries,
    ratios,
    targets,
    notes,
  };
}
