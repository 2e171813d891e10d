import { cpuBetween, cpuSnapshot, cpuExtra } from "../lib/machine-cpu.js";
import type { Figure } from "../lib/result.js";
import type { SlowProvider } from "../lib/slow-provider.js";
import type { Stack } from "../lib/stack.js";
import { perSecond } from "../lib/stats.js";
import { closedLoop, epochMs, type Target } from "./http-load.js";

// A backlog drained by one worker process, for Herald and for BullMQ alike (the alternatives
// and drain scenarios): queue N notifications through each system's own API with no worker
// running, then start one and time the deliveries at the provider stand-in, with the CPU every
// process spent from the worker's start to the last arrival.

const phone = (i: number) => `+1555${String(i % 10_000_000).padStart(7, "0")}`;
const text = (i: number) => `Your sign-in code is ${String(100_000 + (i % 900_000))}`;

/** POST /notify of the sync server and of BullMQ's producer. */
export const notifyTarget = (url: string): Target => ({
  url,
  body: (i) => JSON.stringify({ to: phone(i), text: text(i) }),
  idOf: (json) => (json as { id?: string }).id,
});

/**
 * Herald's Create through its Connect endpoint (JSON over HTTP/1.1, the same client as the
 * others). One recipient per notification: Herald keeps per-recipient order, the others do not.
 */
export const heraldCreate = (stack: Stack, channel: "sms" | "email"): Target => ({
  url: `${stack.httpUrl}/herald.v1.NotificationService/Create`,
  headers: { authorization: `Bearer ${stack.apiKey}`, "connect-protocol-version": "1" },
  body: (i) =>
    JSON.stringify({
      notification: {
        channel: channel === "sms" ? "CHANNEL_SMS" : "CHANNEL_EMAIL",
        recipient: channel === "sms" ? { userId: `user-${i}`, phone: phone(i) } : { userId: `user-${i}`, email: `user${i}@example.com` },
        content: { subject: "Sign-in code", text: text(i) },
      },
    }),
  idOf: (json) => (json as { notification?: { id?: string } }).notification?.id,
});

export interface Drain {
  /** Messages that arrived (all of the backlog unless the drain ran out of time). */
  n: number;
  queued: number;
  /** Deliveries/s between the first and the last arrival at the provider (steady state). */
  perSecond: number;
  /** Seconds from starting the worker process to the last arrival (start-up and group join included). */
  wallS: number;
  duplicates: number;
  points: Array<[number, number]>;
  /** CPU seconds from the worker's start to the last arrival: machine-wide and by part (the worker, the named pids, the stores by command). */
  cpu: { busy: number; parts: Record<string, number> };
}

export interface DrainPlan {
  backlog: number;
  /** Requests in flight while queueing the backlog. */
  concurrency: number;
  drainTimeoutS: number;
}

/**
 * Queues `plan.backlog` through the API, waits for `settle` (everything queued), starts the
 * worker, times the drain at the provider. `startWorker` resolves with the worker's pid;
 * `pids` names the system's other processes for the CPU split.
 */
export async function drain(
  provider: SlowProvider,
  create: Target,
  plan: DrainPlan,
  firstIndex: number,
  settle: () => Promise<void>,
  startWorker: () => Promise<number | undefined>,
  pids: Record<string, number | undefined> = {},
): Promise<Drain> {
  await provider.reset();
  const created = await closedLoop(create, { concurrency: plan.concurrency, seconds: Infinity, count: plan.backlog, firstIndex });
  if (created.errors) throw new Error(`backlog: ${created.errors} requests failed (${created.firstError})`);
  await settle();
  const before = await cpuSnapshot();
  const t0 = epochMs();
  const worker = await startWorker();
  const arrived = await provider.waitForArrivals(created.ok, plan.drainTimeoutS * 1000).catch(() => provider.arrivals());
  const cpu = cpuBetween(before, await cpuSnapshot(), { ...pids, worker });
  const times = [...arrived.at.values()].sort((a, b) => a - b);
  const first = times[0]!;
  const last = times.at(-1)!;
  if (times.length < 2) throw new Error(`drain: ${times.length} of ${created.ok} messages reached the provider in ${plan.drainTimeoutS} s`);
  return {
    n: times.length,
    queued: created.ok,
    perSecond: (times.length - 1) / ((last - first) / 1000),
    wallS: (last - t0) / 1000,
    duplicates: arrived.duplicates,
    points: perSecond(times, first),
    cpu,
  };
}

export async function poll(what: string, done: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`${what}: not done within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export const drainFigure = (name: string, d: Drain): Figure => ({
  name,
  throughput: { value: Math.round(d.perSecond), unit: "deliveries/s" },
  extra: {
    n: d.n,
    "not drained in time": d.queued - d.n,
    "wall s (incl. worker start)": Math.round(d.wallS * 10) / 10,
    "duplicate sends": d.duplicates,
    ...cpuExtra({ ...d.cpu, calls: d.n }, "delivery"),
  },
});
